"""Figures from sweep results (CSV) and from a step's Chrome trace. matplotlib is optional
(the `plot` extra): it is imported only here, lazily, with the Agg backend (no display needed).

    plot_results(csv_path, out_dir, fmt) -> [step_time, memory, mfu] figure paths
    plot_trace(trace_path, out_dir, fmt) -> memory-timeline figure path
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError

FORMATS = ("png", "svg")
MEMORY_COMPONENTS = ("params", "grads", "optimizer", "activations", "buffers", "overhead")
NUMERIC = ("num_gpus", "params", "capacity_bytes", "step_time_s", "compute_s", "comm_s", "exposed_comm_s",
           "mfu", "tokens_per_s", "tokens_per_s_per_gpu", *(f"mem_{c}_bytes" for c in MEMORY_COMPONENTS),
           "mem_total_bytes")
REQUIRED = ("point", "status", "strategy", "num_gpus", "fits", *NUMERIC[1:])
# Columns a sweep writes after the swept dotted paths: the swept ones lie between point and status.
SERIES_FIELDS = ("model", "strategy", "gpu")
OOM_COLOR = "#d62728"
COMPONENT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f")


def _figure_class():
    try:
        import matplotlib
    except ImportError:
        raise UserError(Problem("plot", "matplotlib is not installed",
                                    "pip install 'clustersim[plot]' (or pip install matplotlib)")) from None
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure


def _save(fig, path: Path) -> Path:
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Date": None} if path.suffix == ".svg" else {}
    with matplotlib.rc_context({"svg.hashsalt": "clustersim"}):  # same input, same SVG bytes
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata=meta)
    return path


def _truthy(text: str) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def read_results(csv_path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows with status ok, numbers parsed; the swept column names) from a sweep CSV."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            raw = list(reader)
    except OSError as exc:
        raise UserError(Problem(str(path), f"cannot read: {exc.strerror}")) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(Problem(str(path), f"not a clustersim sweep CSV: missing columns {', '.join(missing)}",
                                    "write one with `clustersim sweep FILE --out results.csv`"))
    swept = header[header.index("point") + 1:header.index("status")]
    rows = []
    for r in raw:
        if r["status"] != "ok":
            continue
        try:
            row = {**r, **{k: float(r[k]) for k in NUMERIC}, "fits": _truthy(r["fits"])}
        except ValueError as exc:
            raise UserError(Problem(f"{path}: point {r['point']}", f"bad number: {exc}")) from None
        row["num_gpus"] = int(row["num_gpus"])
        rows.append(row)
    if not rows:
        raise UserError(Problem(str(path), "no rows with status ok to plot"))
    return rows, swept


def panels(rows: list[dict[str, Any]], swept: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Rows as {panel: {strategy: rows sorted by GPU count}}: one panel per combination of what
    varies besides the strategy and the GPU/host count (model, GPU, other swept columns)."""
    varying = [k for k in (*SERIES_FIELDS, *swept) if len({r[k] for r in rows}) > 1]
    # The strategy has its own series; GPU count is the x axis; a swept model.preset or
    # cluster.topology repeats what the model and gpu columns already say.
    keys = [k for k in varying if k != "strategy" and not k.endswith((".strategy", "num_gpus", "num_hosts"))]
    if "model" in keys:
        keys = [k for k in keys if k != "model.preset"]
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        out[", ".join(str(r[k]) for k in keys) or "all points"][r["strategy"]].append(r)
    return {p: {s: sorted(v, key=lambda r: r["num_gpus"]) for s, v in sorted(by.items())}
            for p, by in out.items()}


def _grid(Figure, n: int, width: float, height: float):
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _strategy_colors(groups) -> dict[str, Any]:
    import matplotlib

    names = sorted({s for by in groups.values() for s in by})
    cmap = matplotlib.colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(names)}


