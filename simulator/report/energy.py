"""The energy section of the report (`energy`): the step's power and energy from its timeline
(execution/energy.py) and the run's energy, cost and CO2, as JSON, text lines and sweep
columns. The key names of the JSON are fixed (sweeps and scripts read them).

`energy.timeline` is the cluster's power over the step (execution/energy.py PowerSeries), kept
small: the points where the draw changes, or, past TIMELINE_POINTS of them, as many equal bins,
each the mean over the bin (so the series' integral is still the step's energy) with the lowest
and highest instant in it (so the series' extremes are still the step's minimum and peak)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from simulator.execution.breakdown import StepBreakdown, step_breakdown
from simulator.execution.energy import (
    ACTIVITIES,
    PowerSeries,
    compute_bound_share,
    run_energy,
    step_energy,
)
from simulator.execution.metrics import SECONDS_PER_DAY, StepMetrics, TrainingMetrics
from simulator.execution.step import StepResult
from simulator.spec.specs import Scenario
from simulator.system.hardware.power import HOST_SOURCE, PUE_SOURCE

COLUMNS = ("energy_per_token_j", "cluster_power_avg_w", "run_mwh")
WALL_BASIS = "goodput p50 wall clock (failures, restarts and checkpoints included)"
FREE_BASIS = "failure-free: tokens / tokens per second (no goodput run)"
TIMELINE_POINTS = 200  # most intervals in energy.timeline


def _bins(edges: np.ndarray, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Means over [bounds[j], bounds[j + 1]] of piecewise-constant columns (values[i] from
    edges[i] to edges[i + 1]): differences of the exact cumulative integral."""
    cum = np.vstack(
        [np.zeros((1, values.shape[1])), np.cumsum(values * np.diff(edges)[:, None], 0)]
    )
    at = np.column_stack([np.interp(bounds, edges, cum[:, k]) for k in range(values.shape[1])])
    return np.diff(at, axis=0) / np.diff(bounds)[:, None]


def _extremes(edges: np.ndarray, v: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, ...]:
    """(lowest, highest) of v over the intervals each bin overlaps."""
    first = np.searchsorted(edges, bounds[:-1], side="right") - 1
    last = np.searchsorted(edges, bounds[1:], side="left") - 1  # the interval ending the bin
    first, last = np.clip(first, 0, len(v) - 1), np.clip(last, 0, len(v) - 1)
    lo = np.minimum(np.minimum.reduceat(v, first), v[last])
    hi = np.maximum(np.maximum.reduceat(v, first), v[last])
    return lo, hi


def timeline_section(series: PowerSeries, points: int = TIMELINE_POINTS) -> dict[str, Any]:
    """`energy.timeline`: t_s (n + 1 edges), cluster_w (the facility's mean over each interval)
    with cluster_min_w / cluster_max_w (its lowest and highest instant there), gpu_w by activity
    (all GPUs' board watts), hosts_w; `resolution` says whether the intervals are the draw's
    change points or bins (module doc). Watts to 0.1 W, times to the nanosecond."""
    edges = np.asarray(series.edges, dtype=float)
    columns = [series.cluster_w] + (
        [series.gpu_w[a] for a in ACTIVITIES] if series.gpu_w is not None else []
    )
    values = np.column_stack(columns) if len(edges) > 1 else np.zeros((0, len(columns)))
    if len(values):  # merge neighbours that draw the same
        keep = np.concatenate([[True], np.any(values[1:] != values[:-1], axis=1)])
        edges, values = np.append(edges[:-1][keep], edges[-1]), values[keep]
    if len(values) > points:
        bounds = np.linspace(edges[0], edges[-1], points + 1)
        lo, hi = _extremes(edges, values[:, 0], bounds)
        edges, values = bounds, _bins(edges, values, bounds)
        resolution = (
            f"{points} bins of {_s(float(edges[1] - edges[0]))}: each the mean, with the lowest "
            "and highest instant in it"
        )
    else:
        lo = hi = values[:, 0]
        resolution = "change points"

    def out(a: np.ndarray, digits: int = 1) -> list[float]:
        return [round(x, digits) for x in a.tolist()]

    return {
        "t_s": out(edges, 9),
        "cluster_w": out(values[:, 0]),
        "cluster_min_w": out(lo),
        "cluster_max_w": out(hi),
        "gpu_w": (
            {a: out(values[:, 1 + k]) for k, a in enumerate(ACTIVITIES)}
            if series.gpu_w is not None
            else None
        ),
        "hosts_w": series.hosts_w,
        "resolution": resolution,
    }


def _run_time(training: TrainingMetrics | None, goodput: dict | None) -> tuple[float, str] | None:
    """The run's seconds and what they are: the goodput run's p50 wall clock where it was
    simulated to completion, else the failure-free days."""
    if goodput and goodput.get("completes") and not goodput.get("window_days"):
        wall = goodput.get("wall_days") or {}
        if wall.get("p50") is not None:
            return wall["p50"] * SECONDS_PER_DAY, WALL_BASIS
    if training is None:
        return None
    return training.days * SECONDS_PER_DAY, FREE_BASIS


