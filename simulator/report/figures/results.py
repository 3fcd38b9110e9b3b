"""The sweep figures, from a `clustersim sweep` CSV: step time split into compute and exposed
communication, per-GPU memory by component, MFU vs scale; one panel per combination of what
varies besides the strategy and the GPU count."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.report.figures.style import (
    COMPONENT_COLORS,
    OOM_COLOR,
    STREAM_COLORS,
    check_format,
    figure_class,
    matplotlib_module,
    save,
    strategy_styles,
)

MEMORY_COMPONENTS = ("params", "grads", "optimizer", "activations", "buffers", "overhead")
NUMERIC = (
    "num_gpus",
    "params",
    "capacity_bytes",
    "step_time_s",
    "compute_s",
    "comm_s",
    "exposed_comm_s",
    "mfu",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    *(f"mem_{c}_bytes" for c in MEMORY_COMPONENTS),
    "mem_total_bytes",
)
REQUIRED = ("point", "status", "strategy", "num_gpus", "fits", *NUMERIC[1:])
# The step time's 80% interval (studies/intervals.py), drawn as whiskers where a row has it.
INTERVAL = ("step_time_lo_s", "step_time_hi_s")
# Columns a sweep writes after the swept dotted paths: the swept ones lie between point and status.
SERIES_FIELDS = ("model", "strategy", "gpu")
# The memory axes end at this multiple of the capacity: an OOM total can be many times the
# capacity and would flatten every bar that fits. Bars cut there are marked with their total.
MEMORY_CLIP = 1.6
Groups = dict[str, dict[str, list[dict[str, Any]]]]


def _truthy(text: str) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def read_results(csv_path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows with status ok, numbers parsed; the swept column names) from a sweep CSV."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            raw = list(reader)
    except OSError as exc:
        raise UserError(Problem(str(path), f"cannot read: {exc.strerror}")) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(
            Problem(
                str(path),
                f"not a clustersim sweep CSV: missing columns {', '.join(missing)}",
                "write one with `clustersim sweep FILE --out results.csv`",
            )
        )
    swept = header[header.index("point") + 1 : header.index("status")]
    rows: list[dict[str, Any]] = []
    for r in raw:
        if r["status"] != "ok":
            continue
        try:
            row = {**r, **{k: float(r[k]) for k in NUMERIC}, "fits": _truthy(r["fits"])}
        except ValueError as exc:
            raise UserError(Problem(f"{path}: point {r['point']}", f"bad number: {exc}")) from None
        row["num_gpus"] = int(row["num_gpus"])
        try:
            row["interval"] = tuple(float(r[k]) for k in INTERVAL)
        except (KeyError, TypeError, ValueError):
            row["interval"] = None  # not written (an older sweep) or empty
        rows.append(row)
    if not rows:
        raise UserError(Problem(str(path), "no rows with status ok to plot"))
    return rows, swept


def panels(
    rows: list[dict[str, Any]], swept: list[str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Rows as {panel: {strategy: rows sorted by GPU count}}: one panel per combination of what
    varies besides the strategy and the GPU/host count (model, GPU, other swept columns)."""
    varying = [k for k in (*SERIES_FIELDS, *swept) if len({r[k] for r in rows}) > 1]
    # The strategy has its own series; GPU count is the x axis; a swept model.preset or
    # cluster.topology repeats what the model and gpu columns already say.
    keys = [
        k
        for k in varying
        if k != "strategy" and not k.endswith((".strategy", "num_gpus", "num_hosts"))
    ]
    if "model" in keys:
        keys = [k for k in keys if k != "model.preset"]
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        out[", ".join(str(r[k]) for k in keys) or "all points"][r["strategy"]].append(r)
    return {
        p: {s: sorted(v, key=lambda r: r["num_gpus"]) for s, v in sorted(by.items())}
        for p, by in out.items()
    }


def _grid(n: int, width: float, height: float):
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = figure_class()(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _styles(groups: Groups):
    return strategy_styles({s for by in groups.values() for s in by})


def _legend(fig, handles: list) -> None:
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)


def _strategy_patches(styles) -> list:
    Patch = matplotlib_module("matplotlib.patches").Patch
    return [Patch(color=st.color, label=s) for s, st in styles.items()]


