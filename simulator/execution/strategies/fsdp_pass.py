"""One FSDP pass (a micro-batch through a chunk, forward or backward): the all-gathers before its
blocks and the reduce-scatters after them, as execution/strategies/fsdp.py describes (the rate
limiter, backward prefetch, SHARD_GRAD_OP, no_sync)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.model.ops import Op

if TYPE_CHECKING:
    from simulator.execution.pipeline import Pass
    from simulator.execution.strategies.common import ChunkWork, Context
    from simulator.execution.strategies.fsdp import FsdpSession


def copy_s(ctx: Context, nbytes: int) -> float:
    """A memory-bound copy kernel that reads and writes `nbytes` in all."""
    return ctx.cm.op_time_s(Op("copy", "memory", 0.0, int(nbytes)))


def accumulate_gradient(f: FsdpSession, name: str, params: int, after: int | None) -> int | None:
    """Under no_sync, the gradient a backward computed added into the held one: autograd's
    in-place add (read both, write one) on every backward of a chunk but its first, whose
    gradient is kept as computed; where the held gradient is wider (FSDP2's reduce_dtype) the
    first is cast into it. A compute-stream kernel after the block's backward; returns the task
    the gradient is ready after."""
    if not f.accumulate:
        return after
    gb, acc = f.ctx.gb, f.acc_bytes
    per_elem = (gb + acc if acc != gb else 0) if f.first_backward else gb + 2 * acc
    if not (per_elem and params):
        return after
    return f.b.add(
        name, "compute", "accumulate", deps=(after,), duration_s=copy_s(f.ctx, params * per_elem)
    )


class PassState:
    """One (micro-batch, chunk): the gathers and reduce-scatters around its blocks' passes."""

    def __init__(self, f: FsdpSession, p: Pass, chunk: ChunkWork):
        self.f, self.z, self.tag, self.blocks = f, f.z, f"mb{p.micro_batch}", chunk.blocks
        self.fwd_gather: dict[int, int] = {}
        self.fwd_done: dict[int, int] = {}
        self.bwd_gather: dict[int, int] = {}
        self.bwd_done: dict[int, int] = {}
        self.root_gather: int | None = None  # the pass's root all-gather, if it has a root
        self.gathered = False  # the chunk's parameters are still gathered from an earlier pass

    def issue_forward(self, i: int) -> None:
        # limit_all_gathers: unit i's all-gather waits until unit i-2's forward freed its
        # memory; the first two of a pass wait for the previous pass (whose last units they follow).
        limit = None
        if self.z.limit_all_gathers:
            limit = self.fwd_done.get(i - 2) if i >= 2 else self.f.previous_pass_end
        self.fwd_gather[i] = self.f.gather(
            f"{self.tag} all_gather {self.blocks[i].name} (forward)",
            self.blocks[i].params,
            deps=(limit,),
            alloc=not self.f.keeps_params,  # then a static buffer (module doc)
            unit=self.blocks[i].name,
        )

    def before_fwd(self, i):
        if self.gathered:
            return ()
        if i == 0:
            self.issue_forward(0)
        if i + 1 < len(self.blocks):
            self.issue_forward(i + 1)
        return (self.fwd_gather[i], self.root_gather)

    def after_fwd(self, i, unit, tid):
        self.fwd_done[i] = tid
        if self.z.reshard_after_forward:
            self.f.b.adjust(tid, free=unit.params * self.f.ctx.pb)

    def issue_backward(self, i: int, deps) -> None:
        if 0 <= i and i not in self.bwd_gather and self.z.reshard_after_forward:
            self.bwd_gather[i] = self.f.gather(
                f"{self.tag} all_gather {self.blocks[i].name} (backward)",
                self.blocks[i].params,
                deps=deps,
                unit=self.blocks[i].name,
            )

    def before_bwd(self, i):
        z, last_block = self.z, len(self.blocks) - 1
        if i == len(self.blocks):  # the head: prefetch the last block once its forward freed it
            if z.backward_prefetch and self.blocks:
                # ... and once this backward pass has begun, when other passes ran in between.
                started = () if self.f.previous_pass_is_own_forward else (self.f.previous_pass_end,)
                self.issue_backward(
                    last_block,
                    (self.fwd_done[last_block], *started) if z.limit_all_gathers else started,
                )
            return ()
        # Without prefetch the all-gather is issued when this block's backward is reached,
        # i.e. after the previous backward op (the head's, block i+1's, or the end of the
        # previous pass when the pass starts here).
        reached = self.bwd_done.get(i + 1, self.f.previous_pass_end)
        self.issue_backward(i, (reached,))
        if z.backward_prefetch:
            # BACKWARD_PRE: the previous block is gathered before this one computes; the rate
            # limiter holds it until block i+1's parameters are freed.
            self.issue_backward(i - 1, (reached,) if z.limit_all_gathers else ())
        return (self.bwd_gather.get(i), self.fwd_done.get(i))

    def after_bwd(self, i, unit, tid):
        self.bwd_done[i] = tid
        if i == len(self.blocks):
            return
        # The block's full gradient exists from its backward until its reduce-scatter ends;
        # its parameters are freed when its backward ends (SHARD_GRAD_OP's under no_sync only
        # when it reduces). Under no_sync the gradient computed is added to the held one.
        f, gb, pb = self.f, self.f.ctx.gb, self.f.ctx.pb
        params_freed = 0 if f.keeps_params else unit.params * pb
        computed = unit.params * gb
        f.b.adjust(tid, alloc=computed, free=params_freed + (computed if f.accumulate else 0))
        ready = accumulate_gradient(
            f, f"{self.tag} accumulate gradients {unit.name}", unit.params, tid
        )
        if not f.sync:
            return
        self.f.grad_comm.append(
            self.f.reduce(
                f"{self.tag} reduce_scatter {unit.name}",
                unit.params,
                (ready,),
                0 if f.accumulate else computed,
                unit=unit.name,
            )
        )
