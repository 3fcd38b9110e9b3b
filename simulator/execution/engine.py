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

from simulator.execution.engine_streams import Aside, Done, run_compute, run_stream
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
class SMs:
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


class Rendezvous:
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
        self.sms = {c.name: SMs(c.sm_count) for c in classes}
        self.stage_sms: dict[int, list[SMs]] = {}
        for c in classes:
            self.stage_sms.setdefault(c.stage, []).append(self.sms[c.name])
        self.arrivals: dict[tuple, int] = {}
        self.done: dict[tuple, simpy.Event] = {}
        self.times: dict[tuple, tuple[float, float]] = {}
        # per scope: how many classes take part, and the SMs of those with SMs (made once)
        self._expected: dict[tuple, int] = {}
        self._with_sms: dict[tuple, list[SMs]] = {}

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
    rdv = Rendezvous(env, classes, start_transfer, ctas)
    records = []
    for rc in classes:
        tasks = rc.schedule.tasks
        done = Done(env, len(tasks))
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
                env.process(run_compute(env, rc, order, done, intervals, mem, rdv, keys, waited))
                continue
            if stream == "p2p":
                for i in order:
                    Aside(env, rc, i, done, intervals, mem, rdv, keys)
            elif order:
                env.process(run_stream(env, rc, order, done, intervals, mem, rdv, keys))
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


def _keys(rdv: Rendezvous, rc: RankClass) -> dict[int, tuple]:
    """Each collective task's rendezvous key, numbered in issue order (as the host issues them)."""
    seq: Counter = Counter()
    return {
        i: rdv.key(rc, t.collective, seq)
        for i, t in enumerate(rc.schedule.tasks)
        if t.collective is not None
    }
