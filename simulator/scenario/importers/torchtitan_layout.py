"""torchtitan's parallel layout and batches, read from a job TOML's [parallelism] and
[training] keys (torchtitan/distributed/parallel_dims.py, distributed/pipeline.py; semantics in
importers/torchtitan.py's module doc): the data-parallel strategy, tp / pp / cp / ep degrees,
the pipeline schedule and its micro-batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.scenario.importers.base import Partial

TR, PAR = "training", "training.parallelism"
SCHEDULES = {"1F1B": "1f1b", "Interleaved1F1B": "interleaved-1f1b", "GPipe": "gpipe"}
# fully_shard's strategies: the keys that set training.fsdp2 only apply to them.
SHARDED = ("zero3", "hsdp")


@dataclass(frozen=True)
class Layout:
    """What the [training] and [parallelism] keys are read with."""

    strategy: str
    pp: int
    pp_microbatch: int
    tp: int

    @property
    def sharded(self) -> bool:
        return self.strategy in SHARDED


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _strategy(par: dict[str, Any]) -> str:
    """torchtitan's data parallelism (parallel_dims.py): shard 1 is DDP (replicate) or none,
    replicate 1 FSDP, both above 1 HSDP."""
    replicate = par.get("data_parallel_replicate_degree", 1)
    shard = par.get("data_parallel_shard_degree", -1)
    if shard == 1 or replicate == 1:
        return "ddp" if shard == 1 else "zero3"
    return "hsdp"


def batches(table: dict[str, Any], p: Partial, layout: Layout) -> None:
    """batch_size (local_batch_size in newer versions): sequences per data-parallel rank per
    step, before any accumulation to global_batch_size (-1: no accumulation). Under pipeline
    parallelism they go through the pipeline as batch_size / pipeline_parallel_microbatch_size
    micro-batches."""
    key = next((k for k in ("local_batch_size", "batch_size") if k in table), None)
    name = f"training.{key}" if key else "default: batch_size 8"
    local = table[key] if key else 8
    total = table.get("global_batch_size", -1)
    if "global_batch_size" in table:
        if total in (-1, None):
            p.ignore("training.global_batch_size", total, "-1: no gradient accumulation")
        else:
            p.map(
                "training.global_batch_size",
                total,
                f"{TR}.global_batch_size",
                total,
                "sequences over all ranks",
            )
    accumulates = total not in (-1, None)
    if layout.pp == 1:
        if key:
            p.map(name, local, f"{TR}.micro_batch_size", local, "per data-parallel rank")
        else:
            p.assignments.append((f"{TR}.micro_batch_size", local, name))
        return
    if isinstance(local, bool) or not isinstance(local, int) or local % layout.pp_microbatch:
        p.refuse(
            name,
            local,
            "torchtitan needs it divisible by pipeline_parallel_microbatch_size "
            f"{layout.pp_microbatch}",
        )
        return
    chunks = local // layout.pp_microbatch
    why = (
        f"per data-parallel rank: {chunks} pipeline micro-batches of "
        f"pipeline_parallel_microbatch_size {layout.pp_microbatch}"
    )
    p.assignments.append(
        (
            f"{TR}.micro_batch_size",
            layout.pp_microbatch,
            "parallelism.pipeline_parallel_microbatch_size",
        )
    )
    if accumulates:  # global_batch_size / (pipeline_parallel_microbatch_size x dp) micro-batches
        p.note(name, local, f"{TR}.global_batch_size", why + ", accumulated to global_batch_size")
    elif key:
        p.map(name, local, f"{TR}.grad_accum_steps", chunks, why)
    else:
        p.assignments.append((f"{TR}.grad_accum_steps", chunks, name))


def layout_of(par: dict[str, Any]) -> Layout:
    """The layout a [parallelism] table gives (its defaults where a key is absent)."""
    return Layout(
        _strategy(par),
        _int(par.get("pipeline_parallel_degree", 1)),
        _int(par.get("pipeline_parallel_microbatch_size", 1)),
        _int(par.get("tensor_parallel_degree", 1)),
    )


def parallelism(table: dict[str, Any], p: Partial, layout: Layout) -> None:
    degrees = {
        "tensor_parallel_degree": "tp",
        "pipeline_parallel_degree": "pp",
        "context_parallel_degree": "cp",
        "expert_parallel_degree": "ep",
        "expert_tensor_parallel_degree": "etp",
    }
    replicate = table.get("data_parallel_replicate_degree", 1)
    shard = table.get("data_parallel_shard_degree", -1)
    for key, value in table.items():
        name = f"parallelism.{key}"
        if key in degrees:
            p.map(name, value, f"{PAR}.{degrees[key]}", value)
            if key == "tensor_parallel_degree" and value > 1:
                p.assignments.append((f"{PAR}.sequence_parallel", True, name))
        elif key == "data_parallel_replicate_degree":
            p.note(name, value, f"{TR}.strategy")
        elif key == "data_parallel_shard_degree":
            p.note(name, value, f"{TR}.strategy", "-1: what remains" if value == -1 else "")
        elif key == "pipeline_parallel_schedule":
            if value in SCHEDULES:
                p.map(name, value, f"{PAR}.pipeline.schedule", SCHEDULES[value])
            else:
                p.refuse(name, value, f"one of {', '.join(SCHEDULES)}")
        elif key == "fsdp_reshard_after_forward":
            flags = {"always": True, "never": False}
            if value not in (*flags, "default"):
                p.refuse(name, value, "default, always or never")
            elif not layout.sharded:
                p.ignore(name, value, "fully_shard's: not used without sharding")
            elif value in flags:
                p.map(name, value, f"{TR}.fsdp2.reshard_after_forward", flags[value])
            elif layout.pp > 1:
                target = f"{TR}.fsdp2.reshard_after_forward"
                p.map(name, value, target, False, "default under pipeline parallelism: never")
            else:
                p.ignore(name, value, "default: reshard, except the root")
        elif key == "disable_loss_parallel":
            if value and layout.tp > 1:
                p.refuse(
                    name,
                    value,
                    "the logits gathered whole on every tensor-parallel rank are not modelled "
                    "(clustersim's output layer and loss are vocabulary-parallel)",
                )
            else:
                p.ignore(name, value, "the loss stays vocabulary-parallel" if not value else "tp 1")
        elif key == "pipeline_parallel_microbatch_size":
            if layout.pp > 1:
                p.note(name, value, f"{TR}.micro_batch_size", "one pipeline micro-batch")
            else:
                p.ignore(name, value, "no pipeline parallelism")
        elif key in ("enable_async_tensor_parallel", "enable_compiled_autograd"):
            p.ignore(name, value, "a kernel switch with the same collectives")
        else:
            p.unknown(
                name,
                value,
                [
                    *degrees,
                    "data_parallel_replicate_degree",
                    "data_parallel_shard_degree",
                    "fsdp_reshard_after_forward",
                    "pipeline_parallel_schedule",
                    "pipeline_parallel_microbatch_size",
                    "disable_loss_parallel",
                    "enable_async_tensor_parallel",
                    "enable_compiled_autograd",
                ],
            )
    if layout.sharded and layout.pp > 1 and "fsdp_reshard_after_forward" not in table:
        p.assignments.append(
            (f"{TR}.fsdp2.reshard_after_forward", False, "default: not under pipeline parallelism")
        )
    degrees_key = "parallelism.data_parallel_replicate_degree x data_parallel_shard_degree"
    p.assignments.append((f"{TR}.strategy", layout.strategy, degrees_key))
    if layout.strategy == "hsdp":
        if shard != -1:
            p.assignments.append(
                (f"{TR}.shard_group_size", shard, "parallelism.data_parallel_shard_degree")
            )
        else:
            p.pending["hsdp_replicate"] = replicate
    p.pending["dp_check"] = (replicate, shard, p.source)
