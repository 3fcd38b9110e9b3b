"""Scenario files -> validated, resolved specs: the one validation path of `run`, `validate`,
the planner and sweeps.

Every problem in a file is reported at once with its dotted path and, for misspelt names and
keys, "did you mean ...". Shape and units are checked by the schema; names (model presets,
GPUs, topologies) are resolved here, and each strategy validates its own settings. A
scenario derived from another (the planner's GPU counts, a sweep's points) goes through the
same path: `derive` edits the validated mapping and validates it again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.resources import scenario_dir
from simulator.core.yamlio import read_yaml
from simulator.execution.frameworks import framework_problems, strategy_for
from simulator.execution.strategies import get_strategy
from simulator.execution.strategies.fsdp import SHARD_GRAD_OP
from simulator.model import presets
from simulator.model.kernels import default_kernels
from simulator.model.precision import PRECISIONS
from simulator.model.spec import ModelSpec, from_architecture, from_params
from simulator.scenario import resolve
from simulator.scenario.calibration import resolve_calibration
from simulator.scenario.framework import framework_spec, raw_problems
from simulator.scenario.knobs import (
    bucket_problems,
    foreign_knobs,
    model_problems,
    training_problems,
)
from simulator.scenario.moe import architecture_problems, training_moe_problems
from simulator.scenario.parallel import microbatches, parallel_spec
from simulator.scenario.problems import pydantic_problems, text_at
from simulator.scenario.reliability import resolve_reliability
from simulator.scenario.schema import ScenarioFile
from simulator.scenario.schema_finetune import finetune_spec
from simulator.scenario.training_modes import optimizer_implementation, shard_grad_op
from simulator.spec.specs import (
    ClusterSpec,
    MoETrainingSpec,
    OffloadSpec,
    Scenario,
    ShardingSpec,
    TrainingSpec,
)
from simulator.system import hardware
from simulator.system.topology.loader import TopologyInfos, topology_names

DEFAULT_SCENARIO = "llama2-7b-zero3-8xa100"


def scenario_names() -> list[str]:
    """Shipped scenarios, by their path below the scenario folder without .yaml (sweeps excluded)."""
    root = scenario_dir()
    return sorted(
        p.relative_to(root).with_suffix("").as_posix()
        for p in root.rglob("*.yaml")
        if "axes" not in read_yaml(p)
    )


def scenario_path(name_or_path: str | Path) -> Path:
    """A scenario file by path, or a shipped scenario by name (see `clustersim scenarios`)."""
    text = str(name_or_path)
    path = Path(text)
    if path.exists() or text.endswith((".yaml", ".yml")):
        return path
    shipped = scenario_dir() / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    raise UserError(
        Problem(
            "SCENARIO",
            f"no scenario file or shipped scenario {text!r}",
            did_you_mean(text, scenario_names()),
        )
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file; UserError names the file on any problem."""
    path = scenario_path(path)
    data = read_yaml(path)
    if "axes" in data or "base" in data:
        raise UserError(
            Problem(
                "",
                "this is a sweep file (it has axes/base), not a scenario",
                f"run it with: clustersim sweep {path} --out results.csv",
            ),
            str(path),
        )
    try:
        return scenario_from_dict(data, base_dir=path.parent, source=str(path))
    except UserError as exc:
        raise exc.with_source(str(path)) from None


