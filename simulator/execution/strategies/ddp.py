"""DDP (PyTorch DistributedDataParallel): every rank holds all states; gradients are
all-reduced in buckets as backward produces them.

Buckets of bucket_cap_mb (25 MiB by default; torch/nn/parallel/distributed.py multiplies
bucket_cap_mb by 1024 * 1024), the first 1 MiB (`dist._DEFAULT_FIRST_BUCKET_BYTES`), in
reverse layer order; each full bucket is all-reduced at once, overlapping the rest of
backward. With gradient accumulation, micro-batches before the last run under no_sync()
and communicate nothing.

Gradient dtype: a bucket holds gradients in their parameters' dtype. Under PyTorch's mixed
precision torch.autocast casts each op's inputs and leaves the parameters fp32 (torch.amp), so
their gradients, the buckets and the all-reduce are fp32: 4 bytes per gradient where the
precision's 16-bit gradient is 2. A communication hook
(`training.ddp_comm_hook`: torch's fp16_compress_hook / bf16_compress_hook) casts each bucket
to 16 bits for the all-reduce and back (the casts' two passes over the bucket are not timed).
Pure 16-bit or fp32 training all-reduces the precision's gradients. Under the megatron and
deepspeed profiles data parallelism is their own (frameworks/).
"""

from __future__ import annotations

from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.buckets import BucketSession
from simulator.model.precision import FP32_BYTES

# torch/distributed/distributed_c10d.py: _DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024
DDP_FIRST_BUCKET_BYTES = 1024 * 1024


class DDP(Strategy):
    name = "ddp"
    aliases = ("zero0",)
    description = "PyTorch DDP: replicated states, bucketed gradient all-reduce"
    zero_stage = 0
    offload_optimizer = False
    context_parallel = True

    @staticmethod
    def bucket_elem_bytes(s) -> int:
        """Bytes per gradient element in a bucket: the parameters' dtype (module doc)."""
        p = s.training.precision
        return FP32_BYTES if p.master_bytes else p.grad_bytes

    def grad_elem_bytes(self, s) -> int:
        """Bytes per gradient element on the wire: the bucket's, or 2 under a compress hook."""
        return 2 if s.training.ddp_comm_hook != "none" else self.bucket_elem_bytes(s)

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        # PyTorch DDP docs: with gradient_as_bucket_view=False the buckets hold a copy of every
        # gradient ("the saved memory size will be equal to the total gradients size").
        if s.training.gradient_as_bucket_view or s.training.parallel.dp == 1:
            return 0
        return lay.params * self.bucket_elem_bytes(s)

    def collectives(self, s):
        return [("all_reduce", self.grad_group(s))]

    def session(self, ctx, b):
        # A bucket's cap counts the bucket's own bytes; a compress hook sends a 16-bit copy.
        s = ctx.scenario
        wire, held = self.grad_elem_bytes(s), self.bucket_elem_bytes(s)
        return BucketSession(
            ctx,
            b,
            "all_reduce",
            s.training.bucket_size_bytes * wire // held,
            DDP_FIRST_BUCKET_BYTES * wire // held,
            every_micro_batch=False,
            sharded_optimizer=False,
            grad_bytes=wire,
        )
