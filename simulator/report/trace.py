"""Chrome trace JSON of a simulated step (opens in Perfetto or chrome://tracing).

One process per rank class, one thread (track) per stream, memory as a counter track;
times in microseconds as the Trace Event Format requires.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulator.core.outputs import write_text
from simulator.execution.schedule import STREAMS


def chrome_trace(step) -> dict:
    events = []
    for pid, (rc, tl) in enumerate(zip(step.classes, step.engine.timelines)):
        events.append(
            {
                "ph": "M",
                "pid": pid,
                "name": "process_name",
                "args": {"name": f"{rc.name} ({rc.ranks} rank{'s' if rc.ranks != 1 else ''})"},
            }
        )
        for tid, stream in enumerate(STREAMS):
            events.append(
                {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": stream}}
            )
        for iv in tl.intervals:
            task = rc.schedule.tasks[iv.task]
            args = {"phase": iv.phase}
            if task.collective is not None:
                args.update(
                    op=task.collective.op,
                    group=task.collective.group.name,
                    bytes=task.collective.size_bytes,
                )
            events.append(
                {
                    "ph": "X",
                    "pid": pid,
                    "tid": STREAMS.index(iv.stream),
                    "name": iv.name,
                    "ts": iv.start_s * 1e6,
                    "dur": (iv.end_s - iv.start_s) * 1e6,
                    "args": args,
                }
            )
        events.append(
            {
                "ph": "C",
                "pid": pid,
                "name": "memory",
                "ts": 0.0,
                "args": {"GB": tl.static_bytes / 1e9},
            }
        )
        for time_s, level, _ in tl.levels():
            events.append(
                {
                    "ph": "C",
                    "pid": pid,
                    "name": "memory",
                    "ts": time_s * 1e6,
                    "args": {"GB": level / 1e9},
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_trace(step, path: str | Path) -> None:
    """`clustersim run --trace FILE`: a write that fails (a full disk...) is a UserError naming --trace."""
    write_text("--trace", path, json.dumps(chrome_trace(step)))
