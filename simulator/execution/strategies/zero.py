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

from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.buckets import BucketSession

# DeepSpeed ZeRO-1/2 defaults: reduce_bucket_size = allgather_bucket_size = 5e8 elements
# (DeepSpeed config docs, "zero_optimization").
DEEPSPEED_BUCKET_ELEMENTS = 500_000_000


class _Zero12(Strategy):
    context_parallel = True

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        if self.shard_degree(s) == 1:
            return 0
        # DeepSpeed: one reduce bucket (gradients) and one all-gather bucket (updated weights).
        elements = min(lay.params, DEEPSPEED_BUCKET_ELEMENTS)
        return elements * gb + elements * pb

    def collectives(self, s):
        group = self.grad_group(s)
        return [("reduce_scatter", group), ("all_gather", group)]

    def session(self, ctx, b):
        cap = DEEPSPEED_BUCKET_ELEMENTS * ctx.gb
        return BucketSession(
            ctx,
            b,
            "reduce_scatter",
            cap,
            cap,
            every_micro_batch=self.zero_stage == 2,
            sharded_optimizer=True,
            allgather_bucket_bytes=DEEPSPEED_BUCKET_ELEMENTS * ctx.pb,
        )


class Zero1(_Zero12):
    name = "zero1"
    description = "ZeRO stage 1 (Rajbhandari et al. 2020): optimizer states sharded"
    zero_stage = 1


class Zero2(_Zero12):
    name = "zero2"
    description = "ZeRO stage 2 (Rajbhandari et al. 2020): optimizer states and gradients sharded"
    zero_stage = 2
