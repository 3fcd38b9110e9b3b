"""The public Python API (re-exported lazily by `simulator/__init__.py`):

    import simulator
    scenario = simulator.load("scenarios/llama2-7b-zero3-8xa100.yaml")   # or a dict, or a name
    result = simulator.run(scenario)
    result.memory.fits, result.step.time_s, result.to_dict()             # to_dict() == run --json

`Session` keeps one SimContext (built topologies, routed collective plans) across runs, so a loop
over variants of one cluster pays for the topology once; `sweep` runs a base scenario over axes
with the sweep study's own point runner. Every user mistake is a `UserError` with field paths.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.execution.context import SimContext
from simulator.spec.specs import Scenario

ScenarioLike = Scenario | Mapping[str, Any] | str | Path


def load(
    source: ScenarioLike, base_dir: str | Path | None = None, ctx: SimContext | None = None
) -> Scenario:
    """A validated scenario from a file path, a shipped scenario's name or a mapping (relative
    topology or calibration paths in a mapping resolve against `base_dir`, default the current
    folder). A Scenario is returned as it is. `ctx`: a session's context, whose topology files
    already read are not read again (unless they changed)."""
    from simulator.scenario.load import load_scenario, scenario_from_dict

    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return scenario_from_dict(
            copy.deepcopy(dict(source)),
            base_dir=base_dir if base_dir is not None else Path.cwd(),
            topology_infos=ctx.topology_infos if ctx is not None else None,
        )
    if isinstance(source, (str, Path)):
        return load_scenario(source)
    raise UserError(
        Problem(
            "scenario",
            f"expected a scenario file path, a shipped scenario's name or a mapping, "
            f"got {type(source).__name__}",
        )
    )


# ------------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Memory:
    """Per-GPU memory of the worst pipeline stage (report key `memory`)."""

    fits: bool
    total_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    per_gpu: dict[str, int]
    suggestions: list[str]


@dataclass(frozen=True)
class Step:
    """One optimizer step (report key `step`)."""

    time_s: float
    compute_s: float
    comm_s: float
    exposed_comm_s: float
    mfu: float
    hfu: float
    tflops_per_gpu: float
    tokens_per_step: int
    tokens_per_s: float
    tokens_per_s_per_gpu: float


@dataclass(frozen=True)
class Collective:
    """One collective of the step, as nccl-tests counts it (report key `collectives`)."""

    op: str
    group: str
    group_size: int
    bytes: int
    count: int
    algorithm: str
    protocol: str
    time_s: float
    busbw_GBps: float


@dataclass(frozen=True)
class Goodput:
    """The Monte Carlo of the whole run with failures (report key `training.goodput`)."""

    effective_training_time_ratio: float
    wall_days: float
    useful_days: float
    interruptions: Any
    checkpoint_interval_s: float
    runs: int


class Result:
    """A simulated scenario: typed views of the report plus the report itself (`to_dict()`, the
    same object `clustersim run --json` prints)."""

    def __init__(self, scenario: Scenario, report: dict[str, Any]):
        self.scenario = scenario
        self._report = report
        mem, per = report["memory"], report["memory"]["per_gpu"]
        self.memory = Memory(
            fits=mem["fits"],
            total_bytes=per["total_bytes"],
            capacity_bytes=mem["capacity_bytes"],
            headroom_bytes=mem["headroom_bytes"],
            params_bytes=per["params_bytes"],
            grads_bytes=per["grads_bytes"],
            optimizer_bytes=per["optimizer_bytes"],
            activations_bytes=per["activations_bytes"],
            per_gpu=dict(per),
            suggestions=list(mem.get("suggestions", [])),
        )
        s = report["step"]
        self.step = Step(**{name: s[name] for name in Step.__dataclass_fields__})
        self.collectives = [
            Collective(**{name: c[name] for name in Collective.__dataclass_fields__})
            for c in report["collectives"]
        ]
        g = report["training"].get("goodput")
        self.goodput = (
            Goodput(**{name: g.get(name) for name in Goodput.__dataclass_fields__})
            if g is not None
            else None
        )
        self.days: float | None = report["training"].get("days")
        self.warnings: list[str] = list(report["warnings"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (a copy)."""
        return copy.deepcopy(self._report)

    def to_json(self) -> str:
        from simulator.report.document import to_json

        return to_json(self._report)

    def __repr__(self) -> str:
        verdict = "fits" if self.memory.fits else "OOM"
        return (
            f"Result({self.scenario.name!r}: {verdict}, "
            f"{self.memory.total_bytes / 1e9:.1f} GB/GPU, step {self.step.time_s:.3f} s, "
            f"MFU {self.step.mfu:.1%})"
        )


