"""DDP (PyTorch DistributedDataParallel): every rank holds all states; gradients are
all-reduced in buckets as backward produces them.

Buckets of bucket_cap_mb (25 MiB by default; torch/nn/parallel/distributed.py multiplies
bucket_cap_mb by 1024 * 1024), the first 1 MiB (`dist._DEFAULT_FIRST_BUCKET_BYTES`), in
reverse layer order; each full bucket is all-reduced at once, overlapping the rest of
backward. With gradient accumulation, micro-batches before the last run under no_sync()
and communicate nothing.
"""

from __future__ import annotations

from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.buckets import BucketSession

# torch/distributed/distributed_c10d.py: _DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024
DDP_FIRST_BUCKET_BYTES = 1024 * 1024


class DDP(Strategy):
    name = "ddp"
    aliases = ("zero0",)
    description = "PyTorch DDP: replicated states, bucketed gradient all-reduce"
    zero_stage = 0
    offload_optimizer = False
    context_parallel = True

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        # PyTorch DDP docs: with gradient_as_bucket_view=False the buckets hold a copy of every
        # gradient ("the saved memory size will be equal to the total gradients size").
        if s.training.gradient_as_bucket_view or s.training.parallel.dp == 1:
            return 0
        return lay.params * gb

    def collectives(self, s):
        return [("all_reduce", self.grad_group(s))]

    def session(self, ctx, b):
        return BucketSession(
            ctx,
            b,
            "all_reduce",
            ctx.scenario.training.bucket_size_bytes,
            DDP_FIRST_BUCKET_BYTES,
            every_micro_batch=False,
            sharded_optimizer=False,
        )
