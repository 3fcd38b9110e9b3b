"""Power figures. From a report JSON (`clustersim run --json-out report.json`): the cluster's
power over one step, stacked by activity (the report's `energy.timeline`, execution/energy.py's
own timeline), with its average, peak, lowest instant and swing marked; and, where the report
has a goodput run that completes, the power over the run's wall clock by phase (training,
rework, restarts, waits, checkpoints) with the energy of each. From a sweep CSV that varies
`cluster.power_cap`: step time, energy per token and the cluster's average megawatts against
the cap.

Only what the model computes: the run's energy is the step's average facility power over the
wall clock (execution/energy.py run_energy), so every phase of the run is drawn at that power;
the figure says so rather than inventing a draw for restarts."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.report.figures.goodput import LOSS_COLORS
from simulator.report.figures.style import (
    LINESTYLES,
    MARKERS,
    STRATEGY_PALETTE,
    STREAM_COLORS,
    check_format,
    figure_class,
    save,
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


# ------------------------------------------------------------------------- the whole run


@dataclass(frozen=True)
class RunPower:
    """The goodput run's mean wall clock by phase (days) at the model's power, and the
    report's run energy (its p50 wall clock: energy.run_mwh, run_days)."""

    name: str
    days: dict[str, float]  # PHASES -> days of the mean run
    power_w: dict[str, float]  # PHASES -> the cluster's average power in that phase
    peak_w: float
    min_w: float
    run_mwh: float
    run_days: float
    runs: int

    def mwh(self) -> dict[str, float]:
        return {k: self.power_w[k] * d * 86400 / 3.6e9 for k, d in self.days.items()}


