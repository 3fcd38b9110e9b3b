"""Published measurements with their full setups (simulator/data/validation/*.yaml, or a user's
file of the same shape) and what clustersim predicts for each.

A case: id, category, role (calibration: a constant was fitted to it; validation: nothing
was), source, metric, published value, tolerance, scenario (inline), and for metrics that
need it the published FLOP count; `known_miss` says why a case misses its tolerance (kept as
evidence, not tuned to). Metrics:
- a `step` field of the report (tokens_per_s_per_gpu, tflops_per_gpu, mfu, time_s);
- tflops_per_gpu_from_flops: the case's flops_per_step / (GPUs x step time), for papers that
  count FLOPs their own way (Megatron's Eq. 3 includes recomputation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.core.resources import data_dir
from simulator.core.yamlio import read_yaml
from simulator.execution.context import SimContext
from simulator.scenario.load import scenario_from_dict
from simulator.studies.simulate import simulate

STEP_METRICS = ("tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "time_s", "tokens_per_s")
METRICS = (*STEP_METRICS, "tflops_per_gpu_from_flops")


@dataclass(frozen=True, kw_only=True)
class Case:
    id: str
    category: str
    role: str
    source: str
    metric: str
    published: float
    tolerance: float
    scenario: dict[str, Any]
    base_dir: str
    flops_per_step: float | None = None
    slow: bool = False
    known_miss: str = ""


def load_cases(path: str | Path) -> list[Case]:
    path = Path(path)
    data = read_yaml(path)
    cases = data.get("cases")
    if not isinstance(cases, list):
        raise UserError(Problem("cases", "expected a list of cases"), str(path))
    out, problems = [], []
    for i, c in enumerate(cases):
        missing = [k for k in ("id", "category", "role", "source", "metric", "published", "tolerance", "scenario")
                   if not isinstance(c, dict) or k not in c]
        if missing:
            problems.append(Problem(f"cases.{i}", f"missing {', '.join(missing)}"))
            continue
        if c["metric"] not in METRICS:
            problems.append(Problem(f"cases.{i}.metric", f"unknown metric {c['metric']!r}",
                                    f"one of {', '.join(METRICS)}"))
            continue
        out.append(Case(**{k: c[k] for k in Case.__dataclass_fields__ if k in c and k != "base_dir"},
                        base_dir=str(path.parent)))
    if problems:
        raise UserError(problems, str(path))
    return out


def shipped_cases(name: str) -> list[Case]:
    return load_cases(data_dir("validation") / f"{name}.yaml")


def predict(case: Case, ctx: SimContext | None = None) -> float:
    """What clustersim predicts for the case's metric."""
    scenario = scenario_from_dict(case.scenario, base_dir=case.base_dir)
    step = simulate(scenario, ctx=ctx)["step"]
    if case.metric == "tflops_per_gpu_from_flops":
        return case.flops_per_step / (scenario.num_gpus * step["time_s"]) / 1e12
    return step[case.metric]
