"""A per-rank schedule: tasks on streams, their dependencies and memory allocations.

Tasks are listed in the order the host issues them; each stream runs its tasks in that
order (as CUDA streams do), and a task also waits for the tasks it depends on (CUDA
events). Memory is allocated when a task starts and freed when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from simulator.spec.mesh import Group

# p2p tasks (pipeline sends) run asynchronously, each on its own (Megatron's batched isend);
# every other stream runs its tasks in issue order, as a CUDA stream does. "host" holds
# zero-time bookkeeping of the host thread (DeepSpeed ZeRO-3 allocating a fetch's buffers when
# its hook runs).
STREAMS = ("compute", "comm", "comm_rs", "p2p", "pcie", "cpu", "host")


@dataclass(frozen=True, kw_only=True)
class Collective:
    """One collective call on one instance of a process group (the instance this rank is in).
    size_bytes follows nccl-tests: the full buffer (all-gather's output, reduce-scatter's input)."""

    op: str  # all_reduce | all_gather | reduce_scatter | send
    group: Group
    size_bytes: int
    # Between two pipeline stages only: the stages (their positions in each instance of the pp
    # group) of a send (from, to) or of the tied-embedding all-reduce (first, last).
    peers: tuple[int, int] | None = None
    tag: tuple | None = None  # what a send is (its two ends rendezvous on it)
    algorithm: str = ""  # the algorithm that runs it ("": the step's; model/ops_common.Comm)


@dataclass(frozen=True, kw_only=True)
class Task:
    name: str
    stream: str
    phase: str  # forward | backward | recompute | optimizer | comm | offload
    duration_s: float = 0.0  # compute, cpu and pcie tasks
    collective: Collective | None = None
    deps: tuple[int, ...] = ()
    alloc_bytes: int = 0  # allocated when the task starts
    free_bytes: int = 0  # freed when the task ends
    # Tensor-parallel collectives folded into a compute task: they run on the compute stream
    # between its kernels, inside one NVLink domain, at their standalone time (part of duration_s).
    inline: tuple[Collective, ...] = ()
    inline_comm_s: float = 0.0
    # A pipeline receive issued off the compute stream (its pass shares the stream with another
    # under combined 1F1B): it is the send's other end, not a second transfer.
    receive: bool = False


@dataclass
class ScheduleBuilder:
    tasks: list[Task] = field(default_factory=list)
    optimizer_params: int | None = None  # what the optimizer step updates (strategies/common.py)

    def add(self, name: str, stream: str, phase: str, deps=(), **kw) -> int:
        assert stream in STREAMS, stream
        deps = tuple(sorted({d for d in deps if d is not None})) if deps else ()
        self.tasks.append(Task(name=name, stream=stream, phase=phase, deps=deps, **kw))
        return len(self.tasks) - 1

    def adjust(self, task_id: int, alloc: int = 0, free: int = 0) -> None:
        """Add memory to a task already issued (a strategy's buffers around a compute task)."""
        t = self.tasks[task_id]
        self.tasks[task_id] = replace(
            t, alloc_bytes=t.alloc_bytes + alloc, free_bytes=t.free_bytes + free
        )

    def build(self, static_bytes: int) -> Schedule:
        return Schedule(
            tasks=tuple(self.tasks),
            static_bytes=static_bytes,
            optimizer_params=self.optimizer_params,
        )


@dataclass(frozen=True, kw_only=True)
class Schedule:
    tasks: tuple[Task, ...]
    static_bytes: int  # allocated for the whole step (model states, fixed buffers, overhead)
    # Parameters this rank's optimizer step updates (None: the schedule has no optimizer step).
    optimizer_params: int | None = None
