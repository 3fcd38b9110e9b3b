"""The engine's streams: how one rank class's tasks run on simpy (execution/engine.py).

- The compute stream (`run_compute`): one simpy process running its tasks in issue order; runs of
  compute tasks that nobody waits for are timed as one span (`_span`), at the SMs' rate while
  collectives hold some of them (engine.py's module doc).
- The other ordered streams (`run_stream`): one process each.
- A p2p task (`Aside`): each on its own, by callbacks.
- `Done`: which tasks have ended, and an event for each one another task waits for.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy
from simpy.events import NORMAL, URGENT

from simulator.execution.timeline import Interval, MemoryEvent, RankClass

if TYPE_CHECKING:
    from simulator.execution.engine import Rendezvous, SMs


class Done:
    """Which tasks of one rank class have ended, and an event for each task that another is
    waiting for. A task's event is made when a waiter first needs it (most tasks are waited for
    by none, or end before their dependents start), and succeeds when the task ends: the same
    instant and order as an event per task, without scheduling the ones nobody waits for (an
    event without callbacks does nothing when processed, and simpy orders events by time,
    priority and the order they were scheduled in, which skipping others does not change)."""

    __slots__ = ("_waited", "env", "finished")

    def __init__(self, env: simpy.Environment, n: int):
        self.env = env
        self.finished = [False] * n
        self._waited: dict[int, simpy.Event] = {}

    def event(self, i: int) -> simpy.Event:
        """The event of task i (not ended yet): it succeeds when the task ends."""
        ev = self._waited.get(i)
        if ev is None:
            ev = self._waited[i] = self.env.event()
        return ev

    def succeed(self, i: int) -> None:
        self.finished[i] = True
        ev = self._waited.pop(i, None)
        if ev is not None:
            ev.succeed()


class Aside:
    """One p2p task (a send, or a collective off the compute stream), run as `run_stream` runs a
    stream of that one task, by callbacks instead of a simpy process: it starts when an urgent
    event at time 0 fires (where the process's Initialize event would), waits for its
    dependencies in order, runs its collective (or timeout) and ends, in the same events and
    order as the process, less the process's own generator and its end event (which nothing
    waits for). A p2p stream is tens of thousands of such tasks in a large pipeline step."""

    __slots__ = (
        "coll",
        "done",
        "env",
        "i",
        "intervals",
        "keys",
        "mem",
        "next_dep",
        "rc",
        "rdv",
        "start",
        "task",
    )

    def __init__(self, env, rc: RankClass, i: int, done, intervals, mem, rdv, keys):
        self.env, self.rc, self.i, self.done = env, rc, i, done
        self.intervals, self.mem, self.rdv, self.keys = intervals, mem, rdv, keys
        self.task = rc.schedule.tasks[i]
        self.coll = self.task.collective
        self.next_dep, self.start = 0, 0.0
        init = simpy.Event(env)
        init._ok, init._value = True, None
        init.callbacks = [self._resume]
        env.schedule(init, URGENT)

    def _resume(self, _event=None) -> None:
        deps, finished = self.task.deps, self.done.finished
        while self.next_dep < len(deps):
            d = deps[self.next_dep]
            self.next_dep += 1
            if not finished[d]:
                self._wait(self.done.event(d), self._resume)
                return
        env, task = self.env, self.task
        self.start = env.now
        if task.alloc_bytes:
            self.mem.append(MemoryEvent(self.start, task.alloc_bytes, self.i))
        coll = self.coll
        if coll is not None:
            scope = coll.peers if coll.peers is not None else (self.rc.stage,)
            self._wait(self.rdv.arrive(self.keys[self.i], scope, coll), self._end)
        elif task.duration_s > 0:
            self._wait(env.timeout(task.duration_s), self._end)
        else:
            self._end()

    @staticmethod
    def _wait(event: simpy.Event, then: Callable) -> None:
        """Call `then` when `event` is processed (at once if it was, as a process goes on)."""
        if event.callbacks is None:
            then(event)
        else:
            event.callbacks.append(then)

    def _end(self, _event=None) -> None:
        task, now = self.task, self.env.now
        if task.free_bytes:
            self.mem.append(MemoryEvent(now, -task.free_bytes, self.i))
        self.intervals.append(
            Interval(
                self.rc.name,
                self.i,
                task.name,
                task.stream,
                task.phase,
                self.start,
                now,
                self.coll is not None,
            )
        )
        self.done.succeed(self.i)


def run_stream(env, rc: RankClass, order, done, intervals, mem, rdv: Rendezvous, keys):
    tasks = rc.schedule.tasks
    finished = done.finished
    sms = rdv.sms[rc.name]
    for i in order:
        task = tasks[i]
        for d in task.deps:
            if not finished[d]:
                yield done.event(d)
        start = env.now
        if task.alloc_bytes:
            mem.append(MemoryEvent(start, task.alloc_bytes, i))
        coll = task.collective
        if coll is not None:
            scope = coll.peers if coll.peers is not None else (rc.stage,)
            yield rdv.arrive(keys[i], scope, coll)
        elif task.duration_s > 0:
            if task.stream == "compute" and sms.sm_count:
                # a compute task at the SMs' rate as it changes (module doc): each change interrupts it
                duration_s = left = task.duration_s
                while left > 1e-12 * duration_s:
                    rate, begin = sms.rate, env.now
                    sms.computing = env.active_process
                    try:
                        yield env.timeout(left / rate)
                        elapsed, left = env.now - begin, 0.0
                    except simpy.Interrupt:
                        elapsed = env.now - begin
                        left -= elapsed * rate
                    finally:
                        sms.computing = None
                    sms.added_s += elapsed * (1.0 - rate)
            else:
                yield env.timeout(task.duration_s)
        if task.free_bytes:
            mem.append(MemoryEvent(env.now, -task.free_bytes, i))
        intervals.append(
            Interval(
                rc.name, i, task.name, task.stream, task.phase, start, env.now, coll is not None
            )
        )
        done.succeed(i)


def run_compute(env, rc: RankClass, order, done, intervals, mem, rdv: Rendezvous, keys, waited):
    """The compute stream: as `run_stream`, but a run of compute tasks that nobody waits for
    (only the run's last one may be a dependency) and whose own dependencies have ended when
    the run starts is timed as one span: one simpy event for the run instead of one per task
    (data parallelism's accumulation steps are thousands of them). Each task in the span
    starts where the previous one ended and takes its duration at the SMs' rate, in the same
    floating-point operations as a timeout per task (the same times to the bit); a change of
    rate interrupts the span, as it would the task running then. Every task keeps its
    interval and memory events."""
    tasks = rc.schedule.tasks
    finished = done.finished
    sms = rdv.sms[rc.name]
    slowed = bool(sms.sm_count)
    at = _absolute_timer(env)
    n, p = len(order), 0
    while p < n:
        task = tasks[order[p]]
        if task.collective is not None:
            yield from run_stream(env, rc, (order[p],), done, intervals, mem, rdv, keys)
            p += 1
            continue
        for d in task.deps:
            if not finished[d]:
                yield done.event(d)
        q = p + 1
        while q < n and order[q - 1] not in waited:
            nxt = tasks[order[q]]
            if nxt.collective is not None or not all(finished[d] for d in nxt.deps):
                break
            q += 1
        yield from _span(env, rc, order[p:q], sms, slowed, at, intervals, mem, done)
        p = q


def _span(env, rc: RankClass, span, sms: SMs, slowed: bool, at, intervals, mem, done):
    """Runs the compute tasks `span` back to back (see `run_compute`)."""
    tasks = rc.schedule.tasks
    k = 0  # the task in progress
    start = begin = env.now  # its start, and the start of its stretch at the current rate
    left = tasks[span[0]].duration_s  # its work left, in seconds at the full rate
    _allocate(mem, tasks, span[0], start)
    while k < len(span):
        rate = sms.rate
        ends, t = [], begin
        for j in range(k, len(span)):
            d = tasks[span[j]].duration_s
            rest = left if j == k else d
            if rest > 1e-12 * d:
                t = t + rest / rate if slowed else t + rest
            ends.append(t)
        interrupted = False
        if ends[-1] > env.now:
            sms.computing = env.active_process if slowed else None
            try:
                yield at(ends[-1])
            except simpy.Interrupt:
                interrupted = True
            finally:
                sms.computing = None
        now, k0 = env.now, k
        while k < len(span):
            end = ends[k - k0]
            if interrupted and end > now:
                break
            if slowed:
                sms.added_s += (end - begin) * (1.0 - rate)
            _close(rc, span[k], tasks[span[k]], start, end, intervals, mem, done)
            k += 1
            if k < len(span):
                start = begin = end
                left = tasks[span[k]].duration_s
                _allocate(mem, tasks, span[k], start)
        if interrupted and k < len(span):
            # within task k: its stretch at the old rate ends here; the rest goes at the new one
            elapsed = now - begin
            left -= elapsed * rate
            sms.added_s += elapsed * (1.0 - rate)
            begin = now
            if not left > 1e-12 * tasks[span[k]].duration_s:
                _close(rc, span[k], tasks[span[k]], start, now, intervals, mem, done)
                k += 1
                if k < len(span):
                    start = now
                    left = tasks[span[k]].duration_s
                    _allocate(mem, tasks, span[k], start)


def _allocate(mem, tasks, i: int, start: float) -> None:
    if tasks[i].alloc_bytes:
        mem.append(MemoryEvent(start, tasks[i].alloc_bytes, i))


def _close(rc: RankClass, i: int, task, start: float, end: float, intervals, mem, done) -> None:
    if task.free_bytes:
        mem.append(MemoryEvent(end, -task.free_bytes, i))
    intervals.append(Interval(rc.name, i, task.name, task.stream, task.phase, start, end, False))
    done.succeed(i)


def _absolute_timer(env: simpy.Environment) -> Callable[[float], simpy.Event]:
    """An event at an absolute time, scheduled as a timeout is (normal priority, in issue
    order) but at the time given rather than now + a delay, which could differ in the last
    bit; `env.timeout` where simpy's queue is not the one this module knows."""
    queue, eid = getattr(env, "_queue", None), getattr(env, "_eid", None)
    if not isinstance(queue, list) or eid is None:
        return lambda t: env.timeout(t - env.now)

    def at(t: float) -> simpy.Event:
        ev = simpy.Event(env)
        ev._ok, ev._value = True, None
        heapq.heappush(queue, (t, NORMAL, next(eid), ev))
        return ev

    return at
