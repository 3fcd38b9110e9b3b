"""The discrete-event engine: runs rank classes' schedules on simpy.

Each rank class (ranks that behave identically) runs its schedule once: one simpy process
per stream executes that stream's tasks in issue order, each task first waiting for the
tasks it depends on. A collective is a rendezvous: it starts on the network when every
rank class has reached it, and all of them wait for it to finish, so a slow class delays
the others there. Memory is allocated at a task's start and freed at its end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import simpy

from simulator.execution.schedule import STREAMS, Collective, Schedule


@dataclass(frozen=True)
class RankClass:
    name: str
    schedule: Schedule
    ranks: int  # how many ranks this class stands for


@dataclass(frozen=True)
class Interval:
    rank_class: str
    task: int
    name: str
    stream: str
    phase: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class MemoryEvent:
    time_s: float
    delta_bytes: int
    task: int


@dataclass(frozen=True)
class ClassTimeline:
    name: str
    intervals: tuple[Interval, ...]
    memory_events: tuple[MemoryEvent, ...]
    static_bytes: int

    def levels(self):
        """(time, bytes allocated after the event, event) in time order. At equal times frees
        are applied before allocations, as the allocator reuses freed blocks."""
        level = self.static_bytes
        for ev in sorted(self.memory_events, key=lambda e: (e.time_s, e.delta_bytes)):
            level += ev.delta_bytes
            yield ev.time_s, level, ev

    def peak(self, tasks) -> tuple[int, float, str]:
        """(peak bytes, time, name of the task whose allocation reached it)."""
        best = (self.static_bytes, 0.0, "start of step")
        for time_s, level, ev in self.levels():
            if level > best[0]:
                best = (level, time_s, tasks[ev.task].name)
        return best


@dataclass(frozen=True)
class EngineResult:
    step_time_s: float
    timelines: tuple[ClassTimeline, ...]
    collective_times: dict[int, tuple[float, float]]  # task index -> (start, end)


StartTransfer = Callable[[simpy.Environment, Collective], simpy.Event]


def run(classes: list[RankClass], start_transfer: StartTransfer) -> EngineResult:
    """Simulate one step of every rank class; the step ends when every stream is idle."""
    env = simpy.Environment()
    n_tasks = len(classes[0].schedule.tasks)
    assert all(len(c.schedule.tasks) == n_tasks for c in classes), "rank classes must share structure"
    arrivals: dict[int, int] = {}
    shared_done: dict[int, simpy.Event] = {}
    coll_times: dict[int, tuple[float, float]] = {}

    def rendezvous(k: int, coll: Collective):
        if k not in shared_done:
            shared_done[k] = env.event()
        arrivals[k] = arrivals.get(k, 0) + 1
        if arrivals[k] == len(classes):
            start = env.now
            transfer = start_transfer(env, coll)

            def finish(_event, k=k, start=start):
                coll_times[k] = (start, env.now)
                shared_done[k].succeed()

            transfer.callbacks.append(finish)
        return shared_done[k]

    records = []
    for rc in classes:
        tasks = rc.schedule.tasks
        done = [env.event() for _ in tasks]
        intervals: list[Interval] = []
        mem: list[MemoryEvent] = []
        records.append((rc, intervals, mem))
        for stream in STREAMS:
            order = [i for i, t in enumerate(tasks) if t.stream == stream]
            if order:
                env.process(_stream(env, rc, order, done, intervals, mem, rendezvous))
    env.run()
    timelines = tuple(ClassTimeline(rc.name, tuple(sorted(iv, key=lambda x: (x.start_s, x.task))),
                                    tuple(mem), rc.schedule.static_bytes) for rc, iv, mem in records)
    return EngineResult(env.now, timelines, coll_times)


def _stream(env, rc: RankClass, order, done, intervals, mem, rendezvous):
    tasks = rc.schedule.tasks
    for i in order:
        task = tasks[i]
        for d in task.deps:
            if not done[d].triggered:
                yield done[d]
        start = env.now
        if task.alloc_bytes:
            mem.append(MemoryEvent(start, task.alloc_bytes, i))
        if task.collective is not None:
            yield rendezvous(i, task.collective)
        elif task.duration_s > 0:
            yield env.timeout(task.duration_s)
        if task.free_bytes:
            mem.append(MemoryEvent(env.now, -task.free_bytes, i))
        intervals.append(Interval(rc.name, i, task.name, task.stream, task.phase, start, env.now))
        done[i].succeed()