def plot_step_time(groups: dict[str, dict[str, list[dict]]], path: Path) -> Path:
    """Per panel, step time vs GPU count with one group of bars per strategy: compute (solid)
    and exposed communication (hatched) stacked; OOM points pale and labelled."""
    Figure = _figure_class()
    fig, axes = _grid(Figure, len(groups), 6.0, 3.8)
    colors = _strategy_colors(groups)
    for ax, (label, by) in zip(axes, groups.items()):
        gpus = sorted({r["num_gpus"] for rs in by.values() for r in rs})
        width = 0.8 / len(by)
        for j, (strategy, rows) in enumerate(by.items()):
            xs = [gpus.index(r["num_gpus"]) - 0.4 + width * (j + 0.5) for r in rows]
            alpha = [1.0 if r["fits"] else 0.3 for r in rows]
            comp = [r["compute_s"] for r in rows]
            exposed = [max(0.0, r["step_time_s"] - r["compute_s"]) for r in rows]
            for x, c, e, a, r in zip(xs, comp, exposed, alpha, rows):
                ax.bar(x, c, width, color=colors[strategy], alpha=a)
                ax.bar(x, e, width, bottom=c, color=colors[strategy], alpha=a * 0.6, hatch="///",
                       edgecolor="white")
                if not r["fits"]:
                    ax.text(x, c + e, "OOM", ha="center", va="bottom", color=OOM_COLOR, fontsize=6, rotation=90)
        ax.set_xticks(range(len(gpus)), [str(g) for g in gpus])
        ax.set_yscale("log")
        low = min(r["compute_s"] for rs in by.values() for r in rs if r["compute_s"] > 0)
        high = max(r["step_time_s"] for rs in by.values() for r in rs)
        ax.set_ylim(low / 2, high * 3)  # log bars need a floor; headroom for the OOM labels
        ax.set_xlabel("GPUs")
        ax.set_ylabel("step time (s, log)")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    _legend(fig, colors, extra=[("exposed communication", {"hatch": "///", "facecolor": "#999999"})])
    fig.suptitle("Step time by strategy: compute (solid) + exposed communication (hatched); pale = OOM")
    return _save(fig, path)


def _legend(fig, colors: dict[str, Any], extra=()) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=s) for s, c in colors.items()]
    handles += [Patch(label=label, edgecolor="white", **kw) for label, kw in extra]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)


def plot_memory(groups: dict[str, dict[str, list[dict]]], path: Path) -> Path:
    """Per panel, stacked per-GPU memory by component for each (GPU count, strategy), with the
    capacity line; OOM bars outlined in red."""
    Figure = _figure_class()
    n_bars = max(sum(len(rs) for rs in by.values()) for by in groups.values())
    fig, axes = _grid(Figure, len(groups), max(6.0, 0.32 * n_bars + 2), 4.2)
    for ax, (label, by) in zip(axes, groups.items()):
        ordered = sorted(((r["num_gpus"], s, r) for s, rs in by.items() for r in rs), key=lambda t: (t[0], t[1]))
        x = list(range(len(ordered)))
        bottom = [0.0] * len(ordered)
        for comp, color in zip(MEMORY_COMPONENTS, COMPONENT_COLORS):
            vals = [r[f"mem_{comp}_bytes"] / 1e9 for _, _, r in ordered]
            ax.bar(x, vals, bottom=bottom, color=color, label=comp, width=0.8)
            bottom = [b + v for b, v in zip(bottom, vals)]
        cap = max(r["capacity_bytes"] for _, _, r in ordered) / 1e9
        ax.axhline(cap, color="black", linestyle="--", label="capacity")
        for i, (_, _, r) in enumerate(ordered):
            if not r["fits"]:
                ax.bar(i, min(bottom[i], cap * 1.6), fill=False, edgecolor=OOM_COLOR, linewidth=1.5, width=0.8)
        ax.set_xticks(x, [f"{s} {g}" for g, s, _ in ordered], fontsize=7, rotation=90)
        ax.set_ylim(0, cap * 1.6)  # OOM bars beyond are clipped; their totals are in the CSV
        ax.set_ylabel("per-GPU memory (GB)")
        ax.set_title(label, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=7, fontsize=8)
    fig.suptitle("Peak per-GPU memory by component (strategy, GPUs); dashed: capacity; red outline: OOM")
    return _save(fig, path)


