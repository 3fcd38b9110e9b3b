"""The discrete-event engine (MPMD): runs every rank class's own schedule on simpy.

Each rank class (ranks that behave identically: one pipeline stage of a homogeneous cluster,
or its stragglers) runs its schedule once: one simpy process per stream executes that
stream's tasks in issue order, each task first waiting for the tasks it depends on; a p2p
task (a pipeline send) runs as soon as its dependencies allow. Collectives rendezvous by
identity: the classes whose stage takes part (their own stage, or the two stages of a send or
of the tied-embedding all-reduce), the group, and the sequence number of that group's
collectives on the class (or a send's tag). A collective starts on the network when every
participating class has reached it, and all of them wait for it to finish, so a slow class
delays the others there. Memory is allocated at a task's start and freed at its end.

Interference: a collective's NCCL kernel holds one thread block (CTA) per channel on an SM for
as long as the collective runs, so the compute kernels running beside it have the rest of the
SMs. While collectives with c CTAs in all are in flight on a rank class of s SMs, its compute
tasks progress at (s - c) / s of their standalone rate (rates change when a collective starts
or ends; the compute process is interrupted and goes on at the new rate). Lee et al. 2025
("Characterizing Compute-Communication Overlap in GPU-Accelerated Distributed Deep Learning",
arXiv 2507.03114) measure overlapped compute 18.9% slower on average on A100/H100 (up to 40%).
Contention for HBM bandwidth is not modelled.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import simpy
from simpy.events import NORMAL

from simulator.execution.schedule import STREAMS, Collective
from simulator.execution.timeline import (
    ClassTimeline,
    EngineResult,
    Interval,
    MemoryEvent,
    RankClass,
)

StartTransfer = Callable[[simpy.Environment, Collective, tuple], simpy.Event]
CTAs = Callable[[Collective, tuple], int]  # a collective's NCCL CTAs per GPU


@dataclass(eq=False)
class _SMs:
    """One rank class's SMs and the CTAs its collectives in flight hold; interrupts the compute
    stream when they change, so it goes on at the new rate."""

    sm_count: int
    ctas: int = 0
    computing: simpy.Process | None = None  # the compute stream, while in a compute task
    added_s: float = 0.0  # compute-stream time added by the CTAs

    @property
    def rate(self) -> float:
        if not self.sm_count:
            return 1.0
        return max(self.sm_count - self.ctas, 1) / self.sm_count

    def hold(self, ctas: int) -> None:
        self.ctas += ctas
        if self.computing is not None and self.computing.is_alive:
            self.computing.interrupt()


class _Rendezvous:
    """Collectives matched across rank classes by identity."""

    def __init__(
        self,
        env: simpy.Environment,
        classes: list[RankClass],
        start_transfer: StartTransfer,
        ctas: CTAs | None = None,
    ):
        self.env, self.start_transfer, self.ctas = env, start_transfer, ctas
        self.per_stage = Counter(c.stage for c in classes)
        self.sms = {c.name: _SMs(c.sm_count) for c in classes}
        self.stage_sms: dict[int, list[_SMs]] = {}
        for c in classes:
            self.stage_sms.setdefault(c.stage, []).append(self.sms[c.name])
        self.arrivals: dict[tuple, int] = {}
        self.done: dict[tuple, simpy.Event] = {}
        self.times: dict[tuple, tuple[float, float]] = {}
        # per scope: how many classes take part, and the SMs of those with SMs (made once)
        self._expected: dict[tuple, int] = {}
        self._with_sms: dict[tuple, list[_SMs]] = {}

    def key(self, rc: RankClass, coll: Collective, seq: Counter) -> tuple:
        scope = coll.peers if coll.peers is not None else (rc.stage,)
        if coll.tag is not None:
            return (scope, coll.group.name, coll.op, coll.tag)
        base = (scope, coll.group.name, coll.op)
        seq[base] += 1
        return (*base, seq[base])

    def arrive(self, key: tuple, scope: tuple, coll: Collective) -> simpy.Event:
        done = self.done.get(key)
        if done is None:
            done = self.done[key] = self.env.event()
        arrived = self.arrivals[key] = self.arrivals.get(key, 0) + 1
        expected = self._expected.get(scope)
        if expected is None:
            expected = self._expected[scope] = sum(self.per_stage[s] for s in set(scope))
            self._with_sms[scope] = [
                sms for s in set(scope) for sms in self.stage_sms[s] if sms.sm_count
            ]
        if arrived == expected:
            start = self.env.now
            transfer = self.start_transfer(self.env, coll, scope)
            ctas = self.ctas(coll, scope) if self.ctas is not None else 0
            held = self._with_sms[scope] if ctas else []
            for sms in held:
                sms.hold(ctas)

            def finish(_event, key=key, start=start):
                self.times[key] = (start, self.env.now)
                for sms in held:
                    sms.hold(-ctas)
                done.succeed()

            transfer.callbacks.append(finish)
        return done


def run(
    classes: list[RankClass], start_transfer: StartTransfer, ctas: CTAs | None = None
) -> EngineResult:
    """Simulate one step of every rank class; the step ends when every stream is idle.
    `ctas`: each collective's NCCL CTAs per GPU (None: collectives do not slow compute)."""
    env = simpy.Environment()
    rdv = _Rendezvous(env, classes, start_transfer, ctas)
    records = []
    for rc in classes:
        tasks = rc.schedule.tasks
        done = _Done(env, len(tasks))
        intervals: list[Interval] = []
        mem: list[MemoryEvent] = []
        records.append((rc, intervals, mem))
        keys = _keys(rdv, rc)
        by_stream: dict[str, list[int]] = {stream: [] for stream in STREAMS}
        for i, t in enumerate(tasks):
            by_stream[t.stream].append(i)
        waited = {d for t in tasks for d in t.deps}
        for stream in STREAMS:
            order = by_stream[stream]
            if stream == "compute" and order:
                env.process(_compute(env, rc, order, done, intervals, mem, rdv, keys, waited))
                continue
            groups = [[i] for i in order] if stream == "p2p" else ([order] if order else [])
            for group in groups:
                env.process(_stream(env, rc, group, done, intervals, mem, rdv, keys))
    _run_until_idle(env)
    timelines = tuple(
        ClassTimeline(
            rc.name,
            tuple(sorted(iv, key=lambda x: (x.start_s, x.task))),
            tuple(mem),
            rc.schedule.static_bytes,
        )
        for rc, iv, mem in records
    )
    added = tuple(rdv.sms[rc.name].added_s for rc in classes)
    return EngineResult(env.now, timelines, rdv.times, added)


