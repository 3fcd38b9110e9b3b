"""ZeRO-3 / FSDP full shard and hybrid shard (HSDP / MiCS): parameters sharded, gathered per unit.

Follows PyTorch FSDP (Zhao et al. 2023, Sec 3-4) with the transformer block as the wrap unit:
- forward: all-gather each block's parameters before its forward; the host issues the
  all-gathers ahead of compute, limited to two in flight by limit_all_gathers (the rate
  limiter); parameters are freed after the block's forward (reshard_after_forward) or kept
  until its backward.
- backward: all-gather again (when resharded), prefetching the previous block before the
  current block's backward (BACKWARD_PRE); after a block's backward its gradients are
  reduce-scattered on a separate stream and the unsharded gradient freed.
- the root unit (embeddings, head) stays unsharded from forward to backward; its gradient
  is reduce-scattered after the last backward op.
- HSDP: all-gathers and reduce-scatters run within a shard group; each reduce-scattered
  gradient shard is then all-reduced across the replica groups.
- gradient accumulation without no_sync: every micro-batch communicates (FSDP default).
"""

from __future__ import annotations

import dataclasses

from simulator.core.errors import Problem
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.common import Context, Hooks, micro_batch, optimizer_step, shard_of
from simulator.execution.strategies.ddp import DDP
from simulator.spec.mesh import Mesh


class Zero3(Strategy):
    name = "zero3"
    aliases = ("fsdp", "fsdp-full-shard")
    description = "ZeRO stage 3 / PyTorch FSDP FULL_SHARD: all states sharded, parameters gathered per block"
    zero_stage = 3
    offload_params = True

    # ---- memory

    def _sharded(self, s) -> bool:
        return self.shard_degree(s) > 1

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        if not self._sharded(s):
            return 0
        # The root unit stays unsharded through forward and backward, with its full gradient
        # until the final reduce-scatter.
        return lay.root_params * (pb + gb)

    def buffers_at_backward_start(self, s, lay, pb, gb) -> int:
        if not self._sharded(s):
            return 0
        z = s.training.sharding
        if not z.reshard_after_forward:  # every block is still unsharded from forward
            return sum(b.params for b in lay.blocks) * pb
        # FSDP prefetches the last block while the loss and head run backward.
        return (lay.blocks[-1].params * pb) if z.backward_prefetch else 0

    def buffers_at_block_backward(self, s, lay, i, pb, gb) -> int:
        if not self._sharded(s):
            return 0
        z, blocks = s.training.sharding, lay.blocks
        if not z.reshard_after_forward:  # blocks 0..i are still unsharded from forward
            gathered = sum(b.params for b in blocks[:i + 1])
        else:  # this block, and the previous one prefetched
            gathered = blocks[i].params + (blocks[i - 1].params if i and z.backward_prefetch else 0)
        # This block's full gradient, and the next block's, whose reduce-scatter is in flight
        # (with backward prefetch it surely is; without, it may have finished while this
        # block's all-gather ran, so the analytic peak is then an upper bound).
        pending = blocks[i + 1].params if i + 1 < len(blocks) else 0
        return gathered * pb + (blocks[i].params + pending) * gb

    # ---- schedule

    def collectives(self, s):
        mesh, shard = self.mesh(s), self.grad_group(s)
        if shard.size == 1:
            return [("all_reduce", Mesh(dims=(("dp", mesh.world),)).group("dp"))]
        rest = [d for d, _ in mesh.dims if d not in shard.dims]
        replica = [("all_reduce", mesh.group(*rest))] if rest and mesh.world > shard.size else []
        return [("all_gather", shard), ("reduce_scatter", shard), *replica]

    def schedule(self, ctx: Context) -> ScheduleBuilder:
        shard = self.grad_group(ctx.scenario)
        if shard.size == 1:
            # One rank per shard group: nothing is sharded, FSDP runs as DDP over all ranks.
            flat = Mesh(dims=(("dp", ctx.mesh.world),))
            return DDP().schedule(dataclasses.replace(ctx, mesh=flat))
        return _FsdpSchedule(ctx, self).build()


