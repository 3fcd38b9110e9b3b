"""Published measurements with their full setups (simulator/data/validation/*.yaml, or a user's
file of the same shape) and what clustersim predicts for each.

A case: id, category, role (calibration: a constant was fitted to it; validation: nothing
was), source, metric, published value, tolerance, and its setup: a `scenario` (inline, paths
relative to the file) or, for collectives, a `collective` block (topology, num_hosts, op, group,
algorithm, nvls, size, as `clustersim collective` takes them). Optionally: flops_per_step (for
the metric that needs it), slow (run with --all / pytest -m slow), known_deviation (why it is
expected to miss its tolerance), choices (the free modelling choices made to pose the run: what
stands for what the source leaves open, e.g. a ZeRO stage for a framework's mode, a shipped
topology for an unpublished network, an assumed micro-batch split). Metrics:
- a `step` field of the report (tokens_per_s_per_gpu, tflops_per_gpu, mfu, time_s, tokens_per_s);
- tflops_per_gpu_from_flops: the case's flops_per_step / (GPUs x step time), for papers that
  count FLOPs their own way (Megatron's Eq. 3 includes recomputation);
- busbw_GBps: nccl-tests bus bandwidth of the collective block (GB/s);
- model_states_gb (parameters, gradients and optimizer states per GPU, 1e9 bytes);
  max_memory_allocated_gib / max_memory_reserved_gib (PyTorch's peak figures, 2^30 bytes);
- from the report's `energy` section (execution/energy.py): energy_per_step_j (the facility's,
  PUE included), gpu_power_avg_w / gpu_power_peak_w (one board), node_power_avg_w and
  node_power_peak_w (one host with its GPUs, as a meter at its power supplies reads it: the
  PUE taken out; the peak is the cluster's highest instant over its hosts),
  energy_to_train_mwh (the run, facility: hosts and PUE included) and gpu_energy_to_train_mwh
  (the boards alone over the same run).
Roles: calibration (a constant was fitted to it), validation (nothing was), comparison (a
published estimate, not a measurement, e.g. a model card's GPU-hours x TDP: shown with its
error, neither fitted nor evidence of accuracy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.resources import data_dir
from simulator.core.yamlio import read_yaml
from simulator.execution.context import SimContext
from simulator.execution.memory import memory_breakdown
from simulator.scenario.load import scenario_from_dict
from simulator.spec.calibration import CalibrationSpec
from simulator.studies.calibrate.runs import predicted_memory
from simulator.studies.simulate import simulate
from simulator.system.comm.cost import CollectiveCost, CommContext
from simulator.system.topology.groups import resolve_group
from simulator.system.topology.loader import load_topology

STEP_METRICS = ("tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "time_s", "tokens_per_s")
MEMORY_METRICS = ("model_states_gb", "max_memory_allocated_gib", "max_memory_reserved_gib")
ENERGY_METRICS = (
    "energy_per_step_j",
    "gpu_power_avg_w",
    "gpu_power_peak_w",
    "node_power_avg_w",
    "node_power_peak_w",
    "energy_to_train_mwh",
    "gpu_energy_to_train_mwh",
)
METRICS = (
    *STEP_METRICS,
    "tflops_per_gpu_from_flops",
    "busbw_GBps",
    *MEMORY_METRICS,
    *ENERGY_METRICS,
)
ROLES = ("calibration", "validation", "comparison")
REQUIRED = ("id", "category", "role", "source", "metric", "published", "tolerance")
OPTIONAL = ("scenario", "collective", "flops_per_step", "slow", "known_deviation", "choices")
COLLECTIVE_KEYS = ("topology", "num_hosts", "op", "group", "algorithm", "nvls", "size")


@dataclass(frozen=True, kw_only=True)
class Case:
    id: str
    category: str
    role: str
    source: str
    metric: str
    published: float
    tolerance: float
    base_dir: str
    file: str = ""
    scenario: dict[str, Any] | None = None
    collective: dict[str, Any] | None = None
    flops_per_step: float | None = None
    slow: bool = False
    known_deviation: str | None = None  # why the case is expected to miss (tests: strict xfail)
    choices: tuple[str, ...] = ()  # the free modelling choices made to pose it


def load_cases(path: str | Path) -> list[Case]:
    path = Path(path)
    data = read_yaml(path)
    cases = data.get("cases")
    problems = [
        Problem(k, "unknown key", did_you_mean(k, ["about", "cases"]))
        for k in data
        if k not in ("about", "cases")
    ]
    if not isinstance(cases, list):
        raise UserError(problems + [Problem("cases", "expected a list of cases")], str(path))
    out, seen = [], set()
    for i, c in enumerate(cases):
        found = _case_problems(f"cases.{i}", c)
        if not found and c["id"] in seen:
            found.append(Problem(f"cases.{i}.id", f"{c['id']!r} is used twice"))
        problems += found
        if found:
            continue
        seen.add(c["id"])
        fields = {k: c[k] for k in (*REQUIRED, *OPTIONAL) if k in c}
        if "choices" in fields:
            fields["choices"] = tuple(fields["choices"])
        out.append(Case(**fields, base_dir=str(path.parent), file=str(path)))
    if problems:
        raise UserError(problems, str(path))
    return out


def _case_problems(where: str, c: Any) -> list[Problem]:
    if not isinstance(c, dict):
        return [Problem(where, "expected a mapping")]
    found = [
        Problem(f"{where}.{k}", "unknown key", did_you_mean(k, (*REQUIRED, *OPTIONAL)))
        for k in c
        if k not in (*REQUIRED, *OPTIONAL)
    ]
    missing = [k for k in REQUIRED if k not in c]
    if missing:
        found.append(Problem(where, f"missing {', '.join(missing)}"))
    if c.get("metric") is not None and c.get("metric") not in METRICS:
        found.append(
            Problem(
                f"{where}.metric",
                f"unknown metric {c['metric']!r}",
                did_you_mean(str(c["metric"]), METRICS),
            )
        )
    if "role" in c and c["role"] not in ROLES:
        found.append(
            Problem(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {c['role']!r}")
        )
    for key in ("published", "tolerance"):
        if key in c and (
            isinstance(c[key], bool) or not isinstance(c[key], (int, float)) or c[key] <= 0
        ):
            found.append(Problem(f"{where}.{key}", f"expected a positive number, got {c[key]!r}"))
    choices = c.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(x, str) and x.strip() for x in choices):
        found.append(Problem(f"{where}.choices", "expected a list of non-empty strings"))
    metric = c.get("metric")
    setup = "collective" if metric == "busbw_GBps" else "scenario"
    if metric in METRICS and not isinstance(c.get(setup), dict):
        found.append(Problem(f"{where}.{setup}", f"a {metric} case needs a {setup} mapping"))
    if setup == "collective" and isinstance(c.get("collective"), dict):
        found += [
            Problem(f"{where}.collective.{k}", "unknown key", did_you_mean(k, COLLECTIVE_KEYS))
            for k in c["collective"]
            if k not in COLLECTIVE_KEYS
        ]
        found += [
            Problem(f"{where}.collective.{k}", "required key is missing")
            for k in ("topology", "op", "size")
            if k not in c["collective"]
        ]
    if metric == "tflops_per_gpu_from_flops" and not isinstance(
        c.get("flops_per_step"), (int, float)
    ):
        found.append(
            Problem(f"{where}.flops_per_step", "the metric needs the published FLOPs per step")
        )
    return found


def shipped_files() -> list[Path]:
    """The validation set shipped with the package (every case file, whatever it holds)."""
    return sorted(data_dir("validation").glob("*.yaml"))


def shipped_cases(name: str) -> list[Case]:
    return load_cases(data_dir("validation") / f"{name}.yaml")


def predict(
    case: Case, ctx: SimContext | None = None, calibration: CalibrationSpec | None = None
) -> float:
    """What clustersim predicts for the case's metric (under a profile's constants if given)."""
    if case.metric == "busbw_GBps":
        assert case.collective is not None  # load_cases checks each case has its setup block
        return _busbw_GBps(case.collective, case.base_dir, calibration)
    assert case.scenario is not None  # load_cases checks each case has its setup block
    scenario = scenario_from_dict(case.scenario, base_dir=case.base_dir)
    # A profile applies to the GPUs it was fitted on alone; other cases keep the built-in constants.
    if (
        calibration is not None
        and scenario.calibration.is_default
        and calibration.fitted_on(scenario.cluster.gpu.name)
    ):
        scenario = dataclasses.replace(scenario, calibration=calibration)
    if case.metric in MEMORY_METRICS:
        mem = memory_breakdown(scenario)
        if case.metric == "model_states_gb":
            return mem.model_states_bytes / 1e9
        return predicted_memory(scenario, mem, case.metric.removesuffix("_gib")) / 2**30
    # No interval: the intervals are fitted to these very predictions (studies/intervals.py).
    if case.metric in ENERGY_METRICS:
        report = simulate(scenario, ctx=ctx, runs=1, interval=False)
        return energy_metric(case.metric, report.get("energy"), case.id)
    step = simulate(scenario, ctx=ctx, runs=1, goodput=False, interval=False)["step"]
    if case.metric == "tflops_per_gpu_from_flops":
        return case.flops_per_step / (scenario.num_gpus * step["time_s"]) / 1e12
    return step[case.metric]


def energy_metric(metric: str, e: dict[str, Any] | None, where: str = "") -> float:
    """One ENERGY_METRICS figure from a report's `energy` section (module doc)."""
    if not e:
        raise UserError(
            Problem(
                where or metric,
                f"{metric}: the report has no energy section",
                "give the GPU's power figures (cluster.power.gpu, or a custom GPU's power)",
            )
        )
    if metric == "energy_per_step_j":
        return float(e["step_j"])
    if metric in ("gpu_power_avg_w", "gpu_power_peak_w"):
        return float(e["gpu_power_w"][metric.split("_")[2]])
    if metric in ("node_power_avg_w", "node_power_peak_w"):
        return float(e["node_power_w"][metric.split("_")[2]])
    step_s = e["step_j"] / e["cluster_power_w"]["avg"]  # the step's seconds
    if e["run_mwh"] is None:
        raise UserError(Problem(where or metric, f"{metric}: the report has no run (no tokens)"))
    if metric == "energy_to_train_mwh":
        return float(e["run_mwh"])
    assert metric == "gpu_energy_to_train_mwh", metric
    return e["gpu_energy_j"] / step_s * e["run_days"] * 86400 / 3.6e9


