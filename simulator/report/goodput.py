"""The goodput section of the report (`training.goodput`): the whole-run Monte Carlo of
failures, checkpoints and restarts (studies/goodput) as JSON, its text lines, and its sweep
columns. Formatting only: every value comes from the simulation or its closed forms."""

from __future__ import annotations

import math
from typing import Any

from simulator.core.units import fmt_bytes
from simulator.spec.reliability import LLAMA3_SOURCE, RESTART_SOURCE, STORAGE_SOURCE

DAY = 86400.0
COLUMNS = (
    "wall_days_p50",
    "wall_days_p90",
    "effective_training_time_ratio",
    "interruptions",
    "checkpoint_interval_s",
)


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) else float(x)


def _feasibility(g: Any) -> dict[str, Any] | None:
    """The closed-form check made before the Monte Carlo (studies/goodput/feasibility.py)."""
    f = g.feasibility
    if f is None:
        return None
    return {
        "cluster_mtbf_s": _finite(f.cluster_mtbf_s),
        "restart_s": f.restart_s,
        "restart_success_probability": f.restart_success,
        "checkpoint_interval_s": _finite(f.interval_s),
        "checkpoint_pause_s": f.pause_s,
        "checkpoint_commit_lag_s": f.commit_lag_s,
        "first_order_progress_per_failure_s": f.progress_per_failure_s,
        "host_availability": f.availability,
        "expected_wall_days": _finite(f.expected_wall_s / DAY),
        "expected_unplanned_failures": _finite(f.expected_failures),
        "expected_interruptions_per_run": _finite(f.expected_events),
        "expected_effective_training_time_ratio": f.expected_ettr,
        "bound_interruptions_per_run": f.bound,
        "event_cap_per_run": f.event_cap,
        "would_complete_with": list(f.remedies),
    }


def _not_simulated(g: Any) -> dict[str, Any]:
    """The simulated keys of a run that does not complete: none of them has a value."""
    return {
        "wall_days": None,
        "wall_days_runs": [],
        "effective_training_time_ratio": None,
        "effective_training_time_ratio_range": None,
        "interruptions": None,
        "lost_gpu_hours": None,
        "lost_gpu_hours_by_cause": None,
        "lost_fraction": None,
    }


def goodput_section(g: Any) -> dict[str, Any]:
    """The JSON of a studies.goodput.GoodputResult."""
    m = g.model
    f = g.feasibility
    head = {
        "runs": m.runs if g.completes else 0,
        "seed": m.seed,
        "completes": g.completes,
        "never_completes_because": None if f is None else f.because,
        "runs_requested": max(m.runs, f.runs) if f is not None and g.completes else m.runs,
        "runs_capped": g.capped_runs,
        "feasibility": _feasibility(g),
        "window_days": _finite(m.window_s / DAY) if m.window_s else None,
        "useful_days": _finite(m.work_s / DAY),
    }
    return head | (_simulated(g) if g.completes else _not_simulated(g)) | _inputs(g)


def _simulated(g: Any) -> dict[str, Any]:
    m, wall, ettr = g.model, g.wall_days, g.ettr
    counts = g.interruptions
    planned = {c.name for c in m.classes if c.spec.planned}
    unplanned = {c.name for c in m.classes if not c.spec.planned}
    return {
        "wall_days": {f"p{q}": g.percentile(wall, q) for q in (10, 50, 90)}
        | {"mean": float(wall.mean())},
        "wall_days_runs": [float(x) for x in wall],
        "effective_training_time_ratio": float(ettr.mean()),
        "effective_training_time_ratio_range": {
            "p10": g.percentile(ettr, 10),
            "p90": g.percentile(ettr, 90),
        },
        "interruptions": {
            "total": sum(counts.values()),
            "by_cause": counts,
            "unplanned": sum(v for k, v in counts.items() if k in unplanned),
            "planned": sum(v for k, v in counts.items() if k in planned),
            "expected_unplanned": g.expected_unplanned,
        },
        "lost_gpu_hours": g.lost_gpu_hours,
        "lost_gpu_hours_by_cause": g.lost_by_cause_gpu_hours,
        "lost_fraction": g.lost_fraction,
    }


