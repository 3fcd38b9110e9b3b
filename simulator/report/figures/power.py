"""Power figures. From a report JSON (`clustersim run --json-out report.json`): the cluster's
power over one step, stacked by activity (the report's `energy.timeline`, execution/energy.py's
own timeline), with its average, peak, lowest instant and swing marked; the reader of report
JSONs and the helpers the other power figures share (power_run.py: the goodput run by phase;
power_cap.py: a sweep over cluster.power_cap)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.report.figures.style import (
    STREAM_COLORS,
    figure_class,
)

HOURS_PER_DAY = 24.0
WRITE_REPORT = "write one with `clustersim run SCENARIO --json-out report.json`"

# Bands of the step's power, bottom to top: the GPUs' board watts by activity
# (execution/energy.py ACTIVITIES), the hosts, and the facility's overhead (PUE - 1).
BANDS = ("compute", "memory", "comm", "idle", "hosts", "facility")
BAND_LABELS = {
    "compute": "GPUs: compute-bound kernels",
    "memory": "GPUs: memory-bound kernels",
    "comm": "GPUs: communication only",
    "idle": "GPUs: waiting",
    "hosts": "hosts (CPUs, NICs, fans)",
    "facility": "facility overhead (PUE)",
}
# compute and comm as their streams elsewhere; the others light, apart from them.
BAND_COLORS = {
    "compute": STREAM_COLORS["compute"],
    "memory": "#b2df8a",
    "comm": STREAM_COLORS["comm"],
    "idle": "#d9d9d9",
    "hosts": STREAM_COLORS["host"],
    "facility": "#80b1d3",
}
TRAINING_COLOR = STREAM_COLORS["compute"]
# The goodput model's lost time (studies/goodput/process.py LOSSES), with their labels.
PHASES = {
    "training": "training (useful)",
    "rework": "rework (progress lost, redone)",
    "restart": "restarts (detect, init, load)",
    "waiting": "waiting for a host",
    "checkpoint": "checkpoint pauses",
    "degraded": "degraded (slow running)",
}


def _unit(watts: float) -> tuple[str, float]:
    for unit, size in (("MW", 1e6), ("kW", 1e3)):
        if abs(watts) >= size:
            return unit, size
    return "W", 1.0


def _joules(j: float) -> str:
    for unit, size in (("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if abs(j) >= size:
            return f"{j / size:,.3g} {unit}"
    return f"{j:,.3g} J"


def _mwh(x: float) -> str:
    return f"{x:,.0f} MWh" if abs(x) >= 100 else f"{x:.3g} MWh"


def _problem(path: Path, what: str, fix: str = WRITE_REPORT) -> UserError:
    return UserError(Problem(str(path), what, fix))


# ------------------------------------------------------------------------------ one step


@dataclass(frozen=True)
class StepPower:
    """What the step figure draws: edges (n + 1, s), the bands' watts (n each; they sum to
    cluster_w), the cluster's lowest and highest instant in each interval, and the report's
    average, peak (with its time) and lowest instant (with its time)."""

    name: str
    edges: np.ndarray
    bands: dict[str, np.ndarray]
    cluster_w: np.ndarray
    cluster_min_w: np.ndarray
    cluster_max_w: np.ndarray
    avg_w: float
    peak_w: float
    peak_time_s: float
    min_w: float
    min_time_s: float
    step_j: float
    gpus: int
    hosts: int
    pue: float
    resolution: str

    def energy_j(self) -> float:
        """The integral of the drawn series."""
        return float(np.dot(np.diff(self.edges), self.cluster_w))


def read_report(report_path: str | Path) -> dict[str, Any]:
    path = Path(report_path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _problem(path, f"cannot read a JSON report: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("energy"), dict):
        raise _problem(
            path,
            "not a clustersim report with an energy section",
            "a report of `clustersim run SCENARIO --json-out report.json` on a GPU with power "
            "figures (a custom GPU needs `power`)",
        )
    return report


def step_power(report: dict[str, Any], path: str | Path = "report") -> StepPower:
    """The step's power series from the report's energy section (a UserError naming the file
    where it has none or it is malformed)."""
    e = report["energy"]
    t = e.get("timeline")
    if not isinstance(t, dict):
        raise _problem(
            Path(path),
            "the report's energy section has no timeline (a report of an older clustersim)",
            "write it again with `clustersim run SCENARIO --json-out report.json`",
        )
    try:
        edges = np.asarray(t["t_s"], dtype=float)
        n = len(edges) - 1
        cluster = np.asarray(t["cluster_w"], dtype=float)
        lo = np.asarray(t["cluster_min_w"], dtype=float)
        hi = np.asarray(t["cluster_max_w"], dtype=float)
        gpu = t["gpu_w"] or {}
        bands = {a: np.asarray(gpu[a], dtype=float) for a in BANDS[:4] if a in gpu}
        pue = float(e["pue"])
        hosts_w = float(t["hosts_w"])
        c = e["cluster_power_w"]
        avg, peak, low = float(c["avg"]), float(c["peak"]), float(c["min"])
        peak_t, low_t = float(e["peak_time_s"]), float(e["min_time_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _problem(Path(path), f"the report's energy.timeline is malformed: {exc!r}") from None
    lengths = {len(cluster), len(lo), len(hi), *(len(v) for v in bands.values())}
    if n < 1 or lengths != {n} or np.any(np.diff(edges) < 0):
        raise _problem(
            Path(path),
            f"the report's energy.timeline is malformed: {n + 1} edges for series of "
            f"{sorted(lengths)} values (expected n + 1 increasing edges for n values)",
        )
    if len(bands) == 4:
        gpu_w = sum(bands.values())
        bands["hosts"] = np.full(n, hosts_w)
        bands["facility"] = np.maximum(cluster - gpu_w - hosts_w, 0.0)  # (PUE - 1) x the rest
    else:  # not split by activity: one band
        bands = {"facility": cluster}
    return StepPower(
        name=str(report.get("name", "")),
        edges=edges,
        bands=bands,
        cluster_w=cluster,
        cluster_min_w=lo,
        cluster_max_w=hi,
        avg_w=avg,
        peak_w=peak,
        peak_time_s=peak_t,
        min_w=low,
        min_time_s=low_t,
        step_j=float(e["step_j"]),
        gpus=int(report.get("cluster", {}).get("num_gpus", 0)),
        hosts=int(e.get("hosts", 0)),
        pue=pue,
        resolution=str(t.get("resolution", "")),
    )


def step_figure(p: StepPower):
    """The cluster's power over the step, stacked by band, with the average, the peak, the
    lowest instant and the swing between them marked."""
    fig = figure_class()(figsize=(10, 4.6), layout="constrained")
    ax = fig.subplots()
    unit, size = _unit(p.peak_w)
    scale_t, t_unit = (1.0, "s") if p.edges[-1] >= 2 else (1e3, "ms")
    x = p.edges * scale_t
    bottom = np.zeros(len(p.cluster_w))
    for band in BANDS:
        if band not in p.bands:
            continue
        top = bottom + p.bands[band]
        ax.fill_between(
            x,
            np.append(bottom, bottom[-1]) / size,
            np.append(top, top[-1]) / size,
            step="post",
            color=BAND_COLORS[band],
            linewidth=0,
            label=BAND_LABELS[band] if len(p.bands) > 1 else "cluster",
        )
        bottom = top
    if np.any(p.cluster_max_w != p.cluster_min_w):  # binned: each bin's range of instants
        for series, label in (
            (p.cluster_max_w, "highest / lowest instant in each bin"),
            (p.cluster_min_w, None),
        ):
            ax.step(
                x,
                np.append(series, series[-1]) / size,
                where="post",
                color="black",
                linewidth=0.5,
                alpha=0.6,
                label=label,
            )
    ax.axhline(
        p.avg_w / size,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"average {p.avg_w / size:,.2f} {unit}",
    )
    ax.plot(
        [p.peak_time_s * scale_t],
        [p.peak_w / size],
        marker="^",
        color="#d62728",
        markersize=8,
        linestyle="none",
        label=f"peak {p.peak_w / size:,.2f} {unit} at {p.peak_time_s * scale_t:,.3g} {t_unit}",
    )
    ax.plot(
        [p.min_time_s * scale_t],
        [p.min_w / size],
        marker="v",
        color="#1f77b4",
        markersize=8,
        linestyle="none",
        label=f"lowest {p.min_w / size:,.2f} {unit} at {p.min_time_s * scale_t:,.3g} {t_unit}",
    )
    span = x[-1] - x[0]
    xa = x[-1] + 0.025 * span  # the swing's arrow, right of the series
    for level, color in ((p.peak_w, "#d62728"), (p.min_w, "#1f77b4")):
        ax.plot([x[0], xa], [level / size] * 2, color=color, linestyle=":", linewidth=0.8)
    ax.annotate(
        "",
        xy=(xa, p.peak_w / size),
        xytext=(xa, p.min_w / size),
        arrowprops={"arrowstyle": "<->", "color": "black", "linewidth": 1},
    )
    ax.text(
        xa + 0.008 * span,
        (p.peak_w + p.min_w) / 2 / size,
        f"swing {(p.peak_w - p.min_w) / size:,.2f} {unit}",
        rotation=90,
        va="center",
        ha="left",
        fontsize=8,
    )
    ax.set_xlim(x[0] - 0.01 * span, x[-1] + 0.06 * span)
    ax.set_ylim(0, p.peak_w / size * 1.08)
    ax.set_xlabel(f"time in step ({t_unit})")
    ax.set_ylabel(f"cluster power ({unit})")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=7, loc="outside lower center", ncols=4)
    fig.suptitle(
        f"{p.name}: cluster power over one step ({p.gpus:,} GPUs, {p.hosts:,} host"
        f"{'' if p.hosts == 1 else 's'}, PUE "
        f"{p.pue:g}); {_joules(p.step_j)} per step\nintervals: {p.resolution}",
        fontsize=9,
    )
    return fig
