"""DeepSpeed ZeRO stages 1 and 2 (deepspeed/runtime/zero/stage_1_and_2.py), with DeepSpeed's defaults.

- Gradients fill buckets of reduce_bucket_size elements (5e8) in the order backward produces
  them; a bucket is reduced when the next gradient would overflow it. With the defaults
  (reduce_scatter and use_multi_rank_bucket_allreduce both true) `average_tensor` runs
  `allreduce_and_scatter`: a dist.all_reduce of each bucket, each rank keeping its slices, so
  the wire carries all-reduce volume, not reduce-scatter volume. With
  use_multi_rank_bucket_allreduce false it issues one dist.reduce per owning rank (costed here
  as the bandwidth-equivalent reduce-scatter); with reduce_scatter false an all-reduce.
- overlap_comm defaults to false for stages 1 and 2 (config.py overlap_comm_valid): the
  reduction runs on the compute stream and backward waits for it; true puts it on a side
  stream. Stage 2 reduces during every micro-batch's backward (partitioned gradients); stage 1
  on the accumulation boundary only, after backward unless overlap_comm installs the hooks.
- contiguous_gradients copies each gradient into an IPG buffer of reduce_bucket_size elements
  (two, alternating, with overlap_comm): a static buffer of the full bucket size.
- The updated 16-bit partition is all-gathered with one all_gather_into_tensor per parameter
  group (deepspeed/runtime/utils.py all_gather_dp_groups, when torch has it: allgather_bucket_size
  is then unused), the flat group padded to a multiple of 2 x dp elements.
- The optimizer step holds an fp32 copy of the gradient partition (single_partition_of_fp32_groups
  .grad): the "4_grads_32bit" of estimate_zero2_model_states_mem_needs' 18 bytes per parameter.
"""

from __future__ import annotations

from simulator.core.errors import Problem
from simulator.execution.frameworks.buckets import BucketPlan, GradBucketSession
from simulator.execution.strategies.zero import _Zero12

# The optimizer step's fp32 gradient partition, bytes per local parameter (fp32 = 4 bytes).
FP32_GRAD_BYTES = 4


def deepspeed_op(ds) -> str:
    """The collective DeepSpeed ZeRO-1/2 reduces a bucket with (see the module docstring)."""
    return (
        "reduce_scatter"
        if ds.reduce_scatter and not ds.use_multi_rank_bucket_allreduce
        else "all_reduce"
    )


def fp32_grad_bytes(s) -> int:
    """Bytes per local parameter of the step's fp32 gradient copy (mixed precision only)."""
    return FP32_GRAD_BYTES if s.training.precision.master_bytes else 0


class _DeepSpeedZero12(_Zero12):
    context_parallel = False  # DeepSpeed's sequence parallelism (Ulysses) is not modelled
    framework = "deepspeed"

    def validate(self, t, dp: int) -> list[Problem]:
        problems = super().validate(t, dp)
        if self.zero_stage == 2 and t.parallel.pp > 1:
            problems.append(
                Problem(
                    "training.strategy",
                    "DeepSpeed's pipeline engine supports ZeRO stage 1 "
                    "only (deepspeed/runtime/pipe/engine.py)",
                    "use zero1 with pipeline parallelism",
                )
            )
        return problems

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        ds = s.training.framework.deepspeed
        if self.shard_degree(s) == 1 or not ds.contiguous_gradients:
            return 0
        return (2 if ds.overlap(self.zero_stage) else 1) * ds.reduce_bucket_size * gb

    def step_transient_bytes(self, s, lay, pb, gb) -> int:
        if self.shard_degree(s) == 1 or s.training.offload.optimizer:
            return 0
        return fp32_grad_bytes(s) * -(-lay.params // self.shard_degree(s))

    def collectives(self, s):
        group = self.grad_group(s)
        return [(deepspeed_op(s.training.framework.deepspeed), group), ("all_gather", group)]

    def session(self, ctx, b):
        s = ctx.scenario
        ds, n = s.training.framework.deepspeed, s.training.parallel.dp
        overlap = ds.overlap(self.zero_stage)
        plan = BucketPlan(
            op=deepspeed_op(ds),
            cap_elements=ds.reduce_bucket_size,
            flush_before_overflow=True,
            elem_bytes=ctx.gb,
            every_micro_batch=self.zero_stage == 2,
            during_backward=self.zero_stage == 2 or overlap,
            stream="comm" if overlap else "compute",
            gather_pad_to=2 * n,
            step_transient_bytes_per_param=fp32_grad_bytes(s),
        )
        return GradBucketSession(ctx, b, plan)


class DeepSpeedZero1(_DeepSpeedZero12):
    name = "zero1"
    description = (
        "DeepSpeed ZeRO stage 1: optimizer states sharded, bucketed all-reduce on the boundary"
    )
    zero_stage = 1


class DeepSpeedZero2(_DeepSpeedZero12):
    name = "zero2"
    description = "DeepSpeed ZeRO stage 2: optimizer states and gradients sharded"
    zero_stage = 2
