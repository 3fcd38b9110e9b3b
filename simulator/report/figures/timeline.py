"""The memory timeline of one step, from the Chrome trace `clustersim run --trace` writes:
allocated memory per rank class, with the streams' busy intervals below."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from simulator.core.errors import Problem, UserError
from simulator.execution.schedule import STREAMS
from simulator.report.figures.style import (
    CLASS_STYLES,
    STREAM_COLORS,
    check_format,
    figure_class,
    save,
)


def read_trace(trace_path: str | Path) -> tuple[dict[int, str], dict[int, list], dict[int, list]]:
    """(process names, memory counter samples [(ms, GB)], busy intervals [(thread, ms, dur)]) per pid."""
    path = Path(trace_path)
    try:
        events = json.loads(path.read_text(encoding="utf-8"))["traceEvents"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            Problem(
                str(path),
                f"not a Chrome trace with traceEvents: {exc}",
                "write one with `clustersim run SCENARIO --trace trace.json`",
            )
        ) from None
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
    tracks = {
        pid: [(threads.get((pid, tid), str(tid)), ts, d) for tid, ts, d in iv]
        for pid, iv in busy.items()
    }
    return names, dict(memory), tracks


def _memory_lines(ax, names: dict[int, str], memory: dict[int, list]) -> None:
    """One step line per rank class; its peak marked on the line and stated in its legend entry.
    Classes often peak at nearly the same place (a straggler only stretches time), so labels
    beside the peaks would overlap; the legend stacks them instead."""
    for k, (pid, samples) in enumerate(sorted(memory.items())):
        color, linestyle = CLASS_STYLES[k % len(CLASS_STYLES)]
        t, gb = zip(*samples)
        i = max(range(len(gb)), key=gb.__getitem__)
        label = f"{names.get(pid, f'pid {pid}')}: peak {gb[i]:.2f} GB at {t[i]:.1f} ms"
        ax.step(t, gb, where="post", color=color, linestyle=linestyle, label=label)
        ax.plot([t[i]], [gb[i]], marker="v", color=color, markersize=8, zorder=3)
    ax.set_ylabel("allocated memory (GB)")
    ax.set_ylim(0, max(gb for samples in memory.values() for _, gb in samples) * 1.12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", title="rank class (▼ its peak)", title_fontsize=8)


def _stream_lanes(ax, tracks: list) -> None:
    """A lane per stream that was busy, in the schedule's stream order, top to bottom."""
    present = {name for name, _, _ in tracks}
    lanes = [s for s in STREAMS if s in present] + sorted(present - set(STREAMS))
    for y, lane in enumerate(lanes):
        spans = [(ts, d) for name, ts, d in tracks if name == lane]
        ax.broken_barh(spans, (y - 0.4, 0.8), color=STREAM_COLORS.get(lane, "#999999"), label=lane)
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.set_ylim(len(lanes) - 0.5, -0.5)  # first stream on top


def trace_figure(trace_path: str | Path):
    """The memory-timeline figure of a trace (not saved)."""
    names, memory, tracks = read_trace(trace_path)
    fig = figure_class()(figsize=(10, 5.5), layout="constrained")
    ax, ax_busy = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _memory_lines(ax, names, memory)
    ax.set_title(f"Memory timeline of one step ({Path(trace_path).name})")
    pid = min(memory)  # the streams of the first rank class
    _stream_lanes(ax_busy, tracks.get(pid, []))
    ax_busy.set_xlabel("time in step (ms)")
    ax_busy.set_title(f"stream activity: {names.get(pid, pid)}", fontsize=9)
    return fig


def plot_trace(trace_path: str | Path, out_dir: str | Path, fmt: str = "png") -> Path:
    """Memory timeline of one step (per rank class) with the streams' busy intervals below."""
    check_format(fmt)
    return save(trace_figure(trace_path), Path(out_dir) / f"memory_timeline.{fmt}")