def scenario_from_dict(
    data: dict[str, Any],
    base_dir: str | Path | None = None,
    source: str = "",
    *,
    resolved: tuple[Any, ClusterSpec] | None = None,
    topology_infos: TopologyInfos | None = None,
) -> Scenario:
    """`resolved` is (a cluster section, its ClusterSpec): reused when data's section is the same,
    as when derive changes only the training (the topology file is not read again).
    `topology_infos`: a session's topology files already read (re-read when they change)."""
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        reported = {p.path for p in problems}
        problems += [p for p in _name_problems(data) + raw_problems(data) if p.path not in reported]
        raise UserError(problems) from None
    problems = model_problems(spec.model)
    model = _model(spec, problems)
    if model is not None and spec.model.preset is not None:
        model = _preset_defaults(model, spec)
    if model is not None:
        problems += training_moe_problems(spec.training.moe is not None, model)
    cluster: ClusterSpec | None
    if resolved is not None and resolved[0] == data.get("cluster"):
        cluster = resolved[1]
    else:
        cluster = resolve.cluster(spec.cluster, problems, base_dir, topology_infos)
    warnings: list[str] = []
    training = _training(spec, cluster.num_gpus if cluster else None, problems, warnings)
    calibration = resolve_calibration(
        spec.calibration, base_dir, problems, cluster.gpu.name if cluster else None
    )
    if model and training and cluster and calibration:
        resolve.check_compat(model, training, cluster, problems, warnings, calibration.comm)
    reliability = resolve_reliability(spec.reliability, problems)
    if problems:
        raise UserError(problems)
    # Each part is None only with a problem added.
    assert model is not None and training is not None and cluster is not None
    assert calibration is not None
    return Scenario(
        name=spec.name,
        model=model,
        training=training,
        cluster=cluster,
        source=source,
        base_dir=str(base_dir) if base_dir is not None else None,
        document=json.dumps(data, sort_keys=True, default=str),
        warnings=tuple(warnings),
        reliability=reliability,
        calibration=calibration,
    )


def derive(scenario: Scenario, changes: dict[str, Any]) -> Scenario:
    """The scenario with fields changed (dotted paths; None removes a field), validated again.
    A new training.strategy drops the old strategy's knobs the new one does not read."""
    data = scenario.data()
    resolved = (copy.deepcopy(data.get("cluster")), scenario.cluster)
    strategy = changes.get("training.strategy")
    if isinstance(strategy, str):
        changes = {**{k: None for k in foreign_knobs(strategy)}, **changes}
    for path, value in changes.items():
        parts = path.split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    try:
        return scenario_from_dict(data, scenario.base_dir, scenario.source, resolved=resolved)
    except UserError as exc:
        raise exc.with_source(scenario.source) from None


def with_gpus(scenario: Scenario, num_gpus: int) -> Scenario:
    """The scenario on `num_gpus` GPUs (whole hosts), micro-batch and accumulation kept per GPU."""
    hosts = max(1, math.ceil(num_gpus / scenario.cluster.gpus_per_host))
    return derive(
        scenario,
        {
            "cluster.num_gpus": num_gpus,
            "cluster.num_hosts": hosts,
            "training.global_batch_size": None,
            "training.grad_accum_steps": scenario.training.grad_accum_steps,
        },
    )


def _name_problems(data: dict[str, Any]) -> list[Problem]:
    """Unknown preset, GPU or topology names, checked from the raw mapping when the shape check
    failed, so that every problem in the file is reported at once."""
    checks = [
        (
            "model.preset",
            text_at(data, "model", "preset"),
            presets.preset_names(),
            "unknown model preset",
        ),
        (
            "cluster.gpu",
            text_at(data, "cluster", "gpu"),
            [*hardware.gpu_names(), *hardware.GPU_ALIASES],
            "unknown GPU",
        ),
    ]
    name = text_at(data, "cluster", "topology")
    if name is not None and not name.endswith((".yaml", ".yml")) and "/" not in name:
        checks.append(("cluster.topology", name, topology_names(), "unknown topology"))
    return [
        Problem(path, f"{message} {value!r}", did_you_mean(value, valid))
        for path, value, valid, message in checks
        if value is not None and value.strip().lower() not in {v.lower() for v in valid}
    ]


def _model(spec: ScenarioFile, problems: list[Problem]) -> ModelSpec | None:
    m = spec.model
    if m.preset is not None:
        try:
            arch = presets.get_preset(m.preset)
        except KeyError:
            problems.append(
                Problem(
                    "model.preset",
                    f"unknown model preset {m.preset!r}",
                    did_you_mean(m.preset, presets.preset_names()),
                )
            )
            return None
        name = m.preset.strip().lower()
        if m.vocab_size is not None and m.vocab_size != arch.vocab_size:
            arch, name = (
                dataclasses.replace(arch, vocab_size=m.vocab_size),
                f"{name} (vocabulary {m.vocab_size})",
            )
        return from_architecture(arch, name)
    if m.architecture is not None:
        shape = architecture_problems(m.architecture)
        if shape:  # the Architecture would refuse the same, less precisely
            problems += shape
            return None
        try:
            return from_architecture(resolve.architecture(m.architecture), "custom")
        except ValueError as exc:
            problems.append(Problem("model.architecture", str(exc)))
            return None
    assert m.params is not None  # ModelSection._one_source: no preset, no architecture
    return from_params(int(m.params), m.num_layers, m.hidden_size)


