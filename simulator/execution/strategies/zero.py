"""ZeRO-1 and ZeRO-2 (DeepSpeed stages 1 and 2): parameters replicated, optimizer states
(and, in stage 2, gradients) sharded over the data-parallel group.

- ZeRO-1: gradients accumulate locally; on the last micro-batch they are reduce-scattered
  to the optimizer-shard owners in buckets of reduce_bucket_size (5e8 elements), the
  optimizer updates its shard, and the updated weights are all-gathered in buckets of
  allgather_bucket_size (5e8 elements).
- ZeRO-2: as ZeRO-1, but gradients are partitioned, so every micro-batch reduce-scatters
  its gradients (DeepSpeed reduces at each micro-step) and frees them bucket by bucket.
"""

from __future__ import annotations

from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.buckets import bucketed_backward
from simulator.execution.strategies.common import Context, optimizer_step, shard_of

# DeepSpeed ZeRO-1/2 defaults: reduce_bucket_size = allgather_bucket_size = 5e8 elements
# (DeepSpeed config docs, "zero_optimization").
DEEPSPEED_BUCKET_ELEMENTS = 500_000_000


class _Zero12(Strategy):
    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        if self.shard_degree(s) == 1:
            return 0
        # DeepSpeed: one reduce bucket (gradients) and one all-gather bucket (updated weights).
        elements = min(s.model.params, DEEPSPEED_BUCKET_ELEMENTS)
        return elements * gb + elements * pb

    def collectives(self, s):
        group = self.mesh(s).group("dp")
        return [("reduce_scatter", group), ("all_gather", group)]

    def schedule(self, ctx: Context) -> ScheduleBuilder:
        b = ScheduleBuilder()
        group = ctx.mesh.group("dp")
        cap = DEEPSPEED_BUCKET_ELEMENTS * ctx.gb
        last, comm = bucketed_backward(b, ctx, "reduce_scatter", group, cap, cap,
                                       every_micro_batch=self.zero_stage == 2)
        n, params = group.size, ctx.scenario.model.params
        opt = optimizer_step(b, ctx, shard_of(params, n), deps=(last, *comm))
        if n > 1:
            # All-gather the updated weights: the full buffer is every rank's shard of weights.
            remaining, bucket = shard_of(params, n) * n, 0
            while remaining > 0:
                elements = min(remaining, DEEPSPEED_BUCKET_ELEMENTS)
                b.add(f"all_gather weights bucket {bucket}", "comm", "comm", deps=(opt,),
                      collective=Collective(op="all_gather", group=group, size_bytes=elements * ctx.pb))
                remaining -= elements
                bucket += 1
        return b


class Zero1(_Zero12):
    name = "zero1"
    description = "DeepSpeed ZeRO stage 1: optimizer states sharded"
    zero_stage = 1


class Zero2(_Zero12):
    name = "zero2"
    aliases = ("fsdp-shard-grad-op",)
    description = "DeepSpeed ZeRO stage 2: optimizer states and gradients sharded"
    zero_stage = 2
