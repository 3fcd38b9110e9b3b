"""The goodput section of the report (`training.goodput`): the whole-run Monte Carlo of
failures, checkpoints and restarts (studies/goodput) as JSON, its text lines, and its sweep
columns. Formatting only: every value comes from the simulation or its closed forms."""

from __future__ import annotations

import math
from typing import Any

from simulator.core.units import fmt_bytes
from simulator.spec.reliability import LLAMA3_SOURCE, RESTART_SOURCE, STORAGE_SOURCE

DAY = 86400.0
COLUMNS = ("wall_days_p50", "wall_days_p90", "effective_training_time_ratio", "interruptions",
           "checkpoint_interval_s")


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isinf(x) else float(x)


def goodput_section(g: Any) -> dict[str, Any]:
    """The JSON of a studies.goodput.GoodputResult."""
    m, wall, ettr = g.model, g.wall_days, g.ettr
    counts = g.interruptions
    planned = {c.name for c in m.classes if c.spec.planned}
    unplanned = {c.name for c in m.classes if not c.spec.planned}
    return {
        "runs": m.runs, "seed": m.seed,
        "window_days": _finite(m.window_s / DAY) if m.window_s else None,
        "useful_days": _finite(m.work_s / DAY),
        "wall_days": {f"p{q}": g.percentile(wall, q) for q in (10, 50, 90)} | {"mean": float(wall.mean())},
        "wall_days_runs": [float(x) for x in wall],
        "effective_training_time_ratio": float(ettr.mean()),
        "effective_training_time_ratio_range": {"p10": g.percentile(ettr, 10), "p90": g.percentile(ettr, 90)},
        "interruptions": {"total": sum(counts.values()), "by_cause": counts,
                          "unplanned": sum(v for k, v in counts.items() if k in unplanned),
                          "planned": sum(v for k, v in counts.items() if k in planned),
                          "expected_unplanned": g.expected_unplanned},
        "lost_gpu_hours": g.lost_gpu_hours,
        "lost_gpu_hours_by_cause": g.lost_by_cause_gpu_hours,
        "lost_fraction": g.lost_fraction,
        "first_order_waste": g.first_order_waste,
        "cluster_mtbf_s": _finite(m.mtbf_s),
        "checkpoint_bytes": m.checkpoint_bytes, "checkpoint_mode": m.mode,
        "checkpoint_save_s": m.save_s, "checkpoint_pause_s": m.pause_s, "checkpoint_load_s": m.load_s,
        "checkpoint_interval_s": _finite(m.interval_s), "checkpoint_interval_steps": m.interval_steps,
        "optimal_checkpoint_interval_s": _finite(m.optimal_interval_s),
        "young_checkpoint_interval_s": _finite(m.young_interval_s),
        "restart_s": m.restart_s,
        "restart": {"detection_s": m.detection_s, "initialization_s": m.initialization_s, "load_s": m.load_s,
                    "hot_spares": m.hot_spares, "without_spare": m.without_spare, "repair_s": m.repair_s},
        "causes": [_cause(c) for c in m.classes],
        "sources": {"storage": STORAGE_SOURCE, "restart": RESTART_SOURCE},
    }


def _cause(c: Any) -> dict[str, Any]:
    f = c.spec
    return {"name": f.name, "unit": f.unit, "units": c.units, "planned": f.planned, "takes_host": f.takes_host,
            "weibull_shape": f.weibull_shape,
            "mtbf_per_unit_h": _finite(1 / f.rate_per_unit_s / 3600) if f.rate_per_unit_s else None,
            "failures_per_1000_unit_days": f.rate_per_unit_s * 1000 * DAY,
            "job_rate_per_day": c.rate_s * DAY, "source": f.source}


