"""The 80% interval on a prediction's step time (and tokens/s/GPU and days, which follow it),
from clustersim's own errors on the validation cases of its kind.

Error model. Each validation case (role validation, never calibration) of the categories in
CATEGORIES gives one signed relative error of step time, e = predicted time / published time - 1.
A case published as a rate r (tokens/s/GPU, TFLOP/s per GPU, MFU: each proportional to 1/time
for a fixed setup) has r_pred / r_pub - 1 = err, so e = T_pred / T_pub - 1 = 1 / (1 + err) - 1.
Cases with a known deviation are kept: leaving out the misses would narrow the interval dishonestly.

Groups. A case's key is (GPU family, framework, parallelism): the family is the GPU name's first
part (a100-80gb -> a100, as studies/calibrate/gpus.py reads names), the framework is
training.framework, parallelism is model-parallel when tp x pp > 1, else data-parallel. A
prediction takes the narrowest group that has at least MIN_CASES cases (the fewest with finite
conformal bounds, below), in this order:
  1. GPU family x framework x parallelism
  2. GPU family x parallelism            (any framework)
  3. every validation case               (the last resort; used whatever its size)

Interval. Split-conformal bounds (Vovk, Gammerman & Shafer 2005; Lei et al. 2018, "Distribution-
free predictive inference for regression", JASA 113, Sec 2.2): with the group's n errors sorted
x_(1) <= ... <= x_(n), a new case's error falls in [x_(k), x_(m)] with probability at least
(m - k) / (n + 1) when the cases are exchangeable; k = floor((n + 1) 0.1) and
m = ceil((n + 1) 0.9) give at least 80%, and need k >= 1 and m <= n, so n >= 9 (MIN_CASES).
Plain sample quantiles (what this used before) cover less than their level out of sample, the
more so the smaller the group: 52-58% of the cases left out, against 80% claimed. The bounds are
stored as q10 and q90 (the levels they stand for). The true time T relates to the predicted P by
P / T - 1 = e, so T = P / (1 + e): e in [q10, q90] means T in [P / (1 + q90), P / (1 + q10)].
Tokens/s/GPU is tokens / (T x GPUs), so its interval is [R (1 + q10), R (1 + q90)]; days to
train are proportional to T. The last-resort group, if smaller than MIN_CASES, takes its
smallest and largest errors.

The table (simulator/data/validation/intervals/step_time.yaml) is written by
`clustersim accuracy --write-intervals PATH` from the shipped cases with built-in constants, so
that `clustersim run` never runs the validation set; a slow test refits it and compares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from simulator.core.resources import data_dir
from simulator.core.yamlio import read_yaml
from simulator.spec.specs import Scenario

LEVEL = 0.8
LOW, HIGH = 0.1, 0.9  # the quantiles bounding the central 80%
# The fewest cases whose conformal bounds are finite at LEVEL: floor((n + 1) LOW) >= 1.
MIN_CASES = 9
CATEGORIES = ("throughput", "framework")
TIME_METRICS = ("time_s",)  # every other step metric is a rate, proportional to 1 / step time
ALL = "*"
QUANTILE_METHOD = (
    "split-conformal order statistics: the floor((n+1) 0.1)-th and ceil((n+1) 0.9)-th smallest "
    "errors (Lei et al. 2018)"
)
TABLE_FORMAT = "clustersim-step-time-intervals/1"


@dataclass(frozen=True, kw_only=True)
class Point:
    """One validation case's step-time error and its group key."""

    id: str
    key: tuple[str, str, str]  # (gpu family, framework, parallelism)
    error: float  # predicted time / published time - 1


def time_error(metric: str, predicted: float, published: float) -> float:
    """The step-time error of a case whose `metric` was predicted and published."""
    err = predicted / published - 1
    return err if metric in TIME_METRICS else 1 / (1 + err) - 1


def scenario_key(scenario: Scenario) -> tuple[str, str, str]:
    par = scenario.training.parallel
    kind = "model-parallel" if par.tp * par.pp > 1 else "data-parallel"
    return (scenario.cluster.gpu.name.split("-")[0], scenario.training.framework.name, kind)


def candidates(key: tuple[str, str, str]) -> list[str]:
    """The group names a key may take, narrowest first (the fallback order above)."""
    family, framework, kind = key
    return [
        f"{family} x {framework} x {kind}",
        f"{family} x {ALL} x {kind}",
        f"{ALL} x {ALL} x {ALL}",
    ]


def conformal_bounds(values: Sequence[float]) -> tuple[float, float]:
    """The k-th and m-th smallest of the errors, k = floor((n + 1) LOW), m = ceil((n + 1) HIGH)
    (the module's docstring), clamped to the smallest and the largest where n < MIN_CASES."""
    xs = sorted(values)
    n = len(xs)
    # Rounded first: (n + 1) x 0.1 in floating point may land a hair off an integer.
    k = math.floor(round((n + 1) * LOW, 9))
    m = math.ceil(round((n + 1) * HIGH, 9))
    return xs[min(max(k, 1), n) - 1], xs[min(max(m, 1), n) - 1]


