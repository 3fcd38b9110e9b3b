"""One stage's schedule: its pipeline passes in order, each pass a walk over the units of a model
chunk on the compute stream, with the point-to-point transfers between stages, the
tensor-parallel collectives of every sub-layer, and the data-parallel strategy's hooks.

Tensor parallelism (Shoeybi et al. 2019; Korthikanti et al. 2022, Sec 4.2.2): each sub-layer
(attention, MLP) ends with an all-reduce of the b x s x h activations in forward (Megatron's
g operator) and its input gradient is all-reduced in backward (the f operator); with
sequence parallelism a sub-layer starts with an all-gather and ends with a reduce-scatter, in
both directions. They block the compute stream, as in Megatron without comm overlap, so they
are folded into the unit's compute task at their standalone time inside the NVLink domain
(Task.inline), which keeps a 3D step at a few tasks per layer. Full recomputation re-runs the
forward collectives.

Pipeline transfers (Narayanan et al. 2021, Sec 3.2): after a chunk's forward its output
(b x s x h, or b x s x h / tp with the scatter/gather optimization, Sec 4.1) is sent to the
next chunk's stage; after its backward the input gradient goes back. A send runs
asynchronously (Megatron's batched isend); the receiver's compute waits for its receive.

A word embedding tied to the output layer lives on the first and the last stage (the memory
model counts both copies); after the last backward their gradients are all-reduced between
the two (Megatron-LM finalize_model_grads.py _allreduce_word_embedding_grads over the
embedding group; DeepSpeed's pipeline engine ReduceTiedGrads, before its data-parallel
reduction), here as the two stages exchanging the gradient (a 2-rank all-reduce sends S each
way), which the data-parallel reduction and the optimizer step then wait for. S is in the
strategy's reduced gradient datatype (Megatron's fp32 main-grad buffer under bf16).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

from simulator.execution.pipeline import Pass, merged, stage_of_chunk
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.block_run import Steps, alternate, block_steps, drain
from simulator.execution.strategies.common import ChunkWork, Context, UnitWork
from simulator.execution.strategies.unit_template import UnitTemplate, pattern, record, replay
from simulator.model.architecture import word_embedding_params


class Session(Protocol):
    """A data-parallel strategy's state while one stage's schedule is built."""

    def start_pass(self, p: Pass, chunk: ChunkWork) -> tuple: ...
    def before_fwd(self, p: Pass, i: int, unit: UnitWork) -> tuple: ...
    def after_fwd(self, p: Pass, i: int, unit: UnitWork, tid: int) -> None: ...
    def before_bwd(self, p: Pass, i: int, unit: UnitWork) -> tuple: ...
    def after_bwd(self, p: Pass, i: int, unit: UnitWork, tid: int) -> None: ...
    def end_pass(self, p: Pass, chunk: ChunkWork, last: int | None) -> None: ...
    def finish(self, last: int | None) -> None: ...


class StageSchedule:
    """Builds one stage's tasks from its pass order and a data-parallel session."""

    def __init__(self, ctx: Context, b: ScheduleBuilder, grad_bytes: int | None = None):
        self.ctx, self.b = ctx, b
        self.grad_bytes = (
            ctx.gb if grad_bytes is None else grad_bytes
        )  # per gradient element reduced
        par = ctx.scenario.training.parallel
        self.tp, self.sp, self.pp = par.tp, par.sequence_parallel, par.pp
        self.tp_comm_overlap = par.tp_comm_overlap  # execution/tp_overlap.py
        self.chunks_total = par.pp * par.pipeline.virtual_stages
        self.tp_group = ctx.mesh.group("tp")
        self.pp_group = ctx.mesh.group("pp")
        # each layer collective's Collective, made once (every micro-batch issues the same ones)
        self._collectives: dict = {}
        self._templates: dict[tuple, UnitTemplate] = {}  # a unit's tasks (unit_template.py)
        self._replays = len(ctx.order) > 2  # more than one micro-batch's forward and backward

    def run(self, session: Session) -> int | None:
        """Issue every pass of this stage; the last task (None where the stage issued none).
        Under combined 1F1B (training.moe.overlap 1f1b) a steady forward and the backward
        after it are issued as one pass, in turns at their expert all-to-alls (block_run.py)."""
        last: int | None = None
        order = self.ctx.order
        combined = self.ctx.scenario.training.moe.overlap == "1f1b"
        i = 0
        while i < len(order):
            p = order[i]
            q = order[i + 1] if i + 1 < len(order) else None
            if combined and merged(p, q):
                assert q is not None
                _, last = alternate(self._pass(p, session, True), self._pass(q, session, True))
                i += 2
            else:
                last = drain(self._pass(p, session, False))
                i += 1
        last = self._tied_embedding_exchange(last)
        session.finish(last)
        return last

    def _pass(self, p: Pass, session: Session, hide: bool) -> Generator[None, None, int | None]:
        chunk = self.ctx.chunks[p.chunk]
        deps = session.start_pass(p, chunk)
        steps = self.forward if p.forward else self.backward
        last = yield from steps(p, chunk, session, deps, hide)
        session.end_pass(p, chunk, last)
        return last

    def _tied_embedding_exchange(self, last: int | None) -> int | None:
        """The tied word embedding's gradient, sent to the other end and received from it (first
        and last stage only); returns the receive, or `last` where there is nothing to do."""
        s, stage = self.ctx.scenario, self.ctx.stage
        arch = s.model.arch
        if (
            self.pp == 1
            or arch is None
            or not (arch.lm_head and arch.tied_embeddings)
            or stage not in (0, self.pp - 1)
        ):
            return last
        size = word_embedding_params(arch, self.tp) * self.grad_bytes
        other = self.pp - 1 - stage
        for peers, stream in (((stage, other), "p2p"), ((other, stage), "compute")):
            coll = Collective(
                op="send",
                group=self.pp_group,
                size_bytes=size,
                peers=peers,
                tag=("embedding grads",),
            )
            task = self.b.add(
                f"{'send' if stream == 'p2p' else 'recv'} tied embedding grads "
                f"{peers[0]}->{peers[1]}",
                stream,
                "p2p",
                deps=(last,),
                collective=coll,
            )
        return task

    # ---- tensor-parallel collectives and compute

    def _unit_task(
        self,
        tag: str,
        unit: UnitWork,
        forward: bool,
        deps,
        alloc: int,
        free: int,
        recompute: bool = False,
        hide: bool = False,
    ) -> Steps:
        """The unit's tasks in one direction (a generator: it yields where a combined pass may
        switch halves and returns the last task). Every unit's tasks, the embedding's and the
        head's as a block's, come from its layer description (block_run.py)."""
        phase = "recompute" if recompute else ("forward" if forward else "backward")
        fwd = forward or recompute  # full recompute re-runs the forward
        name = f"{tag} {phase} {unit.name}"
        if hide or not self._replays:
            # a combined pass switches halves inside the unit; one micro-batch issues each once
            return (yield from block_steps(self, name, phase, unit, fwd, deps, alloc, free, hide))
        # the same tasks for every micro-batch: issued once, then replayed (unit_template.py)
        deps = tuple(deps)
        key = (id(unit), fwd, phase, alloc, free, pattern(deps))
        tpl = self._templates.get(key)
        if tpl is not None:
            return replay(self.b, tpl, name, deps)
        start = len(self.b.tasks)
        last = drain(block_steps(self, name, phase, unit, fwd, deps, alloc, free))
        assert last is not None
        self._templates[key] = record(self.b, start, name, deps, last)
        return last

    def _compute(self, name, phase, deps, duration, inline, alloc=0, free=0, shares=()) -> int:
        """A compute task with the tensor-parallel collectives `inline` folded in, each at its
        standalone time x its share (1 unless an overlap hides part of it: block_run.py)."""
        comm_s = sum(
            self.ctx.inline_s(c) * (shares[i] if shares else 1.0) for i, c in enumerate(inline)
        )
        return self.b.add(
            name,
            "compute",
            phase,
            deps=deps,
            duration_s=duration + comm_s,
            alloc_bytes=alloc,
            free_bytes=free,
            inline=tuple(inline),
            inline_comm_s=comm_s,
        )

    def _collective(self, c) -> Collective:
        """A layer's collective on its group; a ring exchange of `steps` blocks costs what a
        ring all-gather of steps + 1 blocks does (each rank sends steps blocks to its next)."""
        made = self._collectives.get(c)
        if made is None:
            if c.op == "ring_exchange":
                made = Collective(
                    op="all_gather",
                    group=self.ctx.groups[c.dim],
                    size_bytes=c.size_bytes * (c.steps + 1),
                )
            else:
                made = Collective(
                    op=c.op,
                    group=self.ctx.groups[c.dim],
                    size_bytes=c.size_bytes,
                    algorithm=c.algorithm,
                )
            self._collectives[c] = made
        return made

    # ---- point-to-point transfers between stages

    def _p2p(
        self, p: Pass, chunk: int, to_chunk: int, receive: bool, deps=(), aside: bool = False
    ) -> int:
        a, b = stage_of_chunk(chunk, self.pp), stage_of_chunk(to_chunk, self.pp)
        size = self.ctx.tp_bytes // self.tp if self.tp > 1 else self.ctx.tp_bytes  # scatter/gather
        coll = Collective(
            op="send",
            group=self.pp_group,
            size_bytes=size,
            peers=(a, b),
            tag=(p.kind, p.micro_batch, chunk, to_chunk),
        )
        name = (
            f"mb{p.micro_batch} {'recv' if receive else 'send'} {p.kind} chunk {chunk}->{to_chunk}"
        )
        # A receive waits on the compute stream, unless its pass shares the stream with another
        # (combined 1F1B), where it waits on its own and only its pass's kernels wait for it.
        stream = "compute" if receive and not aside else "p2p"
        return self.b.add(
            name, stream, "p2p", deps=deps, collective=coll, receive=receive and aside
        )

    # ---- passes

    def forward(
        self, p: Pass, c: ChunkWork, s: Session, deps, hide: bool = False
    ) -> Generator[None, None, int | None]:
        """The pass's tasks; the last one, or None for a chunk without units (no layers)."""
        tag = f"mb{p.micro_batch}"
        if p.chunk > 0:
            deps = (self._p2p(p, p.chunk - 1, p.chunk, receive=True, deps=deps, aside=hide),)
        last: int | None = None
        if c.embedding:
            last = yield from self._unit_task(
                tag, c.embedding, True, deps, c.embedding.act_bytes, 0
            )
            deps = ()
        for i, unit in enumerate(c.blocks):
            before = (*deps, *s.before_fwd(p, i, unit), last if hide else None)
            last = yield from self._unit_task(tag, unit, True, before, unit.act_bytes, 0, hide=hide)
            s.after_fwd(p, i, unit, last)
            deps = ()
        if c.head:
            deps = (*deps, last) if hide else deps
            last = yield from self._unit_task(tag, c.head, True, deps, c.head.act_bytes, 0)
        if p.chunk < self.chunks_total - 1:
            self._p2p(p, p.chunk, p.chunk + 1, receive=False, deps=(last,))
        return last

    def backward(
        self, p: Pass, c: ChunkWork, s: Session, deps, hide: bool = False
    ) -> Generator[None, None, int | None]:
        """The pass's tasks; the last one, or None for a chunk without units (no layers)."""
        tag = f"mb{p.micro_batch}"
        last: int | None = None
        if p.chunk < self.chunks_total - 1:
            deps = (self._p2p(p, p.chunk + 1, p.chunk, receive=True, deps=deps, aside=hide),)
        if c.head:
            deps = (*deps, *s.before_bwd(p, len(c.blocks), c.head))
            last = yield from self._unit_task(tag, c.head, False, deps, 0, c.head.act_bytes)
            s.after_bwd(p, len(c.blocks), c.head, last)
            deps = ()
        for i in range(len(c.blocks) - 1, -1, -1):
            unit = c.blocks[i]
            deps = (*deps, *s.before_bwd(p, i, unit), last if hide else None)
            if unit.recompute_s:
                # Full recomputation re-runs the forward with its collectives.
                if self.ctx.scenario.training.activation_checkpointing == "full":
                    last = yield from self._unit_task(
                        tag, unit, False, deps, unit.working_bytes, 0, recompute=True, hide=hide
                    )
                else:
                    last = self.b.add(
                        f"{tag} recompute {unit.name}",
                        "compute",
                        "recompute",
                        deps=deps,
                        duration_s=unit.recompute_s,
                        alloc_bytes=unit.working_bytes,
                    )
                deps = (last,) if hide else ()
            free = unit.act_bytes + unit.working_bytes
            last = yield from self._unit_task(tag, unit, False, deps, 0, free, hide=hide)
            s.after_bwd(p, i, unit, last)
            deps = ()
        if c.embedding:
            deps = (*deps, last) if hide else deps
            last = yield from self._unit_task(
                tag, c.embedding, False, deps, 0, c.embedding.act_bytes
            )
        if p.chunk > 0:
            self._p2p(p, p.chunk, p.chunk - 1, receive=False, deps=(last,))
        return last
