"""Goodput figures: from a report JSON (`clustersim run --json-out report.json`), the completion-
time distribution of the Monte Carlo runs and the time lost by cause; from a sweep CSV with the
goodput columns, the effective training time ratio (and wall-clock days) against what the sweep
varies (GPU count, else the checkpoint interval, else the first numeric swept column)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.report.figures.style import (
    LINESTYLES,
    MARKERS,
    STRATEGY_PALETTE,
    check_format,
    figure_class,
    save,
)

# Kinds of lost time (studies/goodput/process.py LOSSES), in their own colours: Set2 hues, apart
# from the stream and memory-component colours of the other figures.
LOSS_COLORS = {
    "rework": "#fc8d62",
    "restart": "#8da0cb",
    "waiting": "#e78ac3",
    "checkpoint": "#66c2a5",
    "degraded": "#ffd92f",
}


def read_goodput(report_path: str | Path) -> dict[str, Any]:
    path = Path(report_path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(
            Problem(
                str(path),
                f"cannot read a JSON report: {exc}",
                "write one with `clustersim run SCENARIO --json-out report.json`",
            )
        ) from None
    g = report.get("training", {}).get("goodput") if isinstance(report, dict) else None
    if not isinstance(g, dict) or "wall_days_runs" not in g:
        raise UserError(
            Problem(
                str(path),
                "the report has no training.goodput section",
                "run with the reliability section enabled (the default)",
            )
        )
    if g.get("completes") is False:  # not simulated: no runs to draw
        raise UserError(
            Problem(
                str(path),
                f"the run does not complete: {g.get('never_completes_because')}",
                "would complete with: "
                + "; ".join(g.get("feasibility", {}).get("would_complete_with", [])),
            )
        )
    return {**g, "name": report.get("name", "")}


def completion_figure(g: dict[str, Any]):
    """Histogram of the runs' wall-clock days, with p50, p90 and the failure-free days."""
    fig = figure_class()(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    days = g["wall_days_runs"]
    ax.hist(days, bins=min(30, max(5, len(days) // 5)), color="#8da0cb", edgecolor="white")
    marks = [("p50", g["wall_days"]["p50"], "-"), ("p90", g["wall_days"]["p90"], "--")]
    if g.get("useful_days"):
        marks.append(("failure-free", g["useful_days"], ":"))
    for label, x, style in marks:
        ax.axvline(x, color="black", linestyle=style, label=f"{label} {x:,.1f} days")
    ax.set_xlabel("wall-clock days to train")
    ax.set_ylabel(f"runs (of {len(days)})")
    ax.legend(fontsize=8)
    ax.set_title(
        f"{g['name']}: completion time with failures, checkpoints and restarts\n"
        f"effective training time {100 * g['effective_training_time_ratio']:.1f}%",
        fontsize=10,
    )
    return fig


def lost_figure(g: dict[str, Any]):
    """GPU-hours lost per run, by kind (rework, restart, ...) and by cause (failure class...)."""
    fig = figure_class()(figsize=(9.6, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    kinds = list(g["lost_gpu_hours"].items())[::-1]  # top to bottom in the report's order
    left.barh(
        [k for k, _ in kinds],
        [v for _, v in kinds],
        color=[LOSS_COLORS.get(k, "#999999") for k, _ in kinds],
    )
    left.set_xlabel("GPU-hours lost per run")
    left.set_title("by kind", fontsize=10)
    causes = sorted(
        ((k, v) for k, v in g["lost_gpu_hours_by_cause"].items() if v), key=lambda kv: kv[1]
    )
    right.barh([k for k, _ in causes] or ["none"], [v for _, v in causes] or [0], color="#66c2a5")
    right.set_xlabel("GPU-hours lost per run")
    right.set_title("by cause (interruptions per run in brackets)", fontsize=10)
    counts = g["interruptions"]["by_cause"]
    for i, (k, v) in enumerate(causes):
        if k in counts:
            right.text(v, i, f" ({counts[k]:,.1f})", va="center", fontsize=7)
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"{g['name']}: time lost to failures, checkpoints and restarts ({g['runs']} runs)",
        fontsize=10,
    )
    return fig


def plot_goodput_report(
    report_path: str | Path, out_dir: str | Path, fmt: str = "png"
) -> list[Path]:
    check_format(fmt)
    g = read_goodput(report_path)
    out = Path(out_dir)
    return [
        save(completion_figure(g), out / f"completion_time.{fmt}"),
        save(lost_figure(g), out / f"time_lost.{fmt}"),
    ]


# ---------------------------------------------------------------------------------- sweeps

SWEEP_Y = ("effective_training_time_ratio", "wall_days_p50")


def read_goodput_sweep(csv_path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(ok rows with goodput values, the swept columns) of a sweep CSV."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, raw = list(reader.fieldnames or []), list(reader)
    except OSError as exc:
        raise UserError(Problem(str(path), f"cannot read: {exc.strerror}")) from None
    if "point" not in header or "status" not in header or SWEEP_Y[0] not in header:
        raise UserError(
            Problem(
                str(path),
                "not a clustersim sweep CSV with goodput columns",
                "write one with `clustersim sweep FILE --out results.csv`",
            )
        )
    rows = [r for r in raw if r["status"] == "ok" and r[SWEEP_Y[0]]]
    if not rows:
        raise UserError(Problem(str(path), "no rows with status ok and goodput values to plot"))
    return rows, header[header.index("point") + 1 : header.index("status")]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def sweep_axis(rows: list[dict[str, Any]], swept: list[str]) -> tuple[str, str]:
    """(column, label) of the x axis: the GPU count, else the checkpoint interval, else the first
    numeric swept column."""
    if len({r["num_gpus"] for r in rows}) > 1:
        return "num_gpus", "GPUs"
    if (
        any("checkpoint.interval" in s for s in swept)
        and len({r["checkpoint_interval_s"] for r in rows}) > 1
    ):
        return "checkpoint_interval_s", "checkpoint interval (min)"
    for s in swept:
        if all(_number(r[s]) is not None for r in rows) and len({r[s] for r in rows}) > 1:
            return s, s
    raise UserError(
        Problem(
            "--goodput",
            "the sweep varies nothing numeric to plot against",
            "sweep cluster.num_hosts or reliability.checkpoint.interval",
        )
    )


def sweep_figure(rows: list[dict[str, Any]], swept: list[str]):
    """ETTR and p50 wall-clock days vs the x axis, one line per combination of the other swept values."""
    x_col, x_label = sweep_axis(rows, swept)
    others = [
        s
        for s in swept
        if len({r[s] for r in rows}) > 1
        and not s.endswith(("num_hosts", "num_gpus"))
        and not (x_col == "checkpoint_interval_s" and "checkpoint.interval" in s)
    ]
    series: dict[str, list] = defaultdict(list)
    for r in rows:
        series[", ".join(f"{s.split('.')[-1]}={r[s]}" for s in others) or "all points"].append(r)
    # Over a fixed window every run lasts the window: the days panel would say nothing.
    days = len({r[SWEEP_Y[1]] for r in rows}) > 1
    fig = figure_class()(figsize=(10.0 if days else 5.6, 3.8), layout="constrained")
    axes = fig.subplots(1, 2) if days else [fig.subplots(), None]
    scale = 60.0 if x_col == "checkpoint_interval_s" else 1.0
    for i, (label, rs) in enumerate(sorted(series.items())):
        rs = sorted(rs, key=lambda r: float(r[x_col]))
        xs = [float(r[x_col]) / scale for r in rs]
        style = {
            "color": STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)],
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "markerfacecolor": "none",
            "label": label,
        }
        axes[0].plot(xs, [100 * float(r[SWEEP_Y[0]]) for r in rs], **style)
        if days:
            axes[1].plot(xs, [float(r[SWEEP_Y[1]]) for r in rs], **style)
    values = sorted({float(r[x_col]) / scale for r in rows})
    for ax, ylabel in zip(
        axes[: 1 + days], ("effective training time (%)", "wall-clock days to train (p50)")
    ):
        if values[0] > 0 and values[-1] / values[0] >= 8:
            ax.set_xscale("log", base=2 if x_col == "num_gpus" else 10)
        ax.set_xticks(
            values,
            [f"{v / 1024:g}k" if x_col == "num_gpus" and v >= 1024 else f"{v:.3g}" for v in values],
        )
        ax.minorticks_off()
        ax.set_xlabel(x_label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if days:
        walls = [float(r[SWEEP_Y[1]]) for r in rows]
        if min(walls) > 0 and max(walls) / min(walls) >= 8:
            axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Goodput: effective training time"
        + (" and wall-clock days" if days else "")
        + " with failures, checkpoints and restarts",
        fontsize=10,
    )
    return fig


def plot_goodput_sweep(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    check_format(fmt)
    rows, swept = read_goodput_sweep(csv_path)
    return [save(sweep_figure(rows, swept), Path(out_dir) / f"goodput.{fmt}")]


def plot_goodput(path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """From a report JSON or a sweep CSV, by the file's suffix."""
    if str(path).lower().endswith(".csv"):
        return plot_goodput_sweep(path, out_dir, fmt)
    return plot_goodput_report(path, out_dir, fmt)
