"""A per-rank schedule: tasks on streams, their dependencies and memory allocations.

Tasks are listed in the order the host issues them; each stream runs its tasks in that
order (as CUDA streams do), and a task also waits for the tasks it depends on (CUDA
events). Memory is allocated when a task starts and freed when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STREAMS = ("compute", "comm", "comm_rs", "pcie", "cpu")


@dataclass(frozen=True)
class Collective:
    """One collective call. size_bytes follows nccl-tests: the full buffer (all-gather's
    output, reduce-scatter's input)."""

    op: str      # all_reduce | all_gather | reduce_scatter
    group: str   # dp (all ranks) | shard (an HSDP shard group) | replica (across shard groups)
    size_bytes: int


@dataclass(frozen=True)
class Task:
    name: str
    stream: str
    phase: str                       # forward | backward | recompute | optimizer | comm | offload
    duration_s: float = 0.0          # compute, cpu and pcie tasks
    collective: Collective | None = None
    deps: tuple[int, ...] = ()
    alloc_bytes: int = 0             # allocated when the task starts
    free_bytes: int = 0              # freed when the task ends
    hardware_flops: float = 0.0


@dataclass
class ScheduleBuilder:
    tasks: list[Task] = field(default_factory=list)

    def add(self, name: str, stream: str, phase: str, deps=(), **kw) -> int:
        assert stream in STREAMS, stream
        deps = tuple(sorted({d for d in deps if d is not None}))
        self.tasks.append(Task(name, stream, phase, deps=deps, **kw))
        return len(self.tasks) - 1

    def build(self, static_bytes: int) -> "Schedule":
        return Schedule(tuple(self.tasks), static_bytes)


@dataclass(frozen=True)
class Schedule:
    tasks: tuple[Task, ...]
    static_bytes: int          # allocated for the whole step (model states, fixed buffers, overhead)

