"""A block's tasks in one direction, from its layer description (model/ops.py Segment): its
kernels gathered into compute tasks, the collectives each parallel dimension inserts between
them, and the points where a combined pass may switch to its other half.

- Tensor-parallel (and expert-tensor-parallel) collectives run inside one NVLink domain between
  kernels: they are folded into the compute task at their standalone time (Task.inline); under
  training.parallelism.tp_comm_overlap at what the overlap with the GEMMs beside them leaves
  exposed (execution/tp_overlap.py).
- The others (expert dispatch and combine, context-parallel exchanges) end the compute task and
  run as tasks of their own on the compute stream, which waits for them.
- An overlapped one (ring attention's K/V exchange) runs beside its sub-layer's kernels on its
  own stream; the next kernels wait for it.
- Hidden (`hide`, combined 1F1B: pipeline.COMBINED_EXTRA_WARMUP): an expert all-to-all runs on
  its own stream and the block's generator yields, so that the other micro-batch's kernels are
  issued on the compute stream before this one's next kernels, which wait for the all-to-all
  (Megatron-Core's overlap_moe_expert_parallel_comm; DeepSeek-V3's DualPipe, Sec 3.2.1).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

from simulator.execution.schedule import Collective
from simulator.execution.tp_overlap import exposed_s, points, tensor_parallel

if TYPE_CHECKING:
    from simulator.execution.strategies.common import UnitWork
    from simulator.execution.strategies.passes import StageSchedule

# A generator of a unit's (or a pass's) tasks: it yields where a combined pass may switch to
# its other half and returns its last task.
Steps = Generator[None, None, int]
# The groups whose collectives may hide behind the other half of a combined pass.
HIDDEN_GROUPS = ("ep", "ep_node", "ep_local")


def drain(steps: Generator[None, None, int | None]) -> int | None:
    """Run a generator of tasks to its end: its last task."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def alternate(
    first: Generator[None, None, int | None], second: Generator[None, None, int | None]
) -> tuple[int | None, int | None]:
    """Two generators of tasks issued in turns, each up to its next switch point."""
    out: list[int | None] = [None, None]
    live = {0: first, 1: second}
    while live:
        for k in list(live):
            try:
                next(live[k])
            except StopIteration as done:
                out[k] = done.value
                del live[k]
    return out[0], out[1]


def block_steps(
    o: StageSchedule,
    name: str,
    phase: str,
    unit: UnitWork,
    fwd: bool,
    deps,
    alloc: int,
    free: int,
    hide: bool = False,
) -> Steps:
    """The block's tasks in one direction (`fwd`: its forward kernels, also for recompute)."""
    run = BlockRun(o, name, phase, deps, alloc, hide)
    for g in unit.segments if fwd else reversed(unit.segments):
        before, after = (g.before, g.after) if fwd else (g.bwd_before, g.bwd_after)
        ring = [c for c in before + after if c.overlapped]
        near = points(g.overlap, fwd) if o.tp_comm_overlap and g.overlap else None
        for together in _together(before):
            if near is not None and tensor_parallel(together):
                run.overlapped([o._collective(c) for c in together], *near[0])
                continue
            if run.comm(*(o._collective(c) for c in together)):
                yield
        if ring:
            run.flush()
            for c in ring:
                run.beside(o._collective(c))
        run.duration += g.fwd_s if fwd else g.bwd_s
        if ring:
            run.flush(wait_aside=False)  # the kernels run beside the collectives
            run.join()
        for together in _together(after):
            if near is not None and tensor_parallel(together):
                run.overlapped([o._collective(c) for c in together], *near[1])
                continue
            if run.comm(*(o._collective(c) for c in together)):
                yield
    return run.close(free)


def _together(comms) -> list[list]:
    """The segment's collectives between kernels, those that run at the same time grouped
    (Comm.with_previous); overlapped ones (beside the kernels) left out."""
    out: list[list] = []
    for c in comms:
        if c.overlapped:
            continue
        if c.with_previous and out:
            out[-1].append(c)
        else:
            out.append([c])
    return out