def run(
    scenario: ScenarioLike,
    goodput: bool = True,
    *,
    network: str = "fluid",
    runs: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    trace: str | Path | None = None,
    ctx: SimContext | None = None,
) -> Result:
    """Simulate a scenario (a Scenario, a mapping or a path): memory, step, collectives and, with
    `goodput`, the whole run's Monte Carlo (`runs` / `seed` override the reliability section)."""
    from simulator.studies.simulate import simulate

    if network not in ("fluid", "analytic"):
        raise UserError(Problem("network", f"expected fluid or analytic, got {network!r}"))
    s = load(scenario, ctx=ctx)
    report = simulate(
        s,
        trace_path=str(trace) if trace is not None else None,
        backend=network,
        ctx=ctx,
        runs=runs,
        seed=seed,
        jobs=jobs,
        goodput=goodput,
    )
    return Result(s, report)


class Session:
    """Runs that share one SimContext: topologies built and collectives routed once per cluster,
    for loops over variants (results are identical to fresh runs)."""

    def __init__(self, network: str = "fluid", max_topologies: int = 8):
        self.network = network
        self.context = SimContext(max_topologies)

    def load(self, source: ScenarioLike, base_dir: str | Path | None = None) -> Scenario:
        return load(source, base_dir, self.context)

    def run(self, scenario: ScenarioLike, goodput: bool = True, **options: Any) -> Result:
        options.setdefault("network", self.network)
        return run(scenario, goodput, ctx=self.context, **options)


def sweep(
    base: ScenarioLike,
    axes: Mapping[str, Iterable[Any] | Mapping[str, Any]],
    *,
    mode: str = "grid",
    fixed: Mapping[str, Any] | None = None,
    network: str = "fluid",
    out: str | Path | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """The sweep study over `base` (a path, a shipped name, a mapping or a Scenario) along dotted
    `axes` ({"training.micro_batch_size": [1, 2, 4]}, or a {start, stop, step|factor} range):
    one row per point, the columns of `clustersim sweep` (status ok | invalid | error). With
    `out`, the rows are also written as that command writes them (resumable, `jobs` processes)."""
    from simulator.studies.sweep.runner import run_point
    from simulator.studies.sweep.spec import sweep_from_dict

    if isinstance(base, Scenario):
        base_data: Any = base.data()
        base_dir = Path(base.base_dir) if base.base_dir else None
    elif isinstance(base, Mapping):
        base_data, base_dir = copy.deepcopy(dict(base)), Path.cwd()
    else:
        from simulator.scenario.load import scenario_path

        base_data, base_dir = str(scenario_path(base).resolve()), Path.cwd()
    data: dict[str, Any] = {
        "base": base_data,
        "mode": mode,
        "axes": {k: (dict(v) if isinstance(v, Mapping) else list(v)) for k, v in axes.items()},
    }
    if fixed:
        data["set"] = dict(fixed)
    spec = sweep_from_dict(data, base_dir)
    if out is not None:
        from simulator.studies.sweep.runner import run_sweep

        run_sweep(spec, str(out), jobs=jobs, backend=network)
        return _read_rows(Path(out))
    ctx = SimContext()
    rows = []
    for i, values in enumerate(spec.points()):
        task = (i, spec.scenario_dict(values), str(spec.base_dir) if spec.base_dir else None)
        row = run_point((*task, network, None), ctx)
        rows.append({"point": i, **dict(zip(spec.paths, values)), **row})
    return rows


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results file `sweep` wrote (.jsonl, .csv; parquet needs pyarrow)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        import csv

        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    return []