def step_time_figure(groups: Groups):
    """Per panel, step time vs GPU count with one group of bars per strategy: compute (in the
    strategy's colour) and exposed communication (the comm stream's colour, hatched) stacked,
    a whisker over each bar for the step time's 80% interval; OOM points pale and labelled."""
    Patch = matplotlib_module("matplotlib.patches").Patch
    fig, axes = _grid(len(groups), 6.0, 3.8)
    styles = _styles(groups)
    for ax, (label, by) in zip(axes, groups.items()):
        gpus = sorted({r["num_gpus"] for rs in by.values() for r in rs})
        width = 0.8 / len(by)
        for j, (strategy, rows) in enumerate(by.items()):
            for r in rows:
                x = gpus.index(r["num_gpus"]) - 0.4 + width * (j + 0.5)
                a = 1.0 if r["fits"] else 0.3
                c, e = r["compute_s"], max(0.0, r["step_time_s"] - r["compute_s"])
                ax.bar(x, c, width, color=styles[strategy].color, alpha=a)
                ax.bar(
                    x,
                    e,
                    width,
                    bottom=c,
                    color=STREAM_COLORS["comm"],
                    alpha=a,
                    hatch="///",
                    edgecolor="white",
                )
                if r.get("interval"):
                    lo, hi = r["interval"]
                    step = r["step_time_s"]
                    ax.errorbar(
                        x,
                        step,
                        yerr=[[max(step - lo, 0.0)], [max(hi - step, 0.0)]],
                        fmt="none",
                        ecolor="black",
                        elinewidth=0.8,
                        capsize=2,
                        alpha=a,
                    )
                if not r["fits"]:
                    ax.text(
                        x,
                        c + e,
                        "OOM",
                        ha="center",
                        va="bottom",
                        color=OOM_COLOR,
                        fontsize=6,
                        rotation=90,
                    )
        ax.set_xticks(range(len(gpus)), [str(g) for g in gpus])
        ax.set_yscale("log")
        low = min(r["compute_s"] for rs in by.values() for r in rs if r["compute_s"] > 0)
        high = max(
            max(r["step_time_s"], (r.get("interval") or (0.0, 0.0))[1])
            for rs in by.values()
            for r in rs
        )
        ax.set_ylim(low / 2, high * 3)  # log bars need a floor; headroom for the OOM labels
        ax.set_xlabel("GPUs")
        ax.set_ylabel("step time (s, log)")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    comm = Patch(
        facecolor=STREAM_COLORS["comm"],
        hatch="///",
        edgecolor="white",
        label="exposed communication",
    )
    _legend(fig, _strategy_patches(styles) + [comm])
    fig.suptitle(
        "Step time by strategy: compute (strategy colour) + exposed communication (hatched); "
        "whiskers: 80% interval; pale = OOM"
    )
    return fig


def _mark_clipped(ax, x: float, clip: float, total_gb: float) -> None:
    """Break marks across a bar cut at the clip line, and its true total above the cut."""
    for y in (clip * 0.95, clip * 0.92):
        ax.plot(
            [x - 0.45, x + 0.45], [y - clip * 0.012, y + clip * 0.012], color="white", linewidth=2.5
        )
    ax.text(
        x, clip * 1.01, f"{total_gb:,.0f} GB", ha="center", va="bottom", rotation=90, fontsize=7
    )