class _Done:
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


def _run_until_idle(env: simpy.Environment) -> None:
    """`env.run()` without a bound: the events in simpy's order (time, priority, then the order
    they were scheduled), each one's callbacks called in turn, a failed event not defused
    raised. The loop of `Environment.step`, inlined (a step has hundreds of thousands of
    events); simpy's own `run` where its queue is not the one this loop knows."""
    queue = getattr(env, "_queue", None)
    if not isinstance(queue, list) or not hasattr(env, "_now"):
        env.run()
        return
    pop = heapq.heappop
    while queue:
        env._now, _, _, event = pop(queue)
        callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
        for callback in callbacks:  # type: ignore[union-attr]
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc


def _keys(rdv: _Rendezvous, rc: RankClass) -> dict[int, tuple]:
    """Each collective task's rendezvous key, numbered in issue order (as the host issues them)."""
    seq: Counter = Counter()
    return {
        i: rdv.key(rc, t.collective, seq)
        for i, t in enumerate(rc.schedule.tasks)
        if t.collective is not None
    }


def _stream(env, rc: RankClass, order, done, intervals, mem, rdv: _Rendezvous, keys):
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


def _compute(env, rc: RankClass, order, done, intervals, mem, rdv: _Rendezvous, keys, waited):
    """The compute stream: as `_stream`, but a run of compute tasks that nobody waits for
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
            yield from _stream(env, rc, (order[p],), done, intervals, mem, rdv, keys)
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


def _span(env, rc: RankClass, span, sms: _SMs, slowed: bool, at, intervals, mem, done):
    """Runs the compute tasks `span` back to back (see `_compute`)."""
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