def goodput_columns(report: dict[str, Any]) -> dict[str, Any]:
    """The sweep's goodput columns of a report (None when goodput is off)."""
    g = report.get("training", {}).get("goodput")
    if not g:
        return dict.fromkeys(COLUMNS)
    return {"wall_days_p50": g["wall_days"]["p50"], "wall_days_p90": g["wall_days"]["p90"],
            "effective_training_time_ratio": g["effective_training_time_ratio"],
            "interruptions": g["interruptions"]["total"], "checkpoint_interval_s": g["checkpoint_interval_s"]}


def _duration(s: float | None) -> str:
    if s is None:
        return "never"
    for unit, size in (("days", DAY), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def goodput_lines(report: dict[str, Any]) -> list[str]:
    g = report.get("training", {}).get("goodput")
    if not g:
        return []
    w, e = g["wall_days"], g["effective_training_time_ratio_range"]
    span = (f"a {g['window_days']:g}-day window" if g["window_days"]
            else f"{g['useful_days']:,.1f} failure-free days")
    lines = ["", f"Goodput over the run ({g['runs']} Monte Carlo runs, seed {g['seed']}; {span}):"]
    if not g["window_days"]:
        lines.append(f"  wall-clock  p50 {w['p50']:,.1f} days, p90 {w['p90']:,.1f} days (p10 {w['p10']:,.1f})")
    lines.append(f"  effective training time {100 * g['effective_training_time_ratio']:.1f}% "
                 f"(p10 {100 * e['p10']:.1f}%, p90 {100 * e['p90']:.1f}%)")
    it = g["interruptions"]
    by = ", ".join(f"{k} {v:,.1f}" for k, v in sorted(it["by_cause"].items(), key=lambda kv: -kv[1]))
    lines.append(f"  interruptions per run {it['total']:,.1f}: {by}")
    lost = ", ".join(f"{k} {v:,.0f}" if v >= 100 else f"{k} {v:.3g}" for k, v in g["lost_gpu_hours"].items() if v)
    lines.append(f"  GPU-hours lost per run: {lost or 'none'}")
    by = sorted(((k, v) for k, v in g["lost_gpu_hours_by_cause"].items() if v), key=lambda kv: -kv[1])
    if by:
        lines.append("    by cause: " + ", ".join(f"{k} {v:,.0f}" if v >= 100 else f"{k} {v:.3g}" for k, v in by))
    r = g["restart"]
    lines.append(f"  cluster MTBF {_duration(g['cluster_mtbf_s'])} (unplanned); restart "
                 f"{_duration(g['restart_s'])} = detection {_duration(r['detection_s'])} + initialization "
                 f"{_duration(r['initialization_s'])} + load {_duration(r['load_s'])}")
    steps = f" = {g['checkpoint_interval_steps']:,} steps" if g["checkpoint_interval_steps"] else ""
    lines.append(f"  checkpoint {fmt_bytes(g['checkpoint_bytes'])} ({g['checkpoint_mode']}): write "
                 f"{_duration(g['checkpoint_save_s'])}, pause {_duration(g['checkpoint_pause_s'])}, every "
                 f"{_duration(g['checkpoint_interval_s'])}{steps} (optimal: Daly "
                 f"{_duration(g['optimal_checkpoint_interval_s'])}, Young {_duration(g['young_checkpoint_interval_s'])})")
    if g["first_order_waste"] is not None:
        lines.append(f"  closed form: first-order lost fraction {100 * g['first_order_waste']:.1f}% "
                     "(checkpoints + rework + restarts, Young 1974 / Daly 2006)")
    lines.append("  failure rates per 1,000 unit-days: " + ", ".join(
        f"{c['name']} {c['failures_per_1000_unit_days']:.3g} per {c['unit']}" + ("" if c["source"].startswith(
            LLAMA3_SOURCE) else " (yours)") + (" planned" if c["planned"] else "") for c in g["causes"]))
    lines.append(f"  sources: {LLAMA3_SOURCE} (printed counts, sum 419); {g['sources']['storage']}; "
                 f"{g['sources']['restart']}")
    return lines