def _memory_panel(ax, by: dict[str, list[dict]], styles) -> None:
    ordered = sorted(
        ((r["num_gpus"], s, r) for s, rs in by.items() for r in rs), key=lambda t: (t[0], t[1])
    )
    x = list(range(len(ordered)))
    cap = max(r["capacity_bytes"] for _, _, r in ordered) / 1e9
    clip = cap * MEMORY_CLIP
    bottom = [0.0] * len(ordered)
    for comp, color in zip(MEMORY_COMPONENTS, COMPONENT_COLORS):
        top = [b + r[f"mem_{comp}_bytes"] / 1e9 for b, (_, _, r) in zip(bottom, ordered)]
        # Segments stop at the clip line, so the space above it stays free for the totals.
        ax.bar(
            x,
            [min(t, clip) - min(b, clip) for b, t in zip(bottom, top)],
            bottom=[min(b, clip) for b in bottom],
            color=color,
            label=comp,
            width=0.8,
        )
        bottom = top
    ax.axhline(cap, color="black", linestyle="--", label="capacity")
    totals = [r["mem_total_bytes"] / 1e9 for _, _, r in ordered]
    for i, (_, _, r) in enumerate(ordered):
        if not r["fits"]:
            ax.bar(
                i, min(totals[i], clip), fill=False, edgecolor=OOM_COLOR, linewidth=1.5, width=0.8
            )
        if totals[i] > clip:
            _mark_clipped(ax, i, clip, totals[i])
    ax.set_xticks(x, [f"{s} {g}" for g, s, _ in ordered], fontsize=7, rotation=90)
    for tick, (_, s, _) in zip(ax.get_xticklabels(), ordered):
        tick.set_color(styles[s].color)  # the strategy's colour, as in the other figures
    ax.set_ylim(0, clip * (1.3 if max(totals) > clip else 1.0))  # room for the totals' text
    ax.set_ylabel("per-GPU memory (GB)")


def memory_figure(groups: Groups):
    """Per panel, stacked per-GPU memory by component for each (GPU count, strategy), with the
    capacity line; OOM bars outlined in red; bars over MEMORY_CLIP x capacity cut and labelled."""
    n_bars = max(sum(len(rs) for rs in by.values()) for by in groups.values())
    fig, axes = _grid(len(groups), max(6.0, 0.32 * n_bars + 2), 4.2)
    styles = _styles(groups)
    for ax, (label, by) in zip(axes, groups.items()):
        _memory_panel(ax, by, styles)
        ax.set_title(label, fontsize=10)
    handles, _ = axes[0].get_legend_handles_labels()
    _legend(fig, handles)
    fig.suptitle(
        f"Peak per-GPU memory by component (strategy, GPUs); dashed: capacity; red outline: OOM; "
        f"bars cut (//) at {MEMORY_CLIP:g}x capacity, true total above",
        fontsize=10,
    )
    return fig


def mfu_figure(groups: Groups):
    """Per panel, MFU vs GPU count, one line per strategy, each with its own colour, hollow
    marker and dash pattern (equal values stay visible); OOM points as red rings."""
    Line2D = matplotlib_module("matplotlib.lines").Line2D
    fig, axes = _grid(len(groups), 5.5, 3.6)
    styles = _styles(groups)
    kw = {
        s: {
            "color": st.color,
            "marker": st.marker,
            "linestyle": st.linestyle,
            "markerfacecolor": "none",
            "markersize": 7,
            "markeredgewidth": 1.5,
            "label": s,
        }
        for s, st in styles.items()
    }
    for ax, (label, by) in zip(axes, groups.items()):
        all_n = sorted({r["num_gpus"] for rs in by.values() for r in rs})
        for strategy, rows in by.items():
            ax.plot([r["num_gpus"] for r in rows], [100 * r["mfu"] for r in rows], **kw[strategy])
            oom = [(r["num_gpus"], 100 * r["mfu"]) for r in rows if not r["fits"]]
            if oom:
                ax.scatter(
                    *zip(*oom),
                    s=150,
                    facecolors="none",
                    edgecolors=OOM_COLOR,
                    linewidths=1.5,
                    zorder=3,
                )
        if all_n[-1] / all_n[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(all_n, [str(v) for v in all_n])
        ax.set_xlabel("GPUs")
        ax.set_ylabel("MFU (%)")
        top = max(100 * r["mfu"] for rs in by.values() for r in rs)
        ax.set_ylim(0, top * 1.12)  # room for the markers and rings at the top value
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    _legend(fig, [Line2D([], [], **k) for k in kw.values()])
    fig.suptitle("MFU vs scale by strategy (red rings: OOM points)")
    return fig


def plot_results(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """The sweep figures (step time split, memory by component, MFU vs scale) in out_dir."""
    check_format(fmt)
    rows, swept = read_results(csv_path)
    groups = panels(rows, swept)
    out = Path(out_dir)
    return [
        save(step_time_figure(groups), out / f"step_time.{fmt}"),
        save(memory_figure(groups), out / f"memory.{fmt}"),
        save(mfu_figure(groups), out / f"mfu.{fmt}"),
    ]
