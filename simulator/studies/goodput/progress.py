"""Training progress between events, in closed form: the run advances in chunks (from one
failure, restart or slowdown to the next), never step by step, so a million-step run costs as
many events as it has interruptions.

Within a segment the progress rate (useful work per second, <= 1) is constant and the job
repeats a cycle: `tau` of work (tau / rate seconds), then a checkpoint pause. A snapshot is
durable `lag` seconds after its pause ends (0 for a synchronous save; the background write of
an asynchronous one). Progress and work are in seconds of failure-free training at full
speed. Pure functions of frozen values; the simpy processes (process.py) call them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Cycle:
    tau: float  # work between snapshots (math.inf: no checkpoints)
    pause: float  # the job's pause per snapshot
    lag: float  # a snapshot becomes durable this long after its pause ends
    rate: float  # progress per second
    compute_s: float = field(init=False)  # tau / rate
    length_s: float = field(init=False)  # compute_s + pause

    def __post_init__(self):
        object.__setattr__(self, "compute_s", self.tau / self.rate)
        object.__setattr__(self, "length_s", self.compute_s + self.pause)


@dataclass(frozen=True, kw_only=True)
class Segment:
    """A stretch at one rate. `origin` is the (possibly virtual, earlier) time the current cycle
    began, `base` the progress of the snapshot that began it (its durability: `base_durable_at`),
    `committed` the durable progress at `start`."""

    start: float
    origin: float
    base: float
    committed: float
    base_durable_at: float
    cycle: Cycle


@dataclass(frozen=True, kw_only=True)
class Position:
    progress: float
    committed: float
    pause_s: float  # pause time since the segment's start
    in_pause: bool
    last_snapshot: float  # progress of the newest snapshot whose pause has ended
    last_durable_at: float  # when that snapshot is durable


def start(t: float, progress: float, cycle: Cycle) -> Segment:
    """A segment beginning at a (restored or just saved) durable snapshot."""
    return Segment(
        start=t, origin=t, base=progress, committed=progress, base_durable_at=t, cycle=cycle
    )


def _pause_total(c: Cycle, e: float) -> float:
    """Pause time from the origin to e seconds after it."""
    if math.isinf(c.tau):
        return 0.0
    n = math.floor(e / c.length_s)
    return n * c.pause + max(0.0, e - n * c.length_s - c.compute_s)


def at(s: Segment, t: float) -> Position:
    """Where the job is at time t >= s.start."""
    c = s.cycle
    e = t - s.origin
    if math.isinf(c.tau):
        n, r = 0, e
    else:
        n = math.floor(e / c.length_s)
        r = e - n * c.length_s
    last = s.base + n * c.tau if n else s.base  # (0 x inf would be nan)
    progress = last + c.rate * min(r, c.compute_s)
    last_durable = s.origin + n * c.length_s + c.lag if n else s.base_durable_at
    if n and (c.lag == 0.0 or last_durable <= t):
        committed = last
    else:
        # The newest snapshot is not durable yet: the one before it is (tau >= lag, see model.py).
        previous = s.base + (n - 1) * c.tau if n else None
        if n >= 2 or (n == 1 and s.base_durable_at <= t):
            assert previous is not None  # n >= 1 here
            committed = previous
        elif n == 0 and s.base_durable_at <= t:
            committed = s.base
        else:
            committed = s.committed
    pause = _pause_total(c, e) - _pause_total(c, s.start - s.origin)
    return Position(
        progress=progress,
        committed=max(committed, s.committed),
        pause_s=pause,
        in_pause=r > c.compute_s,
        last_snapshot=last,
        last_durable_at=last_durable,
    )


def resume(s: Segment, t: float, rate: float) -> Segment:
    """The same job from time t at another rate, keeping its place in the checkpoint cycle."""
    p = at(s, t)
    c = replace(s.cycle, rate=rate)
    if p.in_pause:
        done_pause = t - (
            s.origin
            + math.floor((t - s.origin) / s.cycle.length_s) * s.cycle.length_s
            + s.cycle.compute_s
        )
        origin = t - c.compute_s - done_pause
    else:
        origin = t - (p.progress - p.last_snapshot) / rate
    return Segment(
        start=t,
        origin=origin,
        base=p.last_snapshot,
        committed=p.committed,
        base_durable_at=p.last_durable_at,
        cycle=c,
    )


def finish_time(s: Segment, work: float) -> float:
    """When progress reaches `work` (no checkpoint after the last step); inf for inf work."""
    if math.isinf(work):
        return math.inf
    c = s.cycle
    todo = work - s.base
    if math.isinf(c.tau):
        return s.origin + todo / c.rate
    full = max(0, math.ceil(todo / c.tau) - 1)
    return max(s.start, s.origin + full * c.length_s + (todo - full * c.tau) / c.rate)


# ------------------------------------------------------------------ many fresh segments at once


@dataclass(frozen=True, kw_only=True)
class Positions:
    """`at` for many segments begun at durable snapshots (start), as arrays."""

    progress: np.ndarray
    committed: np.ndarray
    pause_s: np.ndarray


def at_fresh(c: Cycle, start: np.ndarray, base: np.ndarray, t: np.ndarray) -> Positions:
    """`at(start(start, base, c), t)` element by element, the same arithmetic as `at`: each
    segment began at a durable snapshot of progress `base` at time `start`, so its cycle's
    origin is its start and nothing older than `base` can be committed."""
    e = t - start
    if math.isinf(c.tau):
        return Positions(progress=base + c.rate * e, committed=base, pause_s=np.zeros_like(e))
    n = np.floor(e / c.length_s)
    r = e - n * c.length_s
    last = np.where(n > 0, base + n * c.tau, base)
    durable = (n > 0) & ((c.lag == 0.0) | (start + n * c.length_s + c.lag <= t))
    previous = np.where(n >= 2, base + (n - 1) * c.tau, base)
    return Positions(
        progress=last + c.rate * np.minimum(r, c.compute_s),
        committed=np.maximum(np.where(durable, last, previous), base),
        pause_s=n * c.pause + np.maximum(0.0, e - n * c.length_s - c.compute_s),
    )


def finish_fresh(c: Cycle, start: np.ndarray, base: np.ndarray, work: float) -> np.ndarray:
    """`finish_time(start(start, base, c), work)` element by element (finite work)."""
    todo = work - base
    if math.isinf(c.tau):
        return start + todo / c.rate
    full = np.maximum(0.0, np.ceil(todo / c.tau) - 1.0)
    return np.maximum(start, start + full * c.length_s + (todo - full * c.tau) / c.rate)
