"""What would make an OOM scenario fit: each suggestion checked with the same memory model,
on scenarios derived and validated like any other, cheapest first. The smallest GPU count
comes from the planner's one minimum-GPU search, so `run` and `plan min-gpus` agree."""

from __future__ import annotations

from typing import Any

from simulator.core.errors import UserError
from simulator.execution.frameworks import FRAMEWORKS
from simulator.execution.memory import memory_breakdown
from simulator.execution.strategies import by_memory
from simulator.scenario.load import derive
from simulator.spec.specs import Scenario
from simulator.studies.search import MAX_GPUS, min_gpus


def _fits(scenario: Scenario, changes: dict) -> bool:
    try:
        return memory_breakdown(derive(scenario, changes)).fits
    except UserError:
        return False  # the change is not valid for this scenario


def fit_suggestions(scenario: Scenario, limit: int = 4) -> list[str]:
    """Changes that make an OOM scenario fit, each checked, cheapest first."""
    if memory_breakdown(scenario).fits:
        return []
    t, n = scenario.training, scenario.num_gpus
    found: list[str] = []
    stronger = [
        s.name
        for s in by_memory()
        if s.zero_stage > next((x.zero_stage for x in by_memory() if x.name == t.strategy), 3)
    ]
    for name in stronger:
        if _fits(scenario, {"training.strategy": name}):
            found.append(f"fits with strategy: {name} on the same {n} GPU(s)")
            break
    for ckpt in ("selective", "full"):
        if t.activation_checkpointing not in (ckpt, "full") and _fits(
            scenario, {"training.activation_checkpointing": ckpt}
        ):
            found.append(f"fits with activation_checkpointing: {ckpt}")
            break
    if t.micro_batch_size > 1 and _fits(scenario, {"training.micro_batch_size": 1}):
        found.append("fits with micro_batch_size: 1 (raise grad_accum_steps to keep the batch)")
    if (
        t.strategy != "ddp"
        and not t.offload.optimizer
        and _fits(scenario, {"training.offload.optimizer": "cpu"})
    ):
        found.append("fits with offload: {optimizer: cpu} (ZeRO-Offload)")
    found += _parallel_layouts(scenario)
    found += _more_gpus(scenario)
    found += _more_gpus_model_parallel(scenario)
    if not found:
        found.append(
            f"does not fit with {most_sharded(scenario)}, full checkpointing or offload at any scale up to "
            f"{MAX_GPUS:,} GPUs: pick a GPU with more memory or a smaller model"
        )
    return found[:limit]


def _layout_changes(scenario: Scenario) -> list[tuple[str, dict]]:
    """Tensor (with sequence) parallelism inside a host, then pipeline stages, as Megatron users
    would reach for them: (description, changes) from the least invasive."""
    par, arch = scenario.training.parallel, scenario.model.shape
    out, tp = [], par.tp
    for t in (2, 4, 8):
        if (
            t > par.tp
            and t <= scenario.cluster.gpus_per_host
            and arch.num_heads % t == 0
            and arch.kv_heads % t == 0
            and scenario.num_gpus % (t * par.pp) == 0
        ):
            out.append(
                (
                    f"tp {t} and sequence_parallel",
                    {"training.parallelism.tp": t, "training.parallelism.sequence_parallel": True},
                )
            )
            tp = t
    for pp in (2, 4, 8, 16):
        if (
            pp > par.pp
            and scenario.model.num_layers % pp == 0
            and scenario.num_gpus % (tp * pp) == 0
        ):
            out.append(
                (
                    f"tp {tp}, sequence_parallel and pp {pp}",
                    {
                        "training.parallelism.tp": tp,
                        "training.parallelism.sequence_parallel": tp > 1,
                        "training.parallelism.pp": pp,
                    },
                )
            )
    return out


def _parallel_layouts(scenario: Scenario) -> list[str]:
    """The first model-parallel layout that fits on the same GPUs."""
    if scenario.model.kind == "encoder-decoder":
        return []
    for description, changes in _layout_changes(scenario):
        if _fits(scenario, changes):
            return [f"fits with {description} on the same {scenario.num_gpus} GPUs"]
    return []


def most_sharded(scenario: Scenario) -> str:
    """The strategy of the scenario's framework that shards the most (zero3 where offered)."""
    if scenario.strategy == "hsdp":
        return "hsdp"
    offered = FRAMEWORKS[scenario.training.framework.name].strategies
    return max(offered, key=lambda name: offered[name].zero_stage)


def _more_gpus(scenario: Scenario) -> list[str]:
    """The smallest GPU count on which a sharded variant fits (the planner's search)."""
    t = scenario.training
    sharded = most_sharded(scenario)
    variants: list[dict[str, Any]] = [
        {},
        {"training.activation_checkpointing": "full"},
        {"training.activation_checkpointing": "full", "training.micro_batch_size": 1},
    ]
    current = {
        "training.activation_checkpointing": t.activation_checkpointing,
        "training.micro_batch_size": t.micro_batch_size,
    }
    for extra in variants:
        changes = {k: v for k, v in extra.items() if current[k] != v}
        if extra and not changes:
            continue
        try:
            variant = derive(scenario, {"training.strategy": sharded, **changes})
        except UserError:
            continue
        found = min_gpus(variant)
        if found.count is not None and found.count > scenario.num_gpus:
            also = "".join(f" and {k.split('.')[-1]}: {v}" for k, v in changes.items())
            return [f"fits with {sharded}{also} on >= {found.count} GPUs"]
    return []


def _more_gpus_model_parallel(scenario: Scenario) -> list[str]:
    """The smallest GPU count with tensor and sequence parallelism across a host (the largest tp
    the heads allow), activations kept as configured: how Megatron users fit long sequences."""
    par, arch = scenario.training.parallel, scenario.model.shape
    if scenario.model.kind == "encoder-decoder" or par.tp > 1:
        return []
    tps = [
        t
        for t in (8, 4, 2)
        if t <= scenario.cluster.gpus_per_host
        and arch.num_heads % t == 0
        and arch.kv_heads % t == 0
    ]
    if not tps:
        return []
    best = None
    for strategy in ("zero1", "zero3"):  # Megatron's distributed optimizer, then full sharding
        try:
            variant = derive(
                scenario,
                {
                    "training.strategy": strategy,
                    "training.parallelism.tp": tps[0],
                    "training.parallelism.sequence_parallel": True,
                },
            )
        except UserError:
            continue
        found = min_gpus(variant)
        if found.count is not None and (best is None or found.count < best[1]):
            best = (strategy, found.count)
    if best is None or best[1] <= scenario.num_gpus:
        return []
    return [f"fits with tp {tps[0]}, sequence_parallel and {best[0]} on >= {best[1]} GPUs"]