class BlockRun:
    """A block's tasks being issued: kernels accumulate into one compute task (with the
    collectives folded into it) until a collective of its own ends it."""

    def __init__(self, owner: StageSchedule, name: str, phase: str, deps, alloc: int, hide: bool):
        self.o, self.name, self.phase, self.hide = owner, name, phase, hide
        self.deps, self.alloc = tuple(deps), alloc
        self.duration = 0.0
        self.inline: list[Collective] = []
        self.shares: list[float] = []  # of each inline collective's standalone time, exposed
        self.last: int | None = None
        self.parts = 0
        self.aside: list[int] = []  # collectives off the compute stream the next kernels wait for

    def comm(self, *colls: Collective) -> bool:
        """Issue collectives that run at the same time; True where they are hidden (the caller
        may switch passes). One alone runs on the compute stream; several run each on its own
        and the compute stream waits for them all."""
        rest = []
        for coll in colls:
            if coll.group.size == 1:
                continue
            if coll.group.dims in (("tp",), ("etp",)):
                self.inline.append(coll)  # inside one NVLink domain, between kernels
                self.shares.append(1.0)
            else:
                rest.append(coll)
        if not rest:
            return False
        self.flush()
        hidden = self.hide and all(c.group.name in HIDDEN_GROUPS for c in rest)
        aside = hidden or len(rest) > 1
        deps = self._deps()
        tids = [
            self.o.b.add(
                f"{self.name} {c.op} {c.group.name}" + (" (hidden)" if hidden else ""),
                "p2p" if aside else "compute",
                "comm",
                deps=deps,
                collective=c,
            )
            for c in rest
        ]
        if hidden:
            self.aside += tids
        elif aside:
            self.last = self.o.b.add(f"{self.name} wait", "compute", self.phase, deps=tids)
        else:
            self.last = tids[0]
        return hidden

    def overlapped(self, colls: list[Collective], method: str, gemm_s: float) -> None:
        """Tensor-parallel collectives of one point, overlapped with the GEMMs beside them
        (gemm_s) by `method`: folded in at what the overlap leaves exposed, shared by their
        standalone times (execution/tp_overlap.py)."""
        colls = [c for c in colls if c.group.size > 1]
        comm_s = sum(self.o.ctx.inline_s(c) for c in colls)
        if not colls or comm_s <= 0:
            return
        exposed = exposed_s(method, comm_s, gemm_s, self.o.tp, self.o.ctx.cm.gpu.sm_count)
        self.inline += colls
        self.shares += [exposed / comm_s] * len(colls)

    def beside(self, coll: Collective) -> None:
        if coll.group.size > 1:
            self.aside.append(
                self.o.b.add(
                    f"{self.name} {coll.op} {coll.group.name} (overlapped)",
                    "p2p",
                    "comm",
                    deps=self._deps(keep=True),
                    collective=coll,
                )
            )

    def join(self) -> None:
        """The overlapped collectives end before the next kernels start."""
        if self.aside:
            self.last = self.o.b.add(f"{self.name} wait", "compute", self.phase, deps=self._deps())

    def _deps(self, keep: bool = False, wait_aside: bool = True) -> tuple:
        """What the next task waits for: the block's inputs, its last task and (`wait_aside`)
        the collectives off the compute stream; those it waits for are taken (`keep`: not)."""
        deps = (*self.deps, self.last, *(self.aside if wait_aside else ()))
        if not keep:
            self.deps = ()
            if wait_aside:
                self.aside = []
        return deps

    def _emit(self, free: int = 0, wait_aside: bool = True) -> None:
        """The kernels gathered so far (and the folded collectives) as one compute task."""
        self.parts += 1
        self.last = self.o._compute(
            self.name if self.parts == 1 else f"{self.name} ({self.parts})",
            self.phase,
            self._deps(wait_aside=wait_aside),
            self.duration,
            self.inline,
            alloc=self.alloc,
            free=free,
            shares=self.shares,
        )
        self.alloc, self.duration, self.inline, self.shares = 0, 0.0, [], []

    def flush(self, wait_aside: bool = True) -> None:
        if self.duration or self.inline:
            self._emit(wait_aside=wait_aside)

    def close(self, free: int) -> int:
        """The last task; it frees `free` when it ends."""
        if self.duration or self.inline or self.last is None or self.aside:
            self._emit(free)
        else:
            self.o.b.adjust(self.last, alloc=self.alloc, free=free)
        assert self.last is not None
        return self.last
