"""The power-cap figure of a sweep CSV that varies `cluster.power_cap`: step time, energy per
token and the cluster's average megawatts against the cap."""

from __future__ import annotations

import csv
import re
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