def energy_section(
    scenario: Scenario,
    step: StepResult,
    metrics: StepMetrics,
    training: TrainingMetrics | None,
    goodput: dict | None,
    breakdown: StepBreakdown | None,
) -> dict[str, Any] | None:
    """The `energy` section; None where the GPU has no power figures (a custom GPU without
    `power`)."""
    power = scenario.cluster.gpu.power
    if power is None or step.time_s <= 0:
        return None
    share = compute_bound_share(breakdown or step_breakdown(scenario, step))
    e = step_energy(scenario.cluster, step, share, power)
    run = _run_time(training, goodput)
    r = run_energy(scenario.cluster, e, *run) if run is not None else None
    return {
        "step_j": e.step_j,
        "per_token_j": e.step_j / metrics.tokens_per_step,
        "run_mwh": r.run_mwh if r else None,
        "gpu_power_w": {"avg": e.gpu_avg_w, "peak": e.gpu_peak_w},
        # per host at its power supplies (its GPUs and the rest of it, before the PUE): the
        # average over the hosts, and their mean at the cluster's highest instant
        "node_power_w": {
            "avg": (e.gpu_energy_j + e.host_energy_j) / e.time_s / e.hosts,
            "peak": e.cluster_peak_w / e.pue / e.hosts,
        },
        "cluster_power_w": {
            "avg": e.cluster_avg_w,
            "peak": e.cluster_peak_w,
            "min": e.cluster_min_w,
        },
        "swing_w": e.swing_w,
        "swing_period_s": e.swing_period_s,
        "cost_usd": r.cost_usd if r else None,
        "co2_t": r.co2_t if r else None,
        "cost_basis": r.cost_basis if r else None,
        "electricity_usd": r.electricity_usd if r else None,
        "run_days": r.run_s / SECONDS_PER_DAY if r else None,
        "run_basis": r.basis if r else None,
        "peak_time_s": e.peak_time_s,
        "min_time_s": e.min_time_s,
        "gpu_energy_j": e.gpu_energy_j,
        "host_energy_j": e.host_energy_j,
        "hosts": e.hosts,
        "host_power_w": e.host_w,
        "pue": e.pue,
        "activity_s": dict(e.activity_s),
        "compute_bound_share": share,
        "gpu_figures_w": {k: v for k, v in asdict(power).items() if k.endswith("_w")},
        "sources": {"gpu": power.source, "host": HOST_SOURCE, "pue": PUE_SOURCE},
        "timeline": timeline_section(e.series) if e.series is not None else None,
    }


def energy_columns(report: dict[str, Any]) -> dict[str, Any]:
    """The sweep's energy columns (None where the report has no energy section)."""
    e = report.get("energy") or {}
    return {
        "energy_per_token_j": e.get("per_token_j"),
        "cluster_power_avg_w": (e.get("cluster_power_w") or {}).get("avg"),
        "run_mwh": e.get("run_mwh"),
    }


def _w(watts: float) -> str:
    for unit, size in (("MW", 1e6), ("kW", 1e3)):
        if abs(watts) >= size:
            return f"{watts / size:,.2f} {unit}"
    return f"{watts:,.0f} W"


def _j(joules: float) -> str:
    for unit, size in (("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if abs(joules) >= size:
            return f"{joules / size:,.2f} {unit}"
    return f"{joules:,.1f} J"


def _s(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:,.3g} s"


def energy_lines(report: dict[str, Any]) -> list[str]:
    e = report.get("energy")
    if not e:
        return []
    act, step = e["activity_s"], report["step"]["time_s"] or 1.0
    split = ", ".join(
        f"{label} {100 * act[key] / step:.0f}%"
        for key, label in (
            ("compute", "compute-bound"),
            ("memory", "memory-bound"),
            ("comm", "communication"),
            ("idle", "waiting"),
        )
    )
    g, c, fig = e["gpu_power_w"], e["cluster_power_w"], e["gpu_figures_w"]
    n = e["node_power_w"]
    lines = [
        "",
        (
            f"Energy (each GPU's draw by activity on the step's timeline; {e['hosts']:,} host(s) at "
            f"{_w(e['host_power_w'])}; PUE {e['pue']:g}):"
        ),
        f"  per step    {_j(e['step_j'])} = {e['per_token_j']:.3g} J/token; one GPU's step: {split}",
        (
            f"  power       per GPU avg {_w(g['avg'])}, peak {_w(g['peak'])} (TDP {_w(fig['tdp_w'])}); "
            f"per host avg {_w(n['avg'])}, peak {_w(n['peak'])}; "
            f"cluster avg {_w(c['avg'])}, peak {_w(c['peak'])}, swing {_w(e['swing_w'])} "
            f"(lowest {_s(e['min_time_s'])} into the step; low phases every "
            f"{_s(e['swing_period_s'])})"
        ),
    ]
    if e["run_mwh"] is not None:
        extra = [f"${e['cost_usd']:,.0f} ({e['cost_basis']})"] if e["cost_usd"] is not None else []
        extra += [f"{e['co2_t']:,.0f} t CO2"] if e["co2_t"] is not None else []
        lines.append(
            f"  run         {e['run_mwh']:,.1f} MWh over {e['run_days']:,.1f} days, {e['run_basis']}"
            + "".join(f"; {x}" for x in extra)
        )
    return lines