def _preset_training(spec: ScenarioFile) -> dict[str, bool]:
    """The preset's training defaults the file does not override (none for other models)."""
    name = spec.model.preset.strip().lower() if spec.model.preset is not None else None
    if name not in presets.PRESETS:
        return {}
    given = spec.training.model_fields_set
    return {k: v for k, v in presets.training_defaults(name).items() if k not in given}


def _preset_defaults(model: ModelSpec, spec: ScenarioFile) -> ModelSpec:
    return dataclasses.replace(model, preset_defaults=tuple(_preset_training(spec).items()))


def _dropout(spec: ScenarioFile) -> bool:
    """training.dropout as written, else the preset's, else on (Vaswani et al. 2017's default)."""
    t = spec.training
    if t.dropout is not None:
        return t.dropout
    return _preset_training(spec).get("dropout", True)


def _training(
    spec: ScenarioFile, num_gpus: int | None, problems: list[Problem], warnings: list[str]
) -> TrainingSpec | None:
    t = spec.training
    strategy = get_strategy(t.strategy)
    found: list[Problem] = []
    framework = framework_spec(t, strategy.name, found, warnings)
    z = t.zero3
    reshard = shard_grad_op(t, found) if t.strategy == SHARD_GRAD_OP else z.reshard_after_forward
    training = TrainingSpec(
        precision=PRECISIONS[t.precision],
        optimizer=t.optimizer,
        strategy=strategy.name,
        shard_group_size=t.shard_group_size,
        micro_batch_size=t.micro_batch_size,
        seq_len=t.seq_len,
        grad_accum_steps=t.grad_accum_steps or 1,
        activation_checkpointing=t.activation_checkpointing,
        recompute_modules=None if t.recompute_modules is None else tuple(t.recompute_modules),
        flash_attention=t.flash_attention,
        kernels=t.kernels or default_kernels(framework.name),
        attention_kernel=t.attention_kernel,
        optimizer_implementation=optimizer_implementation(t, framework.name, found),
        gradient_clipping=(
            t.gradient_clipping
            if t.gradient_clipping is not None
            else framework.name != "deepspeed"
        ),
        dropout=_dropout(spec),
        offload=OffloadSpec(
            optimizer=t.offload.optimizer == "cpu", params=t.offload.params == "cpu"
        ),
        sharding=ShardingSpec(
            backward_prefetch=z.backward_prefetch,
            limit_all_gathers=z.limit_all_gathers,
            reshard_after_forward=reshard,
            reduce_dtype=z.reduce_dtype,
            gradient_sync=z.gradient_sync,
        ),
        bucket_size_bytes=t.bucket_size,
        gradient_as_bucket_view=t.gradient_as_bucket_view,
        ddp_comm_hook=t.ddp_comm_hook,
        framework_overhead_bytes=t.framework_overhead,
        allocator_reserve=t.allocator_reserve,
        tokens=t.tokens,
        collective_algorithm=t.collective_algorithm,
        nvls=t.nvls,
        compute_jitter=t.compute_jitter,
        seed=t.seed,
        framework=framework,
        moe=MoETrainingSpec(**t.moe.model_dump()) if t.moe is not None else MoETrainingSpec(),
        finetune=finetune_spec(t.finetune),
    )
    found += framework_problems(training) + training_problems(t, strategy.name, t.framework)
    if num_gpus is None:
        problems.extend(found)
        return None
    parallel = parallel_spec(t.parallelism, num_gpus, found)
    accum = microbatches(t.parallelism, t.grad_accum_steps, found)
    if parallel is not None and not framework_problems(training):
        training = dataclasses.replace(training, parallel=parallel)
        found += strategy_for(training).validate(training, parallel.dp)
        shards = (
            min(t.shard_group_size or parallel.dp, parallel.dp)
            if strategy.name == "hsdp"
            else parallel.dp
        )
        found += bucket_problems(t, strategy.name, t.framework, shards)
        accum = resolve.accumulation(t, accum, parallel.dp, found)
    problems.extend(found)
    if found:
        return None
    assert accum is not None  # no problems: the layout resolved and accumulation() ran
    return dataclasses.replace(training, grad_accum_steps=accum)
