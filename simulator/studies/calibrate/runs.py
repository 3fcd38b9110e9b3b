"""Measured training runs (a YAML or CSV file) and what the step model predicts for them.

YAML:
    runs:
    - id: mpt-7b-8xa100                 # optional (default: FILE:#N)
      scenario: scenarios/mpt-7b.yaml   # relative to this file, or an inline scenario mapping
      step_time: "5.53 s"               # or step_time_s: 5.53, tokens_per_s (whole job), tokens_per_s_per_gpu
      max_memory_allocated: "61.2 GiB"  # optional: torch.cuda.max_memory_allocated() on the busiest GPU
      max_memory_reserved: "66 GiB"     # optional: torch.cuda.max_memory_reserved()
CSV: one row per run with the same column names (scenario a path); empty cells are absent.

Step times (or throughputs) are fitted; memory rows are compared, not fitted: PyTorch's
allocated figure has no constant of its own in the model (it is the tensors' bytes, without the
CUDA context), and reserved / allocated would give `training.allocator_reserve`, a scenario
field rather than a constant of the cluster.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.units import UnitError, parse_bytes, parse_duration
from simulator.core.yamlio import load_yaml, read_text
from simulator.execution.context import SimContext
from simulator.execution.memory import MemoryBreakdown, stage_memory
from simulator.execution.step import simulate_step
from simulator.scenario.load import load_scenario, scenario_from_dict
from simulator.spec.calibration import CalibrationSpec
from simulator.spec.specs import Scenario
from simulator.system.comm.calibration import NCCL_CALIBRATION, Calibration

METRICS = ("step_time_s", "tokens_per_s", "tokens_per_s_per_gpu")
MEMORY = ("max_memory_allocated", "max_memory_reserved")
KEYS = ("id", "scenario", "step_time", *METRICS, *MEMORY)


@dataclass(frozen=True, kw_only=True)
class Run:
    id: str
    line: int | None  # CSV line or YAML list index + 1
    scenario: Scenario
    metric: str | None  # one of METRICS, None for a memory-only row
    measured: float | None
    memory: tuple[tuple[str, int], ...]  # (one of MEMORY, bytes)


@dataclass(frozen=True, kw_only=True)
class MemoryCheck:
    id: str
    line: int | None
    metric: str
    measured_bytes: int
    predicted_bytes: int

    @property
    def error(self) -> float:
        return self.predicted_bytes / self.measured_bytes - 1


def read_runs(path: str | Path) -> list[Run]:
    """A runs file -> runs; one UserError with every problem, each at its row and field."""
    path = Path(path)
    text = read_text(path, "runs file (YAML or CSV)")
    rows = _csv_rows(text, path) if path.suffix.lower() == ".csv" else _yaml_rows(text, path)
    runs, problems = [], []
    for line, where, row in rows:
        try:
            runs.append(_run(row, line, where, path))
        except UserError as exc:
            problems += [
                Problem(f"{where}.{p.path}" if p.path else where, p.message, p.hint, p.source)
                for p in exc.problems
            ]
    if problems:
        raise UserError(problems, str(path))
    if not any(r.metric for r in runs):
        raise UserError(
            Problem(
                "runs",
                "no run with a step time or throughput to fit",
                f"give one of {', '.join(('step_time', *METRICS))}",
            ),
            str(path),
        )
    return runs


def _yaml_rows(text: str, path: Path) -> list[tuple[int, str, dict]]:
    data = load_yaml(text, str(path))
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise UserError(
            Problem(
                "runs", "expected a list of runs: runs: [{scenario, step_time | tokens_per_s}]"
            ),
            str(path),
        )
    extra = [k for k in data if k not in ("runs", "about")]
    if extra:
        raise UserError(
            [Problem(k, "unknown key", did_you_mean(k, ["runs", "about"])) for k in extra],
            str(path),
        )
    return [
        (i + 1, f"runs.{i}", row if isinstance(row, dict) else {"": row})
        for i, row in enumerate(data["runs"])
    ]


def _csv_rows(text: str, path: Path) -> list[tuple[int, str, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    unknown = [c for c in reader.fieldnames or [] if c not in KEYS]
    if not reader.fieldnames or unknown:
        raise UserError(
            [Problem(f"column {c!r}", "unknown column", did_you_mean(c, KEYS)) for c in unknown]
            or [Problem("", "no header row", f"columns: {', '.join(KEYS)}")],
            str(path),
        )
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise UserError(Problem(f"line {line}", "more cells than columns"), str(path))
        rows.append(
            (
                line,
                f"line {line}",
                {k: v.strip() for k, v in row.items() if v is not None and v.strip()},
            )
        )
    return rows


def _run(row: dict[str, Any], line: int, where: str, path: Path) -> Run:
    problems = [
        Problem(
            k or "(item)",
            "unknown key" if k else "expected a mapping",
            did_you_mean(k, KEYS) if k else "",
        )
        for k in row
        if k not in KEYS
    ]
    given = [k for k in ("step_time", *METRICS) if k in row]
    if len(given) > 1:
        problems.append(Problem(given[1], f"give one measured speed, not {' and '.join(given)}"))
    metric, measured = _speed(row, given[0], problems) if given else (None, None)
    memory = tuple(
        (k, b) for k in MEMORY if k in row and (b := _bytes(row, k, problems)) is not None
    )
    if not given and not memory:
        problems.append(
            Problem(
                "",
                "nothing measured",
                f"give step_time or tokens_per_s (and optionally {' / '.join(MEMORY)})",
            )
        )
    if "scenario" not in row:
        problems.append(
            Problem("scenario", "required key is missing", "a scenario file or an inline mapping")
        )
    if problems:
        raise UserError(problems)
    scenario = _scenario(row["scenario"], path)
    return Run(
        id=str(row.get("id") or f"{path.name}:{where}"),
        line=line,
        scenario=scenario,
        metric=metric,
        measured=measured,
        memory=memory,
    )


def _speed(row: dict, key: str, problems: list[Problem]) -> tuple[str | None, float | None]:
    value = row[key]
    try:
        if key in ("step_time", "step_time_s"):
            seconds = parse_duration(value) if key == "step_time" else float(value)
            return ("step_time_s", _positive(seconds))
        return key, _positive(float(value))
    except (UnitError, ValueError, TypeError) as exc:
        hint = "a duration such as '5.5 s'" if key == "step_time" else "a positive number"
        problems.append(Problem(key, str(exc) or f"not a measurement: {value!r}", hint))
        return None, None


def _positive(value: float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"expected a positive, finite value, got {value}")
    return value


def _bytes(row: dict, key: str, problems: list[Problem]) -> int | None:
    try:
        value = parse_bytes(row[key])
        if value <= 0:
            raise UnitError("expected a positive size")
        return value
    except UnitError as exc:
        problems.append(
            Problem(
                key, str(exc), "e.g. '61.2 GiB' (torch.cuda.max_memory_allocated() / 2**30 GiB)"
            )
        )
        return None


def _scenario(value: Any, path: Path) -> Scenario:
    if isinstance(value, dict):
        try:
            scenario = scenario_from_dict(value, base_dir=path.parent)
        except UserError as exc:
            raise exc.at("scenario") from None
    elif isinstance(value, str):
        try:
            scenario = load_scenario(path.parent / value)
        except UserError as exc:
            raise UserError(
                [
                    Problem("scenario", p.message, p.hint, p.source or exc.source or value)
                    for p in exc.problems
                ]
            ) from None
    else:
        raise UserError(
            Problem("scenario", f"expected a file path or a mapping, got {type(value).__name__}")
        )
    if not scenario.calibration.is_default:
        raise UserError(
            Problem(
                "scenario",
                f"names a calibration profile ({scenario.calibration.source})",
                "a run being calibrated must use the built-in constants: remove `calibration:`",
            )
        )
    return scenario


class RunData:
    """Runs and their predictions: step-time metrics under constants, memory as measured."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.timed = [r for r in runs if r.metric]
        self.ctx = SimContext()
        self._memory = {r.id: stage_memory(r.scenario) for r in runs}

    def predict(self, values: dict[str, float], comm: Calibration = NCCL_CALIBRATION) -> np.ndarray:
        spec = CalibrationSpec(source="(fit)", values=tuple(sorted(values.items())), comm=comm)
        return np.array(
            [self._metric(r, dataclasses.replace(r.scenario, calibration=spec)) for r in self.timed]
        )

    def _metric(self, run: Run, scenario: Scenario) -> float:
        time_s = simulate_step(scenario, self._memory[run.id], ctx=self.ctx).time_s
        if run.metric == "step_time_s":
            return time_s
        per_job = scenario.tokens_per_step / time_s
        return per_job if run.metric == "tokens_per_s" else per_job / scenario.num_gpus

    def gpus(self) -> list[Any]:
        return list(
            {r.scenario.cluster.gpu.name: r.scenario.cluster.gpu for r in self.timed}.values()
        )

    def memory_checks(self) -> list[MemoryCheck]:
        out = []
        for r in self.runs:
            peak = max(self._memory[r.id], key=lambda m: (m.total_bytes, -m.stage))
            for metric, measured in r.memory:
                out.append(
                    MemoryCheck(
                        id=r.id,
                        line=r.line,
                        metric=metric,
                        measured_bytes=measured,
                        predicted_bytes=predicted_memory(r.scenario, peak, metric),
                    )
                )
        return out


def predicted_memory(scenario: Scenario, mem: MemoryBreakdown, metric: str) -> int:
    """PyTorch's figure for the model's peak: allocated = the tensors' bytes; reserved = those plus the
    caching allocator's reserve (neither counts the CUDA context)."""
    tensors = mem.model_states_bytes + mem.activations_bytes + mem.buffers_bytes
    if metric == "max_memory_allocated":
        return tensors
    return tensors + round(scenario.training.allocator_reserve * tensors)