def _inputs(g: Any) -> dict[str, Any]:
    """Figures of the run model and the closed forms (also when it is not simulated)."""
    m = g.model
    return {
        "first_order_waste": g.first_order_waste,
        "cluster_mtbf_s": _finite(m.mtbf_s),
        "checkpoint_bytes": m.checkpoint_bytes,
        "checkpoint_mode": m.mode,
        "checkpoint_save_s": m.save_s,
        "checkpoint_pause_s": m.pause_s,
        "checkpoint_load_s": m.load_s,
        "checkpoint_interval_s": _finite(m.interval_s),
        "checkpoint_interval_steps": m.interval_steps,
        "optimal_checkpoint_interval_s": _finite(m.optimal_interval_s),
        "young_checkpoint_interval_s": _finite(m.young_interval_s),
        "restart_s": m.restart_s,
        "restart": {
            "detection_s": m.detection_s,
            "initialization_s": m.initialization_s,
            "load_s": m.load_s,
            "hot_spares": m.hot_spares,
            "without_spare": m.without_spare,
            "repair_s": m.repair_s,
        },
        "causes": [_cause(c) for c in m.classes],
        "sources": {"storage": STORAGE_SOURCE, "restart": RESTART_SOURCE},
    }


def _cause(c: Any) -> dict[str, Any]:
    f = c.spec
    return {
        "name": f.name,
        "unit": f.unit,
        "units": c.units,
        "planned": f.planned,
        "takes_host": f.takes_host,
        "weibull_shape": f.weibull_shape,
        "mtbf_per_unit_h": _finite(1 / f.rate_per_unit_s / 3600) if f.rate_per_unit_s else None,
        "failures_per_1000_unit_days": f.rate_per_unit_s * 1000 * DAY,
        "job_rate_per_day": c.rate_s * DAY,
        "source": f.source,
    }


def goodput_columns(report: dict[str, Any]) -> dict[str, Any]:
    """The sweep's goodput columns of a report (None when goodput is off; the wall and simulated
    figures None, with goodput_note's message, when the run does not complete)."""
    g = report.get("training", {}).get("goodput")
    if not g:
        return dict.fromkeys(COLUMNS)
    if not g.get("completes", True):
        return dict.fromkeys(COLUMNS) | {"checkpoint_interval_s": g["checkpoint_interval_s"]}
    return {
        "wall_days_p50": g["wall_days"]["p50"],
        "wall_days_p90": g["wall_days"]["p90"],
        "effective_training_time_ratio": g["effective_training_time_ratio"],
        "interruptions": g["interruptions"]["total"],
        "checkpoint_interval_s": g["checkpoint_interval_s"],
    }


def goodput_note(report: dict[str, Any]) -> str:
    """A sweep row's message about its goodput: why it does not complete, or how many runs
    stopped at the event cap ('' when neither)."""
    g = report.get("training", {}).get("goodput")
    if not g:
        return ""
    if not g.get("completes", True):
        return f"goodput: does not complete: {g['never_completes_because']}"
    if g.get("runs_capped"):
        return f"goodput: {g['runs_capped']} of {g['runs']} runs stopped at the event cap (wall days: lower bounds)"
    return ""