def _busbw_GBps(c: dict[str, Any], base_dir: str, calibration: CalibrationSpec | None) -> float:
    return collective_case_cost(c, base_dir, calibration).busbw_Bps / 1e9


def collective_case_cost(
    c: dict[str, Any],
    base_dir: str | None = None,
    calibration: CalibrationSpec | None = None,
    contexts: dict | None = None,
) -> CollectiveCost:
    """The predicted cost of a collective case's `collective` section (topology, num_hosts, nvls,
    op, group, size, algorithm). `contexts` keeps one CommContext per topology and NVLS setting
    across calls (tables of many sizes). A profile applies to the GPUs it was fitted on alone."""
    calibration = calibration if calibration is not None else CalibrationSpec()
    key = (c["topology"], c.get("num_hosts"), c.get("nvls", True), base_dir, id(calibration.comm))
    ctx = contexts.get(key) if contexts is not None else None
    if ctx is None:
        topo = load_topology(c["topology"], c.get("num_hosts"), base_dir=base_dir)
        comm = calibration.comm if calibration.fitted_on(topo.gpu) else CalibrationSpec().comm
        ctx = CommContext(topo, comm, nvls=c.get("nvls", True))
        if contexts is not None:
            contexts[key] = ctx
    group = c.get("group", "all")
    group = group.split(",") if isinstance(group, str) and "," in group else group
    return ctx.cost(
        c["op"], resolve_group(ctx.topology, group), int(c["size"]), c.get("algorithm", "auto")
    )
