"""Scenario files -> validated, resolved specs (frozen dataclasses).

Every problem in a file is reported at once with its dotted path and, for misspelt names
and keys, "did you mean ...". Names (model presets, GPUs, topologies) are resolved here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.system import hardware

from simulator.model import transformer as model_math

from simulator.model import presets
from simulator.core.errors import Problem, ScenarioError, did_you_mean
from simulator.system.hardware import GPU
from simulator.scenario.schema import (
    STRATEGIES, STRATEGY_ALIASES, ArchitectureModel, CustomGPU, ScenarioFile, TrainingSection,
)
from simulator.core.yamlio import read_yaml

DEFAULT_SCENARIO = "llama2-7b-zero3-8xa100"


@dataclass(frozen=True)
class ModelSpec:
    """The model: a full architecture, or a bare parameter count with an assumed shape."""

    params: int
    arch: model_math.Architecture | None
    name: str
    num_layers: int
    hidden_size: int
    shape_estimated: bool = False


@dataclass(frozen=True)
class ClusterSpec:
    topology_name: str
    topology_ref: str  # what load_topology reads: a shipped name or a resolved path
    gpu: GPU
    num_hosts: int
    gpus_per_host: int
    num_gpus: int
    price_per_gpu_hour: float | None
    stragglers: tuple = ()        # schema.Straggler entries, ranks checked < num_gpus
    degraded_links: tuple = ()    # schema.DegradedLink entries, checked against the topology


@dataclass(frozen=True)
class Scenario:
    name: str
    model: ModelSpec
    training: TrainingSection  # validated, frozen; strategy normalised to a canonical name
    cluster: ClusterSpec
    source: str = ""

    @property
    def strategy(self) -> str:
        return self.training.strategy

    @property
    def grad_accum_steps(self) -> int:
        return self.training.grad_accum_steps or 1  # resolved at load time

    @property
    def global_batch_size(self) -> int:
        t = self.training
        return t.micro_batch_size * self.grad_accum_steps * self.cluster.num_gpus

    def with_training(self, **changes: Any) -> "Scenario":
        """A copy with training fields changed (used for what-if suggestions)."""
        return dataclasses.replace(self, training=self.training.model_copy(update=changes))

    def with_gpus(self, num_gpus: int) -> "Scenario":
        hosts = max(1, math.ceil(num_gpus / self.cluster.gpus_per_host))
        cluster = dataclasses.replace(self.cluster, num_gpus=num_gpus, num_hosts=hosts)
        return dataclasses.replace(self, cluster=cluster)


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file; ScenarioError names the file on any problem."""
    path = Path(path)
    data = read_yaml(path)
    try:
        return scenario_from_dict(data, base_dir=path.parent)
    except ScenarioError as exc:
        raise exc.with_source(str(path)) from None


def scenario_from_dict(data: dict[str, Any], base_dir: Path | None = None) -> Scenario:
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
        reported = {p.path for p in problems}
        problems += [p for p in _name_problems(data) if p.path not in reported]
        raise ScenarioError(problems) from None
    problems: list[Problem] = []
    model = _resolve_model(spec, problems)
    training = _resolve_training(spec.training, problems)
    cluster = _resolve_cluster(spec, problems, base_dir)
    if model and training and cluster:
        _check_batch(training, cluster, problems)
    if problems:
        raise ScenarioError(problems)
    training = training.model_copy(update={"grad_accum_steps": resolved_accum(training, cluster.num_gpus)})
    return Scenario(name=spec.name, model=model, training=training, cluster=cluster)


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"] if not str(part).startswith(("function-", "literal["))]
        # Drop union-branch labels pydantic inserts (e.g. 'str', 'CustomGPU').
        loc = [p for p in loc if p not in ("str", "CustomGPU", "int", "float")]
        path = ".".join(loc)
        etype = err["type"]
        hint = ""
        if etype == "extra_forbidden":
            parent = _model_at(loc[:-1])
            msg = "unknown key"
            if parent is not None:
                hint = did_you_mean(loc[-1], parent.model_fields)
        elif etype == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            msg = f"expected one of {expected}, got {err.get('input')!r}"
            choices = [c.strip(" '") for c in str(expected).replace(" or ", ",").split(",")]
            hint = did_you_mean(str(err.get("input")), [c for c in choices if c])
        elif etype == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(Problem(path, msg, hint))
    # A union of str | CustomGPU reports one error per branch; keep each message once.
    unique = list(dict.fromkeys(problems))
    return unique


def _name_problems(data: dict[str, Any]) -> list[Problem]:
    """Unknown preset, strategy, GPU or topology names, checked from the raw mapping when the
    shape check failed, so that every problem in the file is reported at once."""
    from simulator.system.topology import graph as topology

    def text(section: str, key: str):
        value = data.get(section, {}) if isinstance(data, dict) else {}
        value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, str) else None

    problems = []
    checks = [
        ("model.preset", text("model", "preset"), presets.preset_names(), "unknown model preset"),
        ("training.strategy", text("training", "strategy"), [*STRATEGIES, *STRATEGY_ALIASES], "unknown strategy"),
        ("cluster.gpu", text("cluster", "gpu"), [*hardware.gpu_names(), *hardware.GPU_ALIASES], "unknown GPU"),
    ]
    name = text("cluster", "topology")
    if name is not None and not name.endswith((".yaml", ".yml")) and "/" not in name:
        checks.append(("cluster.topology", name, topology.topology_names(), "unknown topology"))
    for path, value, valid, message in checks:
        if value is not None and value.lower() not in {v.lower() for v in valid}:
            problems.append(Problem(path, f"{message} {value!r}", did_you_mean(value, valid)))
    return problems


