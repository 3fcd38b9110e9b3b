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

from simulator.errors import Problem, ScenarioError

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
        raise ScenarioError(Problem("plot", "matplotlib is not installed",
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
        raise ScenarioError(Problem(str(path), f"cannot read: {exc.strerror}")) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ScenarioError(Problem(str(path), f"not a clustersim sweep CSV: missing columns {', '.join(missing)}",
                                    "write one with `clustersim sweep FILE --out results.csv`"))
    swept = header[header.index("point") + 1:header.index("status")]
    rows = []
    for r in raw:
        if r["status"] != "ok":
            continue
        try:
            row = {**r, **{k: float(r[k]) for k in NUMERIC}, "fits": _truthy(r["fits"])}
        except ValueError as exc:
            raise ScenarioError(Problem(f"{path}: point {r['point']}", f"bad number: {exc}")) from None
        row["num_gpus"] = int(row["num_gpus"])
        rows.append(row)
    if not rows:
        raise ScenarioError(Problem(str(path), "no rows with status ok to plot"))
    return rows, swept


def series(rows: list[dict[str, Any]], swept: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped into lines over GPU count: one per combination of the fields that vary
    (model, strategy, GPU and swept columns other than the GPU/host count), sorted by GPUs."""
    keys = [k for k in (*SERIES_FIELDS, *swept)
            if "num_gpus" not in k and "num_hosts" not in k and len({r[k] for r in rows}) > 1]
    keys = list(dict.fromkeys(k for k in keys if not (k.endswith(".strategy") and "strategy" in keys)))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        label = ", ".join(str(r[k]) for k in keys) or r["strategy"]
        groups[label].append(r)
    return {k: sorted(v, key=lambda r: r["num_gpus"]) for k, v in groups.items()}


def plot_step_time(groups: dict[str, list[dict]], path: Path) -> Path:
    """Per series: stacked bars of compute, exposed communication and other time per GPU count."""
    Figure = _figure_class()
    n = len(groups)
    cols = 2 if n == 4 else min(n, 3)
    nrows = -(-n // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, sharey=True, squeeze=False).ravel()
    for ax, (label, rows) in zip(axes, groups.items()):
        x = range(len(rows))
        comp = [r["compute_s"] * 1e3 for r in rows]
        exp = [r["exposed_comm_s"] * 1e3 for r in rows]
        other = [max(0.0, r["step_time_s"] * 1e3 - c - e) for r, c, e in zip(rows, comp, exp)]
        ax.bar(x, comp, color="#1f77b4", label="compute")
        ax.bar(x, exp, bottom=comp, color="#ff7f0e", label="exposed comm")
        ax.bar(x, other, bottom=[c + e for c, e in zip(comp, exp)], color="#bbbbbb", label="other")
        for i, r in enumerate(rows):
            if not r["fits"]:
                ax.text(i, r["step_time_s"] * 1e3, "OOM", ha="center", va="bottom", color=OOM_COLOR,
                        fontweight="bold", fontsize=8)
        ax.set_xticks(list(x), [str(r["num_gpus"]) for r in rows])
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("GPUs")
    for ax in axes[::cols]:
        ax.set_ylabel("step time (ms)")
    for ax in axes[n:]:
        ax.set_visible(False)
    top = max(r["step_time_s"] for rs in groups.values() for r in rs) * 1e3
    axes[0].set_ylim(0, top * 1.12)  # room for the OOM labels
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("Step time: compute vs exposed communication (OOM: would not fit)")
    return _save(fig, path)


def plot_memory(groups: dict[str, list[dict]], path: Path) -> Path:
    """Stacked per-GPU memory by component for every point, capacity line, OOM bars marked."""
    Figure = _figure_class()
    ordered = [(label, r) for label, rs in groups.items() for r in rs]
    fig = Figure(figsize=(max(6.0, 0.55 * len(ordered) + 2), 4.5), layout="constrained")
    ax = fig.subplots()
    x = list(range(len(ordered)))
    bottom = [0.0] * len(ordered)
    for comp, color in zip(MEMORY_COMPONENTS, COMPONENT_COLORS):
        vals = [r[f"mem_{comp}_bytes"] / 1e9 for _, r in ordered]
        ax.bar(x, vals, bottom=bottom, color=color, label=comp, width=0.8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    caps = [r["capacity_bytes"] / 1e9 for _, r in ordered]
    ax.hlines(caps, [i - 0.45 for i in x], [i + 0.45 for i in x], colors="black", linestyles="--",
              label="capacity")
    for i, (_, r) in enumerate(ordered):
        if not r["fits"]:
            ax.bar(i, bottom[i], fill=False, edgecolor=OOM_COLOR, linewidth=2, width=0.8)
            ax.text(i, bottom[i], "OOM", ha="center", va="bottom", color=OOM_COLOR, fontweight="bold", fontsize=8)
    ax.set_xticks(x, [f"{label}\n{r['num_gpus']} GPUs" for label, r in ordered], fontsize=7,
                  rotation=90 if len(ordered) > 12 else 0)
    ax.set_ylabel("per-GPU memory (GB = 1e9 bytes)")
    ax.set_title("Peak per-GPU memory by component (dashed: GPU capacity; red: out of memory)")
    ax.legend(fontsize=8, ncols=4, loc="upper left")
    ax.set_ylim(0, max(max(bottom), max(caps)) * 1.18)
    return _save(fig, path)


def plot_mfu(groups: dict[str, list[dict]], path: Path) -> Path:
    """MFU and tokens/s per GPU vs GPU count, one line per series; OOM points hollow, red."""
    Figure = _figure_class()
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_mfu, ax_tok = fig.subplots(1, 2)
    all_n = sorted({r["num_gpus"] for rs in groups.values() for r in rs})
    for label, rows in groups.items():
        n = [r["num_gpus"] for r in rows]
        for ax, key, scale in ((ax_mfu, "mfu", 100), (ax_tok, "tokens_per_s_per_gpu", 1)):
            ax.plot(n, [r[key] * scale for r in rows], marker="o", label=label)
            oom = [(r["num_gpus"], r[key] * scale) for r in rows if not r["fits"]]
            if oom:
                ax.scatter(*zip(*oom), s=90, facecolors="none", edgecolors=OOM_COLOR, linewidths=2, zorder=3)
    for ax, ylabel in ((ax_mfu, "MFU (%)"), (ax_tok, "tokens/s per GPU")):
        if all_n[-1] / all_n[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(all_n, [str(v) for v in all_n])
        ax.set_xlabel("GPUs")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax_mfu.legend(fontsize=8)
    fig.suptitle("Scaling: MFU and per-GPU throughput vs GPU count (red rings: OOM points)")
    return _save(fig, path)


def plot_results(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """The sweep figures (step time split, memory by component, MFU vs scale) in out_dir."""
    if fmt not in FORMATS:
        raise ScenarioError(Problem("--format", f"unknown format {fmt!r}", f"one of {', '.join(FORMATS)}"))
    rows, swept = read_results(csv_path)
    groups = series(rows, swept)
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
        raise ScenarioError(Problem(str(path), f"not a Chrome trace with traceEvents: {exc}",
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
        raise ScenarioError(Problem(str(path), "the trace has no memory counter events"))
    tracks = {pid: [(threads.get((pid, tid), str(tid)), ts, d) for tid, ts, d in iv] for pid, iv in busy.items()}
    return names, dict(memory), tracks


def plot_trace(trace_path: str | Path, out_dir: str | Path, fmt: str = "png") -> Path:
    """Memory timeline of one step (per rank class) with the streams' busy intervals below."""
    if fmt not in FORMATS:
        raise ScenarioError(Problem("--format", f"unknown format {fmt!r}", f"one of {', '.join(FORMATS)}"))
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