def fit(points: Sequence[Point]) -> dict[str, dict[str, Any]]:
    """Every group with enough cases (the last resort always): name -> q10, q90 and its cases."""
    members: dict[str, list[Point]] = {}
    for p in points:
        for name in candidates(p.key):
            members.setdefault(name, []).append(p)
    last = f"{ALL} x {ALL} x {ALL}"
    return {
        name: {
            "q10": conformal_bounds([p.error for p in mine])[0],
            "q90": conformal_bounds([p.error for p in mine])[1],
            "cases": {p.id: p.error for p in mine},
        }
        for name, mine in sorted(members.items())
        if len(mine) >= MIN_CASES or name == last
    }


def group_for(groups: dict[str, dict[str, Any]], key: tuple[str, str, str]) -> str:
    """The narrowest group of `groups` (as fit returns) that serves `key`."""
    return next(name for name in candidates(key) if name in groups)


def covers(group: dict[str, Any], error: float) -> bool:
    """Whether a published value lies in the interval: its time error within [q10, q90]."""
    return group["q10"] <= error <= group["q90"]


def coverage(points: Sequence[Point]) -> dict[str, Any]:
    """In-sample (groups fitted with every case) and leave-one-out (each case's interval fitted
    without it, its group chosen again by the fallback rule) shares of cases covered."""
    whole = fit(points)
    inside, loo, cases = 0, 0, []
    for i, p in enumerate(points):
        own = whole[group_for(whole, p.key)]
        rest = fit([q for j, q in enumerate(points) if j != i]) if len(points) > 1 else {}
        name = group_for(rest, p.key) if rest else None
        g = rest[name] if name else None
        inside += covers(own, p.error)
        loo += bool(g and covers(g, p.error))
        cases.append(
            {
                "id": p.id,
                "error": p.error,
                "in_sample": covers(own, p.error),
                "leave_one_out": bool(g and covers(g, p.error)),
                "loo_group": name,
                "loo_q10": g["q10"] if g else None,
                "loo_q90": g["q90"] if g else None,
            }
        )
    n = len(points)
    return {
        "level": LEVEL,
        "cases": n,
        "in_sample": {"covered": inside, "share": inside / n if n else None},
        "leave_one_out": {"covered": loo, "share": loo / n if n else None},
        "per_case": cases,
    }


def table(groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The shipped file's content."""
    return {
        "format": TABLE_FORMAT,
        "about": "Step-time errors of clustersim's validation cases (built-in constants), by group; "
        "written by `clustersim accuracy --write-intervals PATH`, read by every `clustersim run`. "
        "See simulator/studies/intervals.py for the error, the groups and the quantiles.",
        "level": LEVEL,
        "quantiles": [LOW, HIGH],
        "quantile_method": QUANTILE_METHOD,
        "min_cases": MIN_CASES,
        "categories": list(CATEGORIES),
        "groups": groups,
    }


def shipped_path() -> Path:
    return data_dir("validation") / "intervals" / "step_time.yaml"


@lru_cache(maxsize=1)
def shipped_groups() -> dict[str, dict[str, Any]]:
    return read_yaml(shipped_path())["groups"]


def interval(scenario: Scenario, time_s: float, tokens_per_s_per_gpu: float) -> dict[str, Any]:
    """The report's `step.interval` for a prediction (the derivation is the module's docstring)."""
    groups = shipped_groups()
    name = group_for(groups, scenario_key(scenario))
    g = groups[name]
    q10, q90 = g["q10"], g["q90"]
    return {
        "level": LEVEL,
        "time_s": [time_s / (1 + q90), time_s / (1 + q10)],
        "tokens_per_s_per_gpu": [
            tokens_per_s_per_gpu * (1 + q10),
            tokens_per_s_per_gpu * (1 + q90),
        ],
        "group": name,
        "cases": len(g["cases"]),
    }


def attach(report: dict[str, Any], scenario: Scenario) -> None:
    """Adds step.interval and, where days are reported, training.days_interval; where the
    goodput Monte Carlo ran a whole run, training.goodput.wall_days_interval: its median
    wall-clock days scaled by the step's interval (restarts and repairs do not scale with the
    step time, so this overstates the spread a little)."""
    step = report.get("step")
    if not step:
        return
    step["interval"] = interval(scenario, step["time_s"], step["tokens_per_s_per_gpu"])
    lo, hi = step["interval"]["time_s"]
    training = report.get("training", {})
    days = training.get("days")
    if days is not None:
        training["days_interval"] = [days * lo / step["time_s"], days * hi / step["time_s"]]
    g = training.get("goodput")
    if g and g.get("completes", True) and not g.get("window_days") and g.get("wall_days"):
        p50 = g["wall_days"]["p50"]
        g["wall_days_interval"] = [p50 * lo / step["time_s"], p50 * hi / step["time_s"]]
