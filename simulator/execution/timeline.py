"""What the engine (execution/engine.py) takes and gives: the rank classes it runs, and each
one's timeline of task intervals and memory events."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.execution.schedule import Schedule


@dataclass(frozen=True)
class RankClass:
    name: str
    schedule: Schedule
    ranks: int  # how many ranks this class stands for
    stage: int = 0  # the pipeline stage of its ranks
    sm_count: int = 0  # its GPUs' SMs (0: compute is not slowed by collectives' CTAs)


@dataclass(frozen=True)
class Interval:
    rank_class: str
    task: int
    name: str
    stream: str
    phase: str
    start_s: float
    end_s: float
    collective: bool = False


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
    collective_times: dict[tuple, tuple[float, float]]  # rendezvous key -> (start, end)
    # each class's compute-stream time added by collectives' CTAs (see the module doc)
    interference_s: tuple[float, ...] = ()