def _duration(s: float | None) -> str:
    if s is None:
        return "never"
    if s < 0:
        return "-" + _duration(-s)
    for unit, size in (("days", DAY), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def goodput_lines(report: dict[str, Any]) -> list[str]:
    g = report.get("training", {}).get("goodput")
    if not g:
        return []
    span = (
        f"a {g['window_days']:g}-day window"
        if g["window_days"]
        else f"{g['useful_days']:,.1f} failure-free days"
    )
    if not g.get("completes", True):
        lines = [
            "",
            f"Goodput over the run ({span}): DOES NOT COMPLETE (not simulated)",
        ] + _never_lines(g)
    else:
        lines = [
            "",
            f"Goodput over the run ({g['runs']} Monte Carlo runs, seed {g['seed']}; {span}):",
        ]
        lines += _simulated_lines(g)
    return lines + _input_lines(g)


def _never_lines(g: dict[str, Any]) -> list[str]:
    f = g["feasibility"]
    return [f"  because {g['never_completes_because']}"] + [
        f"  would complete with: {r}" for r in f["would_complete_with"]
    ]


def _simulated_lines(g: dict[str, Any]) -> list[str]:
    w, e = g["wall_days"], g["effective_training_time_ratio_range"]
    lines = []
    if g.get("runs_requested", g["runs"]) > g["runs"]:
        lines.append(
            f"  {g['runs']} of the {g['runs_requested']} runs asked for: each takes ~"
            f"{g['feasibility']['expected_interruptions_per_run']:,.0f} interruptions"
        )
    if g.get("runs_capped"):
        lines.append(
            f"  {g['runs_capped']} runs stopped at the cap of {g['feasibility']['event_cap_per_run']:,} "
            "events: their wall-clock days are lower bounds"
        )
    if not g["window_days"]:
        lines.append(
            f"  wall-clock  p50 {w['p50']:,.1f} days, p90 {w['p90']:,.1f} days (p10 {w['p10']:,.1f})"
        )
        if g.get("wall_days_interval"):
            lo, hi = g["wall_days_interval"]
            lines.append(
                f"  80% interval of the p50 from the step time's: {lo:,.1f}-{hi:,.1f} days"
            )
    lines.append(
        f"  effective training time {100 * g['effective_training_time_ratio']:.1f}% "
        f"(p10 {100 * e['p10']:.1f}%, p90 {100 * e['p90']:.1f}%)"
    )
    it = g["interruptions"]
    by = ", ".join(
        f"{k} {v:,.1f}" for k, v in sorted(it["by_cause"].items(), key=lambda kv: -kv[1])
    )
    lines.append(f"  interruptions per run {it['total']:,.1f}: {by}")
    lost = ", ".join(
        f"{k} {v:,.0f}" if v >= 100 else f"{k} {v:.3g}" for k, v in g["lost_gpu_hours"].items() if v
    )
    lines.append(f"  GPU-hours lost per run: {lost or 'none'}")
    by_cause = sorted(
        ((k, v) for k, v in g["lost_gpu_hours_by_cause"].items() if v), key=lambda kv: -kv[1]
    )
    if by_cause:
        lines.append(
            "    by cause: "
            + ", ".join(f"{k} {v:,.0f}" if v >= 100 else f"{k} {v:.3g}" for k, v in by_cause)
        )
    return lines


def _input_lines(g: dict[str, Any]) -> list[str]:
    lines = []
    r = g["restart"]
    lines.append(
        f"  cluster MTBF {_duration(g['cluster_mtbf_s'])} (unplanned); restart "
        f"{_duration(g['restart_s'])} = detection {_duration(r['detection_s'])} + initialization "
        f"{_duration(r['initialization_s'])} + load {_duration(r['load_s'])}"
    )
    steps = f" = {g['checkpoint_interval_steps']:,} steps" if g["checkpoint_interval_steps"] else ""
    lines.append(
        f"  checkpoint {fmt_bytes(g['checkpoint_bytes'])} ({g['checkpoint_mode']}): write "
        f"{_duration(g['checkpoint_save_s'])}, pause {_duration(g['checkpoint_pause_s'])}, every "
        f"{_duration(g['checkpoint_interval_s'])}{steps} (optimal: Daly "
        f"{_duration(g['optimal_checkpoint_interval_s'])}, Young {_duration(g['young_checkpoint_interval_s'])})"
    )
    if g["first_order_waste"] is not None:
        lines.append(
            f"  closed form: first-order lost fraction {100 * g['first_order_waste']:.1f}% "
            "(checkpoints + rework + restarts, Young 1974 / Daly 2006)"
        )
    lines.append(
        "  failure rates per 1,000 unit-days: "
        + ", ".join(
            f"{c['name']} {c['failures_per_1000_unit_days']:.3g} per {c['unit']}"
            + ("" if c["source"].startswith(LLAMA3_SOURCE) else " (yours)")
            + (" planned" if c["planned"] else "")
            for c in g["causes"]
        )
    )
    lines.append(
        f"  sources: {LLAMA3_SOURCE} (printed counts, sum 419); {g['sources']['storage']}; "
        f"{g['sources']['restart']}"
    )
    return lines