def run_power(report: dict[str, Any], path: str | Path = "report") -> RunPower | None:
    """The run's phases, or None where the report has no goodput run simulated to completion
    over the whole run (none, a fixed window, or one that does not complete)."""
    g = report.get("training", {}).get("goodput")
    e = report["energy"]
    if not g or not g.get("completes") or g.get("window_days") or e.get("run_mwh") is None:
        return None
    try:
        gpus = int(report["cluster"]["num_gpus"])
        days = {"training": float(g["useful_days"])} | {
            k: float(v) / gpus / HOURS_PER_DAY for k, v in g["lost_gpu_hours"].items()
        }
        avg = float(e["cluster_power_w"]["avg"])
        return RunPower(
            name=str(report.get("name", "")),
            days=days,
            power_w=dict.fromkeys(days, avg),  # the model's charge: the step's average throughout
            peak_w=float(e["cluster_power_w"]["peak"]),
            min_w=float(e["cluster_power_w"]["min"]),
            run_mwh=float(e["run_mwh"]),
            run_days=float(e["run_days"]),
            runs=int(g["runs"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        raise _problem(
            Path(path), f"the report's training.goodput or energy is malformed: {exc!r}"
        ) from None


def run_figure(r: RunPower):
    """Left: the cluster's power over the mean run's wall clock, its phases gathered (the
    model gives each phase's total, not their order), with the step's peak and lowest
    instant; right: the energy of each phase."""
    fig = figure_class()(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.6, 1))
    unit, size = _unit(r.peak_w)
    mwh = r.mwh()
    start = 0.0
    colors = {"training": TRAINING_COLOR} | LOSS_COLORS
    lost = [k for k in r.days if k != "training" and r.days[k] > 0]
    for k, d in r.days.items():
        if d <= 0:
            continue
        left.fill_between(
            [start, start + d],
            0,
            r.power_w[k] / size,
            color=colors.get(k, "#999999"),
            linewidth=0,
            label=f"{PHASES.get(k, k)}: {d:,.1f} days, {r.power_w[k] / size:,.2f} {unit}",
        )
        start += d
    left.axhline(
        r.peak_w / size,
        color="#d62728",
        linestyle=":",
        linewidth=1,
        label=f"a step's peak instant {r.peak_w / size:,.2f} {unit}",
    )
    left.axhline(
        r.min_w / size,
        color="#1f77b4",
        linestyle=":",
        linewidth=1,
        label=f"a step's lowest instant {r.min_w / size:,.2f} {unit}",
    )
    left.set_xlim(0, start)
    left.set_ylim(0, r.peak_w / size * 1.1)
    left.set_xlabel("wall-clock days of the mean run (phases gathered, not in order)")
    left.set_ylabel(f"cluster power ({unit})")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    left.grid(alpha=0.3)
    names = [k for k in r.days if r.days[k] > 0][::-1]
    right.barh(
        [PHASES.get(k, k).split(" (")[0] for k in names],
        [mwh[k] for k in names],
        color=[colors.get(k, "#999999") for k in names],
    )
    for i, k in enumerate(names):
        right.text(mwh[k], i, f" {_mwh(mwh[k])}", va="center", fontsize=7)
    right.set_xlim(0, max(mwh.values()) * 1.35)
    right.set_xlabel("energy per run (MWh)")
    right.grid(axis="x", alpha=0.3)
    train = r.power_w["training"]
    rec_mwh = sum(mwh[k] for k in lost)
    rec_days = sum(r.days[k] for k in lost)
    rec_w = rec_mwh * 3.6e9 / (rec_days * 86400) if rec_days > 0 else train
    right.set_title(
        f"useful training {_mwh(mwh['training'])} at {train / size:,.2f} {unit}; lost time "
        f"{_mwh(rec_mwh)} at {rec_w / size:,.2f} {unit}",
        fontsize=8,
    )
    fig.suptitle(
        f"{r.name}: power over the run (mean of {r.runs} runs, {start:,.1f} days; report: "
        f"{_mwh(r.run_mwh)} over the p50 {r.run_days:,.1f} days)\n"
        "the energy model charges every wall-clock hour at the step's average draw: restarts, "
        "waits and checkpoint pauses are not modelled apart",
        fontsize=9,
    )
    return fig


# ------------------------------------------------------------------- power-cap sweeps

CAP = "cluster.power_cap"
CAP_Y = ("step_time_s", "energy_per_token_j", "cluster_power_avg_w")
_CAP_RE = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<prefix>[kM]?)W?\s*$")


def cap_watts(text: str) -> float | None:
    """'500 W' -> 500.0, '0.5 kW' -> 500.0, '500' -> 500.0; None for anything else (no cap)."""
    m = _CAP_RE.match(str(text))
    if not m:
        return None
    return float(m["num"]) * {"": 1.0, "k": 1e3, "M": 1e6}[m["prefix"]]


def power_cap_rows(
    csv_path: str | Path, strict: bool = True
) -> tuple[list[dict[str, Any]], list[str]] | None:
    """(ok rows with a cap and the energy columns, parsed; the other swept columns that vary) of
    a sweep CSV that varies cluster.power_cap. Not such a sweep: a UserError if strict, else
    None."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, raw = list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(Problem(str(path), f"cannot read: {exc}")) from None
    sweep = "point" in header and "status" in header
    missing = [c for c in CAP_Y if c not in header]
    if not sweep or CAP not in header or missing:
        if not strict:
            return None
        raise UserError(
            Problem(
                str(path),
                "not a clustersim sweep CSV over cluster.power_cap with the energy columns"
                + (f" (missing {', '.join(missing)})" if sweep and missing else ""),
                "write one with `clustersim sweep power-cap --out power-cap.csv`",
            )
        )
    rows = []
    for r in raw:
        cap = cap_watts(r.get(CAP, ""))
        try:
            ys = {k: float(r[k]) for k in CAP_Y}
        except (TypeError, ValueError):
            continue
        if r["status"] == "ok" and cap is not None:
            rows.append({**r, **ys, "cap_w": cap})
    if len({r["cap_w"] for r in rows}) < 2:
        if not strict:
            return None
        raise UserError(
            Problem(
                str(path),
                "fewer than two power caps with status ok and energy values to plot",
                "sweep cluster.power_cap over at least two values on a GPU with power figures",
            )
        )
    swept = header[header.index("point") + 1 : header.index("status")]
    others = [s for s in swept if s != CAP and len({r[s] for r in rows}) > 1]
    return rows, others


def power_cap_figure(rows: list[dict[str, Any]], others: list[str]):
    """Step time, energy per token and the cluster's average MW against the per-GPU cap, one
    line per combination of the other swept values; each point labelled with its change from
    the line's highest cap."""
    series: dict[str, list] = defaultdict(list)
    for r in rows:
        series[", ".join(f"{s.split('.')[-1]}={r[s]}" for s in others) or "all points"].append(r)
    fig = figure_class()(figsize=(11, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("step_time_s", 1.0, "step time (s)"),
        ("energy_per_token_j", 1.0, "energy per token (J)"),
        ("cluster_power_avg_w", 1e6, "cluster average power (MW)"),
    )
    for i, (label, rs) in enumerate(sorted(series.items())):
        rs = sorted(rs, key=lambda r: r["cap_w"])
        ref = rs[-1]
        for ax, (col, scale, _) in zip(axes, panels):
            ys = [r[col] / scale for r in rs]
            ax.plot(
                [r["cap_w"] for r in rs],
                ys,
                color=STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)],
                marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[i % len(LINESTYLES)],
                markerfacecolor="none",
                label=label,
            )
            if len(series) == 1:
                for r, y in zip(rs[:-1], ys[:-1]):
                    ax.annotate(
                        f"{100 * (r[col] / ref[col] - 1):+.1f}%",
                        (r["cap_w"], y),
                        textcoords="offset points",
                        xytext=(0, 6),
                        ha="center",
                        fontsize=7,
                    )
    caps = sorted({r["cap_w"] for r in rows})
    for ax, (_, _, ylabel) in zip(axes, panels):
        ax.set_xticks(caps, [f"{c:g}" for c in caps])
        ax.set_xlabel("per-GPU power cap (W)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.margins(x=0.08, y=0.15)
    if len(series) > 1:
        axes[0].legend(fontsize=8)
    first = rows[0]
    what = f"{first.get('model', '')} on {int(float(first['num_gpus'])):,} {first.get('gpu', '')}"
    fig.suptitle(
        f"Power cap: {what}; change from the highest cap (PUE and hosts in the cluster's power)",
        fontsize=10,
    )
    return fig


# -------------------------------------------------------------------------- entry points


def plot_power_cap(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """The power-cap figure of a sweep CSV over cluster.power_cap (a UserError otherwise)."""
    check_format(fmt)
    rows, others = power_cap_rows(csv_path) or ([], [])
    return [save(power_cap_figure(rows, others), Path(out_dir) / f"power_cap.{fmt}")]


def maybe_plot_power_cap(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """The power-cap figure where the sweep varies cluster.power_cap with energy values, else
    nothing (the sweep figures of every results CSV call it)."""
    found = power_cap_rows(csv_path, strict=False)
    if found is None:
        return []
    return [save(power_cap_figure(*found), Path(out_dir) / f"power_cap.{fmt}")]


def plot_power_report(report_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """power_step (always) and power_run (where the report has a completed goodput run)."""
    check_format(fmt)
    report = read_report(report_path)
    out = Path(out_dir)
    written = [save(step_figure(step_power(report, report_path)), out / f"power_step.{fmt}")]
    run = run_power(report, report_path)
    if run is not None:
        written.append(save(run_figure(run), out / f"power_run.{fmt}"))
    return written


def plot_power(path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """From a report JSON or a power-cap sweep CSV, by the file's suffix."""
    if str(path).lower().endswith(".csv"):
        return plot_power_cap(path, out_dir, fmt)
    return plot_power_report(path, out_dir, fmt)