def _model_at(loc: list[str]):
    """The pydantic model class at a dotted location of ScenarioFile, for key suggestions."""
    cls = ScenarioFile
    for part in loc:
        field = cls.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and hasattr(c, "model_fields")), None)
        if nxt is None:
            return None
        cls = nxt
    return cls


def _resolve_model(spec: ScenarioFile, problems: list[Problem]) -> ModelSpec | None:
    m = spec.model
    if m.preset is not None:
        try:
            arch = presets.get_preset(m.preset)
        except KeyError:
            problems.append(Problem("model.preset", f"unknown model preset {m.preset!r}",
                                    did_you_mean(m.preset, presets.preset_names())))
            return None
        return _arch_spec(arch, m.preset)
    if m.architecture is not None:
        try:
            arch = _architecture(m.architecture)
        except ValueError as exc:
            problems.append(Problem("model.architecture", str(exc)))
            return None
        return _arch_spec(arch, "custom")
    params = int(m.params)
    layers, hidden, estimated = _shape_for(params, m.num_layers, m.hidden_size)
    return ModelSpec(params=params, arch=None, name=f"{params / 1e9:g}B params", num_layers=layers,
                     hidden_size=hidden, shape_estimated=estimated)


def _arch_spec(arch: model_math.Architecture, name: str) -> ModelSpec:
    return ModelSpec(params=model_math.param_count(arch), arch=arch, name=name,
                     num_layers=arch.total_layers, hidden_size=arch.hidden_size)


def _architecture(a: ArchitectureModel) -> model_math.Architecture:
    fields = a.model_dump()
    if fields["ffn_hidden_size"] is None:
        fields["ffn_hidden_size"] = 4 * fields["hidden_size"]
    return model_math.Architecture(**fields)


# GPT-3 (Brown et al. 2020, Table 2.1) keeps d_model / n_layers near 128 (175B: 12288/96);
# with P ~ 12 L h^2 (Kaplan et al. 2020, Sec 2.1) that gives h = (128 P / 12)^(1/3).
ASPECT_RATIO = 128


def _shape_for(params: int, layers: int | None, hidden: int | None) -> tuple[int, int, bool]:
    """Layer count and hidden size for a bare parameter count (estimated when not given)."""
    if layers and hidden:
        return layers, hidden, False
    if hidden:
        return max(1, round(params / (12 * hidden**2))), hidden, True
    if layers:
        return layers, max(64, round(math.sqrt(params / (12 * layers)))), True
    h = (ASPECT_RATIO * params / 12) ** (1 / 3)
    h = max(64, int(round(h / 64)) * 64)
    return max(1, round(params / (12 * h * h))), h, True


def _resolve_training(t: TrainingSection, problems: list[Problem]) -> TrainingSection | None:
    strategy = STRATEGY_ALIASES.get(t.strategy.lower(), t.strategy.lower())
    ok = True
    if strategy not in STRATEGIES:
        problems.append(Problem("training.strategy", f"unknown strategy {t.strategy!r}",
                                did_you_mean(t.strategy, [*STRATEGIES, *STRATEGY_ALIASES])))
        ok = False
    if strategy == "hsdp" and t.shard_group_size is None:
        problems.append(Problem("training.shard_group_size", "required when strategy is hsdp",
                                "e.g. shard_group_size: 8 to shard within each host"))
        ok = False
    if t.offload.params == "cpu" and strategy not in ("zero3", "hsdp"):
        problems.append(Problem("training.offload.params", "parameter offload needs zero3 (ZeRO-Infinity / "
                                "FSDP CPUOffload shard parameters)", "use strategy: zero3"))
        ok = False
    if t.offload.optimizer == "cpu" and strategy == "ddp":
        problems.append(Problem("training.offload.optimizer", "optimizer offload needs a ZeRO stage "
                                "(ZeRO-Offload)", "use strategy: zero1, zero2 or zero3"))
        ok = False
    return t.model_copy(update={"strategy": strategy}) if ok else None