class HSDP(Zero3):
    name = "hsdp"
    aliases = ("fsdp-hybrid-shard",)
    description = "FSDP HYBRID_SHARD / MiCS: ZeRO-3 within shard groups, gradients all-reduced across them"

    def validate(self, t, num_gpus: int) -> list[Problem]:
        problems = super().validate(t, num_gpus)
        if t.shard_group_size is None:
            problems.append(Problem("training.shard_group_size", "required when strategy is hsdp",
                                    "e.g. shard_group_size: 8 to shard within each host"))
        elif num_gpus % min(t.shard_group_size, num_gpus):
            problems.append(Problem("training.shard_group_size", f"{num_gpus} GPUs do not split into groups "
                                    f"of {t.shard_group_size}", "use a divisor of the GPU count"))
        return problems

    def dp_dims(self, s):
        n = s.cluster.num_gpus
        g = min(s.training.shard_group_size, n)
        return (("dp_shard", g), ("dp_replicate", n // g))

    def grad_group(self, s):
        return self.mesh(s).group("dp_shard")

    def shard_degree(self, s) -> int:
        return min(s.training.shard_group_size, s.cluster.num_gpus)


class _FsdpSchedule:
    """One rank's FSDP step: per-block all-gathers with prefetch and rate limiting, per-block
    reduce-scatters (and HSDP's replica all-reduces)."""

    def __init__(self, ctx: Context, strategy: Zero3):
        self.ctx, self.b = ctx, ScheduleBuilder()
        s = ctx.scenario
        self.z, self.offload = s.training.sharding, s.training.offload.params
        self.shard = strategy.grad_group(s)
        self.n = self.shard.size
        dims = [d for d, _ in ctx.mesh.dims if d not in self.shard.dims]
        self.replica = ctx.mesh.group(*dims) if dims and ctx.mesh.world > self.n else None
        self.grad_comm: list[int] = []
        self.previous_backward = None

    def gather(self, name: str, params: int, deps=(), alloc=True) -> int:
        """All-gather a unit: the output buffer is n shards (padded) of weights. With parameter
        offload (ZeRO-Infinity / FSDP CPUOffload) the shard first crosses PCIe to the GPU."""
        ctx, b = self.ctx, self.b
        if self.offload:
            h2d = b.add(name.replace("all_gather", "offload: shard to GPU for"), "pcie", "offload", deps=deps,
                        duration_s=shard_of(params, self.n) * ctx.pb / ctx.cm.gpu.pcie_bw_bytes_per_s)
            deps = (h2d,)
        return b.add(name, "comm", "comm", deps=deps, alloc_bytes=params * ctx.pb if alloc else 0,
                     collective=Collective(op="all_gather", group=self.shard,
                                           size_bytes=shard_of(params, self.n) * self.n * ctx.pb))

    def reduce(self, name: str, params: int, deps, free: int) -> int:
        gb = self.ctx.gb
        rs = self.b.add(name, "comm_rs", "comm", deps=deps, free_bytes=free,
                        collective=Collective(op="reduce_scatter", group=self.shard,
                                             size_bytes=shard_of(params, self.n) * self.n * gb))
        if self.replica is not None:
            rs = self.b.add(name.replace("reduce_scatter", "all_reduce"), "comm_rs", "comm", deps=(rs,),
                            collective=Collective(op="all_reduce", group=self.replica,
                                                  size_bytes=shard_of(params, self.n) * gb))
        return rs

    def build(self) -> ScheduleBuilder:
        ctx = self.ctx
        last = None
        for m in range(ctx.accum):
            last = self.previous_backward = self.micro_batch(m)
            root = ctx.work.edge_params + ctx.work.head_params
            if root:
                self.grad_comm.append(self.reduce(f"mb{m} reduce_scatter root", root, (last,), 0))
        optimizer_step(self.b, ctx, shard_of(ctx.scenario.model.params, self.n), deps=(last, *self.grad_comm))
        return self.b

    def micro_batch(self, m: int) -> int:
        return _MicroBatch(self, m).run()


class _MicroBatch:
    """One micro-batch of an FSDP step: the hooks around each block's forward and backward."""

    def __init__(self, fsdp: _FsdpSchedule, m: int):
        self.f, self.ctx, self.z, self.tag = fsdp, fsdp.ctx, fsdp.z, f"mb{m}"
        self.blocks = fsdp.ctx.work.blocks
        self.fwd_gather: dict[int, int] = {}
        self.fwd_done: dict[int, int] = {}
        self.bwd_gather: dict[int, int] = {}
        self.bwd_done: dict[int, int] = {}
        self.root_gather = None

    def run(self) -> int:
        w = self.ctx.work
        if w.embedding or w.head:  # the root is held in static memory
            self.root_gather = self.f.gather(f"{self.tag} all_gather root", w.edge_params + w.head_params,
                                             alloc=False)
        hooks = Hooks(before_fwd=self.before_fwd, after_fwd=self.after_fwd, before_bwd=self.before_bwd,
                      after_bwd=self.after_bwd)
        return micro_batch(self.f.b, self.ctx, int(self.tag[2:]), hooks)

    def issue_forward(self, i: int) -> None:
        # limit_all_gathers: unit i's all-gather waits until unit i-2's forward freed its
        # memory; the first two of a later micro-batch wait for the previous backward.
        limit = None
        if self.z.limit_all_gathers:
            limit = self.fwd_done.get(i - 2) if i >= 2 else self.f.previous_backward
        self.fwd_gather[i] = self.f.gather(f"{self.tag} all_gather {self.blocks[i].name} (forward)",
                                           self.blocks[i].params, deps=(limit,))

    def before_fwd(self, i, unit):
        if i == 0:
            self.issue_forward(0)
        if i + 1 < len(self.blocks):
            self.issue_forward(i + 1)
        return (self.fwd_gather[i], self.root_gather)

    def after_fwd(self, i, unit, tid):
        self.fwd_done[i] = tid
        if self.z.reshard_after_forward:
            self.f.b.adjust(tid, free=unit.params * self.ctx.pb)

    def issue_backward(self, i: int, deps) -> None:
        if 0 <= i and i not in self.bwd_gather and self.z.reshard_after_forward:
            self.bwd_gather[i] = self.f.gather(f"{self.tag} all_gather {self.blocks[i].name} (backward)",
                                               self.blocks[i].params, deps=deps)

    def before_bwd(self, i, unit):
        z, last_block = self.z, len(self.blocks) - 1
        if i == len(self.blocks):  # the head: prefetch the last block once its forward freed it
            if z.backward_prefetch:
                self.issue_backward(last_block, (self.fwd_done[last_block],) if z.limit_all_gathers else ())
            return ()
        # Without prefetch the all-gather is issued when this block's backward is reached,
        # i.e. after the previous backward op (the head's, or block i+1's).
        self.issue_backward(i, (self.bwd_done.get(i + 1),))
        if z.backward_prefetch:
            # BACKWARD_PRE: the previous block is gathered before this one computes; the rate
            # limiter holds it until block i+1's parameters are freed.
            self.issue_backward(i - 1, (self.bwd_done.get(i + 1),) if z.limit_all_gathers else ())
        return (self.bwd_gather.get(i), self.fwd_done.get(i))

    def after_bwd(self, i, unit, tid):
        self.bwd_done[i] = tid
        if i == len(self.blocks):
            return
        # The block's full gradient exists from its backward until its reduce-scatter ends;
        # its parameters are freed when its backward ends.
        gb, pb = self.ctx.gb, self.ctx.pb
        self.f.b.adjust(tid, alloc=unit.params * gb, free=unit.params * pb)
        self.f.grad_comm.append(self.f.reduce(f"{self.tag} reduce_scatter {unit.name}", unit.params, (tid,),
                                              unit.params * gb))
