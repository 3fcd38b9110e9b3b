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

from dataclasses import replace

from simulator.execution.schedule import Collective, ScheduleBuilder, Task
from simulator.execution.strategies import replicated
from simulator.execution.strategies.common import Context, micro_batch, optimizer_step, shard_of


def build(ctx: Context, hybrid: bool):
    b = ScheduleBuilder()
    s = ctx.scenario
    z = s.training.zero3
    n = min(s.training.shard_group_size, s.cluster.num_gpus) if hybrid else s.cluster.num_gpus
    replicas = s.cluster.num_gpus // n
    if n == 1:
        # One rank per shard group: nothing is sharded, FSDP runs as (no_sync-free) DDP.
        return replicated.build(ctx, stage=0)
    pb, gb = ctx.pb, ctx.gb
    blocks = ctx.work.blocks
    grad_comm: list[int] = []
    previous_backward = None

    def gather(name: str, params: int, deps=(), alloc=True) -> int:
        """All-gather a unit: the output buffer is n shards (padded) of weights. With parameter
        offload (ZeRO-Infinity / FSDP CPUOffload) the shard first crosses PCIe to the GPU."""
        if s.training.offload.params == "cpu":
            h2d = b.add(name.replace("all_gather", "offload: shard to GPU for"), "pcie", "offload",
                        deps=deps, duration_s=shard_of(params, n) * pb / ctx.cm.gpu.pcie_bw_bytes_per_s)
            deps = (h2d,)
        return b.add(name, "comm", "comm", deps=deps, alloc_bytes=params * pb if alloc else 0,
                     collective=Collective("all_gather", "shard" if hybrid else "dp", shard_of(params, n) * n * pb))

    def reduce(name: str, params: int, deps, free: int) -> int:
        rs = b.add(name, "comm_rs", "comm", deps=deps, free_bytes=free,
                   collective=Collective("reduce_scatter", "shard" if hybrid else "dp",
                                         shard_of(params, n) * n * gb))
        if hybrid and replicas > 1:
            rs = b.add(name.replace("reduce_scatter", "all_reduce"), "comm_rs", "comm", deps=(rs,),
                       collective=Collective("all_reduce", "replica", shard_of(params, n) * gb))
        return rs

    for m in range(ctx.accum):
        tag = f"mb{m}"
        fwd_gather: dict[int, int] = {}
        fwd_done: dict[int, int] = {}
        bwd_gather: dict[int, int] = {}
        bwd_done: dict[int, int] = {}
        if ctx.work.embedding or ctx.work.head:
            root = ctx.work.edge_params + ctx.work.head_params
            root_gather = gather(f"{tag} all_gather root", root, alloc=False)  # root held in static
        else:
            root_gather = None

        def issue_forward(i: int) -> None:
            # limit_all_gathers: unit i's all-gather waits until unit i-2's forward freed its
            # memory; the first two of a later micro-batch wait for the previous backward.
            limit = None
            if z.limit_all_gathers:
                limit = fwd_done.get(i - 2) if i >= 2 else previous_backward
            fwd_gather[i] = gather(f"{tag} all_gather {blocks[i].name} (forward)", blocks[i].params,
                                   deps=(limit,))

        def before_fwd(i, unit):
            if i == 0:
                issue_forward(0)
            if i + 1 < len(blocks):
                issue_forward(i + 1)
            return (fwd_gather[i], root_gather)

        def after_fwd(i, unit, tid):
            fwd_done[i] = tid
            if z.reshard_after_forward:
                b.tasks[tid] = _with_free(b.tasks[tid], unit.params * pb)

        def issue_backward(i: int, deps) -> None:
            if 0 <= i and i not in bwd_gather and z.reshard_after_forward:
                bwd_gather[i] = gather(f"{tag} all_gather {blocks[i].name} (backward)", blocks[i].params,
                                       deps=deps)

        def before_bwd(i, unit):
            last_block = len(blocks) - 1
            if i == len(blocks):  # the head: prefetch the last block once its forward freed it
                if z.backward_prefetch:
                    issue_backward(last_block, (fwd_done[last_block],) if z.limit_all_gathers else ())
                return ()
            # Without prefetch the all-gather is issued when this block's backward is reached,
            # i.e. after the previous backward op (the head's, or block i+1's).
            issue_backward(i, (bwd_done.get(i + 1),))
            if z.backward_prefetch:
                # BACKWARD_PRE: the previous block is gathered before this one computes; the rate
                # limiter holds it until block i+1's parameters are freed.
                issue_backward(i - 1, (bwd_done.get(i + 1),) if z.limit_all_gathers else ())
            return (bwd_gather.get(i), fwd_done.get(i))

        def after_bwd(i, unit, tid):
            bwd_done[i] = tid
            if i == len(blocks):
                return
            # The block's full gradient exists from its backward until its reduce-scatter ends;
            # its parameters are freed when its backward ends.
            b.tasks[tid] = _with_alloc_free(b.tasks[tid], unit.params * gb, unit.params * pb)
            grad_comm.append(reduce(f"{tag} reduce_scatter {unit.name}", unit.params, (tid,), unit.params * gb))

        last = previous_backward = micro_batch(b, ctx, m, before_fwd, after_fwd, before_bwd, after_bwd)
        root = ctx.work.edge_params + ctx.work.head_params
        if root:
            grad_comm.append(reduce(f"{tag} reduce_scatter root", root, (last,), 0))
    optimizer_step(b, ctx, shard_of(s.model.params, n), deps=(last, *grad_comm))
    return b


def _with_free(task: Task, extra: int) -> Task:
    return replace(task, free_bytes=task.free_bytes + extra)


def _with_alloc_free(task: Task, alloc: int, free: int) -> Task:
    return replace(task, alloc_bytes=task.alloc_bytes + alloc, free_bytes=task.free_bytes + free)