def plot_mfu(groups: dict[str, dict[str, list[dict]]], path: Path) -> Path:
    """Per panel, MFU vs GPU count, one line per strategy; OOM points as red rings."""
    Figure = _figure_class()
    fig, axes = _grid(Figure, len(groups), 5.5, 3.6)
    colors = _strategy_colors(groups)
    for ax, (label, by) in zip(axes, groups.items()):
        all_n = sorted({r["num_gpus"] for rs in by.values() for r in rs})
        for strategy, rows in by.items():
            n = [r["num_gpus"] for r in rows]
            ax.plot(n, [100 * r["mfu"] for r in rows], marker="o", color=colors[strategy], label=strategy)
            oom = [(r["num_gpus"], 100 * r["mfu"]) for r in rows if not r["fits"]]
            if oom:
                ax.scatter(*zip(*oom), s=90, facecolors="none", edgecolors=OOM_COLOR, linewidths=1.5, zorder=3)
        if all_n[-1] / all_n[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(all_n, [str(v) for v in all_n])
        ax.set_xlabel("GPUs")
        ax.set_ylabel("MFU (%)")
        ax.set_ylim(bottom=0)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    _legend(fig, colors)
    fig.suptitle("MFU vs scale by strategy (red rings: OOM points)")
    return _save(fig, path)


def plot_results(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """The sweep figures (step time split, memory by component, MFU vs scale) in out_dir."""
    if fmt not in FORMATS:
        raise UserError(Problem("--format", f"unknown format {fmt!r}", f"one of {', '.join(FORMATS)}"))
    rows, swept = read_results(csv_path)
    groups = panels(rows, swept)
    out = Path(out_dir)
    return [plot_step_time(groups, out / f"step_time.{fmt}"),
            plot_memory(groups, out / f"memory.{fmt}"),
            plot_mfu(groups, out / f"mfu.{fmt}")]


def read_trace(trace_path: str | Path) -> tuple[dict[int, str], dict[int, list], dict[int, list]]:
    """(process names, memory counter samples [(ms, GB)], busy intervals [(thread, ms, dur)]) per pid."""
    path = Path(trace_path)
    try:
        events = json.loads(path.read_text(encoding="utf-8"))["traceEvents"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(Problem(str(path), f"not a Chrome trace with traceEvents: {exc}",
                                    "write one with `clustersim run SCENARIO --trace trace.json`")) from None
    names, threads, memory, busy = {}, {}, defaultdict(list), defaultdict(list)
    for e in events:
        pid = e.get("pid", 0)
        if e.get("ph") == "M" and e.get("name") == "process_name":
            names[pid] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(pid, e.get("tid"))] = e["args"]["name"]
        elif e.get("ph") == "C" and e.get("name") == "memory":
            memory[pid].append((e["ts"] / 1e3, e["args"]["GB"]))
        elif e.get("ph") == "X":
            busy[pid].append((e.get("tid"), e["ts"] / 1e3, e.get("dur", 0) / 1e3))
    if not memory:
        raise UserError(Problem(str(path), "the trace has no memory counter events"))
    tracks = {pid: [(threads.get((pid, tid), str(tid)), ts, d) for tid, ts, d in iv] for pid, iv in busy.items()}
    return names, dict(memory), tracks


def plot_trace(trace_path: str | Path, out_dir: str | Path, fmt: str = "png") -> Path:
    """Memory timeline of one step (per rank class) with the streams' busy intervals below."""
    if fmt not in FORMATS:
        raise UserError(Problem("--format", f"unknown format {fmt!r}", f"one of {', '.join(FORMATS)}"))
    names, memory, tracks = read_trace(trace_path)
    Figure = _figure_class()
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    ax, ax_busy = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for pid, samples in sorted(memory.items()):
        t, gb = zip(*samples)
        line, = ax.step(t, gb, where="post", label=names.get(pid, f"pid {pid}"))
        i = max(range(len(gb)), key=gb.__getitem__)
        ax.plot([t[i]], [gb[i]], marker="v", color=line.get_color())
        ax.annotate(f"peak {gb[i]:.1f} GB at {t[i]:.0f} ms", (t[i], gb[i]), textcoords="offset points",
                    xytext=(5, 6), fontsize=8)
    ax.set_ylabel("allocated memory (GB)")
    ax.set_ylim(0, max(gb for samples in memory.values() for _, gb in samples) * 1.12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Memory timeline of one step ({Path(trace_path).name})")
    pid = min(memory)  # the streams of the first rank class
    lanes = sorted({name for name, _, _ in tracks.get(pid, [])})
    for y, lane in enumerate(lanes):
        spans = [(ts, d) for name, ts, d in tracks[pid] if name == lane]
        ax_busy.broken_barh(spans, (y - 0.4, 0.8), color=COMPONENT_COLORS[y % len(COMPONENT_COLORS)])
    ax_busy.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax_busy.set_xlabel("time in step (ms)")
    ax_busy.set_title(f"stream activity: {names.get(pid, pid)}", fontsize=9)
    return _save(fig, Path(out_dir) / f"memory_timeline.{fmt}")