def _resolve_gpu(value: str | CustomGPU | None, default: str, problems: list[Problem]) -> GPU | None:
    if isinstance(value, CustomGPU):
        return GPU(name=value.name, memory_bytes=value.memory, peak_flops=dict(value.peak_flops),
                   hbm_bw_bytes_per_s=value.hbm_bandwidth, source=value.source,
                   cuda_context_bytes=value.cuda_context or hardware.DEFAULT_CUDA_CONTEXT_BYTES,
                   pcie_bw_bytes_per_s=value.pcie_bandwidth or 32e9)
    name = value or default
    try:
        return hardware.get_gpu(name)
    except KeyError:
        problems.append(Problem("cluster.gpu", f"unknown GPU {name!r}",
                                did_you_mean(name, [*hardware.gpu_names(), *hardware.GPU_ALIASES])))
        return None


def _resolve_cluster(spec: ScenarioFile, problems: list[Problem], base_dir: Path | None) -> ClusterSpec | None:
    from simulator.system.topology import graph as topology  # late import: topology files are only read when needed

    c = spec.cluster
    ref = _topology_ref(c.topology, base_dir)
    try:
        topo = topology.load_topology(ref, num_hosts=c.num_hosts)
    except ScenarioError as exc:
        problems.extend(exc.at("cluster.topology").problems)
        return None
    gpu = _resolve_gpu(c.gpu, topo.gpu, problems)
    total = topo.num_hosts * topo.gpus_per_host
    num_gpus = c.num_gpus or total
    if num_gpus > total:
        problems.append(Problem("cluster.num_gpus", f"{num_gpus} GPUs requested but {c.num_hosts} host(s) of "
                                f"{c.topology} have {total}", f"raise cluster.num_hosts to "
                                f"{math.ceil(num_gpus / topo.gpus_per_host)}"))
        return None
    for i, st in enumerate(c.stragglers):
        if st.rank >= num_gpus:
            problems.append(Problem(f"cluster.stragglers.{i}.rank", f"rank {st.rank} does not exist",
                                    f"ranks are 0..{num_gpus - 1}"))
    for i, link in enumerate(c.degraded_links):
        for end in ("source", "target"):
            name = getattr(link, end)
            if name not in topo.graph:
                problems.append(Problem(f"cluster.degraded_links.{i}.{end}", f"no vertex {name!r} in the topology",
                                        did_you_mean(name, [str(v) for v in topo.graph.nodes])))
        if link.source in topo.graph and link.target in topo.graph and not topo.graph.has_edge(link.source, link.target):
            problems.append(Problem(f"cluster.degraded_links.{i}", f"no link {link.source} -> {link.target}"))
    if gpu is None:
        return None
    return ClusterSpec(topology_name=c.topology, topology_ref=ref, gpu=gpu, num_hosts=topo.num_hosts,
                       gpus_per_host=topo.gpus_per_host, num_gpus=num_gpus,
                       price_per_gpu_hour=c.price_per_gpu_hour, stragglers=c.stragglers,
                       degraded_links=c.degraded_links)


def _topology_ref(name: str, base_dir: Path | None) -> str:
    """A topology given as a path is relative to the scenario file's folder."""
    if base_dir is not None and (name.endswith((".yaml", ".yml")) or "/" in name):
        candidate = (base_dir / name)
        if candidate.exists():
            return str(candidate)
    return name


def _check_batch(t: TrainingSection, c: ClusterSpec, problems: list[Problem]) -> None:
    if t.strategy == "hsdp" and t.shard_group_size and c.num_gpus % t.shard_group_size:
        problems.append(Problem("training.shard_group_size", f"{c.num_gpus} GPUs do not split into groups "
                                f"of {t.shard_group_size}", "use a divisor of the GPU count"))
    if t.global_batch_size is None:
        return
    per_step = t.micro_batch_size * c.num_gpus
    if t.grad_accum_steps is not None and t.grad_accum_steps * per_step != t.global_batch_size:
        problems.append(Problem("training.global_batch_size", f"{t.global_batch_size} sequences != "
                                f"micro_batch_size x grad_accum_steps x GPUs = {t.grad_accum_steps * per_step}",
                                "give either grad_accum_steps or global_batch_size"))
    elif t.global_batch_size % per_step:
        problems.append(Problem("training.global_batch_size", f"{t.global_batch_size} sequences is not a "
                                f"multiple of micro_batch_size x GPUs = {per_step}",
                                f"use a multiple of {per_step}"))


def resolved_accum(t: TrainingSection, num_gpus: int) -> int:
    """Gradient-accumulation steps from grad_accum_steps or global_batch_size (validated)."""
    if t.grad_accum_steps is not None:
        return t.grad_accum_steps
    if t.global_batch_size is not None:
        return t.global_batch_size // (t.micro_batch_size * num_gpus)
    return 1
