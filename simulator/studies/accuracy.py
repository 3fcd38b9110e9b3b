"""`clustersim accuracy`: the validation set (or a user's cases) predicted, case by case, with the
error per case and its median and max per category, calibration cases apart from validation ones
and comparisons (a published estimate, not a measurement) apart from both.

error = predicted / published - 1. A case is within tolerance when |error| <= its tolerance; a
case with a known deviation is expected to miss (its reason is printed with it).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.execution.context import SimContext
from simulator.scenario.load import scenario_from_dict
from simulator.spec.calibration import CalibrationSpec
from simulator.studies import intervals
from simulator.studies.cases import STEP_METRICS, Case, load_cases, predict, shipped_files

CATEGORY_ORDER = ("memory", "collective", "throughput", "framework", "energy")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    case: Case
    predicted: float
    predicted_default: float | None = None  # with the built-in constants, when a profile is applied

    @property
    def error(self) -> float:
        return self.predicted / self.case.published - 1

    @property
    def error_default(self) -> float | None:
        return (
            None
            if self.predicted_default is None
            else self.predicted_default / self.case.published - 1
        )

    @property
    def within(self) -> bool:
        return abs(self.error) <= self.case.tolerance


def select_cases(
    files: list[Path], include_slow: bool, categories: tuple[str, ...] = ()
) -> tuple[list[Case], list[Case]]:
    """(cases to run, slow cases left out). Every file is read first, so all mistakes show at once."""
    cases, problems = [], []
    for f in files:
        try:
            cases += load_cases(f)
        except UserError as exc:
            problems += exc.sourced()
    if problems:
        raise UserError(problems)
    if categories:
        known = sorted({c.category for c in cases})
        wrong = [c for c in categories if c not in known]
        if wrong:
            raise UserError(
                Problem(
                    "--category",
                    f"no case of category {', '.join(wrong)}",
                    f"categories here: {', '.join(known)}",
                )
            )
        cases = [c for c in cases if c.category in categories]
    slow = [c for c in cases if c.slow and not include_slow]
    return [c for c in cases if c not in slow], slow


def default_files(extra: list[str], shipped: bool = True) -> list[Path]:
    return (shipped_files() if shipped else []) + [Path(p) for p in extra]


def run_cases(
    cases: list[Case], calibration: CalibrationSpec | None = None, progress=None
) -> list[Outcome]:
    """Predict every case; a case that cannot run is the user's file's mistake (one error, all cases)."""
    ctx, out, problems = SimContext(), [], []
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), case)
        try:
            predicted = predict(case, ctx, calibration)
            default = predict(case, ctx) if calibration is not None else None
        except UserError as exc:
            problems += [
                Problem(
                    f"{case.id}: {p.path}" if p.path else case.id,
                    p.message,
                    p.hint,
                    p.source or case.file,
                )
                for p in exc.problems
            ]
            continue
        out.append(Outcome(case=case, predicted=predicted, predicted_default=default))
    if problems:
        raise UserError(problems)
    return out


def categories(outcomes: list[Outcome]) -> list[str]:
    found = {o.case.category for o in outcomes}
    return [c for c in CATEGORY_ORDER if c in found] + sorted(found - set(CATEGORY_ORDER))


def summary(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Per category and role: cases, median and max |error|, how many within tolerance."""
    rows = []
    for category in categories(outcomes):
        for role in ("validation", "calibration", "comparison"):
            mine = [o for o in outcomes if o.case.category == category and o.case.role == role]
            if not mine:
                continue
            errors = [abs(o.error) for o in mine]
            row = {
                "category": category,
                "role": role,
                "cases": len(mine),
                "median_abs_error": statistics.median(errors),
                "max_abs_error": max(errors),
                "within_tolerance": sum(o.within for o in mine),
                "known_deviations": sum(1 for o in mine if o.case.known_deviation),
            }
            before = [abs(e) for o in mine if (e := o.error_default) is not None]
            if len(before) == len(mine):  # every case has its built-in prediction
                row |= {
                    "median_abs_error_builtin": statistics.median(before),
                    "max_abs_error_builtin": max(before),
                }
            rows.append(row)
    return rows


def interval_points(outcomes: list[Outcome]) -> list[intervals.Point]:
    """The step-time errors the intervals are fitted to: validation cases (never calibration
    ones) of intervals.CATEGORIES whose metric is a step time or rate."""
    rate_metrics = (*STEP_METRICS, "tflops_per_gpu_from_flops")
    return [
        intervals.Point(
            id=o.case.id,
            key=intervals.scenario_key(
                scenario_from_dict(o.case.scenario, base_dir=o.case.base_dir)
            ),
            error=intervals.time_error(o.case.metric, o.predicted, o.case.published),
        )
        for o in outcomes
        if o.case.role == "validation"
        and o.case.category in intervals.CATEGORIES
        and o.case.metric in rate_metrics
        and o.case.scenario is not None
    ]


def document(
    outcomes: list[Outcome],
    skipped_slow: list[Case],
    files: list[Path],
    calibration: CalibrationSpec | None,
) -> dict[str, Any]:
    """The JSON form (`--json`): every case, the summary, and what set this is."""
    return {
        "set": {
            "files": [str(f) for f in files],
            "slow_included": not skipped_slow,
            "slow_skipped": [c.id for c in skipped_slow],
            "calibration": calibration.source if calibration is not None else None,
        },
        "summary": summary(outcomes),
        "intervals": intervals.coverage(points) if (points := interval_points(outcomes)) else None,
        "cases": [
            {
                "id": o.case.id,
                "category": o.case.category,
                "role": o.case.role,
                "metric": o.case.metric,
                "published": o.case.published,
                "predicted": o.predicted,
                "error": o.error,
                "tolerance": o.case.tolerance,
                "within_tolerance": o.within,
                "predicted_builtin": o.predicted_default,
                "known_deviation": o.case.known_deviation,
                "source": o.case.source,
                "choices": list(o.case.choices),
                "file": o.case.file,
            }
            for o in outcomes
        ],
    }
