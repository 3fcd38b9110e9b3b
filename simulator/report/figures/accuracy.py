"""Predicted against measured, on log axes with the y = x line and +-10% / +-20% bands: for
`clustersim accuracy --plot` (one panel per category, validation and calibration cases marked
apart) and `clustersim calibrate --plot` (before, after and left out, per fitted part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.report.figures.style import FORMATS, MARKERS, STRATEGY_PALETTE, figure_class, save


def _panel(ax, series: list[tuple[str, np.ndarray, np.ndarray]], title: str, xlabel: str) -> None:
    lo = min(float(min(x.min(), y.min())) for _, x, y in series)
    hi = max(float(max(x.max(), y.max())) for _, x, y in series)
    lo, hi = lo / 1.5, hi * 1.5
    line = np.array([lo, hi])
    ax.plot(line, line, color="black", linewidth=0.8)
    for band, style in ((0.1, "--"), (0.2, ":")):
        for sign in (1, -1):
            ax.plot(line, line * (1 + sign * band), color="grey", linewidth=0.6, linestyle=style)
    for i, (label, x, y) in enumerate(series):
        ax.scatter(
            x,
            y,
            s=18,
            marker=MARKERS[i % len(MARKERS)],
            facecolors="none",
            edgecolors=STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)],
            label=f"{label} ({len(x)})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


def _check_out(out: str | Path) -> Path:
    path = Path(out)
    if path.suffix.lstrip(".") not in FORMATS:
        raise UserError(
            Problem(
                "--plot", f"{path}: unknown image format", f"end it in .{' or .'.join(FORMATS)}"
            )
        )
    return path


def plot_accuracy(doc: dict[str, Any], out: str | Path) -> Path:
    path = _check_out(out)
    cases = doc["cases"]
    cats = list(dict.fromkeys(c["category"] for c in cases))
    fig = figure_class()(figsize=(4.2 * max(1, len(cats)), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(cats))))
    for ax, cat in zip(axes, cats):
        series = []
        for role in ("validation", "calibration"):
            mine = [c for c in cases if c["category"] == cat and c["role"] == role]
            if mine:
                series.append(
                    (
                        role,
                        np.array([c["published"] for c in mine]),
                        np.array([c["predicted"] for c in mine]),
                    )
                )
        metrics = sorted({c["metric"] for c in cases if c["category"] == cat})
        _panel(ax, series, cat, f"published ({', '.join(metrics)})")
    return save(fig, path)


def plot_fit(doc: dict[str, Any], out: str | Path) -> Path:
    """Per fitted part: predicted against measured (top) and the error against measured (bottom)."""
    path = _check_out(out)
    kinds = list(doc["summary"])
    fig = figure_class()(figsize=(4.6 * max(1, len(kinds)), 7.6), layout="constrained")
    axes = np.array(fig.subplots(2, max(1, len(kinds)), squeeze=False))
    for col, kind in enumerate(kinds):
        rows = [r for r in doc["residuals"] if _kind(r) == kind]
        measured = np.array([r["measured"] for r in rows])
        series = [
            (label, measured, np.array([r[key] for r in rows]))
            for label, key in (("built-in", "before"), ("fitted", "after"))
        ]
        loo = [r for r in rows if r.get("loo") is not None]
        if loo:
            series.append(
                (
                    "left out",
                    np.array([r["measured"] for r in loo]),
                    np.array([r["loo"] for r in loo]),
                )
            )
        xlabel = "measured (" + ", ".join(sorted({r["metric"] for r in rows})) + ")"
        _panel(axes[0, col], series, kind, xlabel)
        _errors(axes[1, col], series, xlabel)
    return save(fig, path)


def _errors(ax, series: list[tuple[str, np.ndarray, np.ndarray]], xlabel: str) -> None:
    ax.axhline(0, color="black", linewidth=0.8)
    for band, style in ((10, "--"), (20, ":")):
        for sign in (1, -1):
            ax.axhline(sign * band, color="grey", linewidth=0.6, linestyle=style)
    for i, (label, x, y) in enumerate(series):
        ax.scatter(
            x,
            100 * (y / x - 1),
            s=18,
            marker=MARKERS[i % len(MARKERS)],
            facecolors="none",
            edgecolors=STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)],
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("error (predicted / measured - 1, %)")
    ax.legend(fontsize=7)


def _kind(row: dict[str, Any]) -> str:
    return "collectives" if row["metric"] == "time_s" else "runs"
