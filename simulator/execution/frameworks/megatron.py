"""Megatron-Core data parallelism (megatron/core/distributed/, megatron/core/optimizer/), with its
defaults, beside its tensor and pipeline parallelism (training.parallelism).

- Gradients accumulate into one contiguous main-grad buffer per model chunk, in fp32 when
  grad_reduce_in_fp32 (Megatron-LM forces it for bf16: megatron/training/arguments.py,
  "accumulate and all-reduce gradients in fp32 for bfloat16 data type"), so the buffer is the
  gradient state and the collectives move 4-byte elements.
- Micro-batches before the last run under no_sync; the buffer is reduced once per step:
  all-reduced (DDP) or reduce-scattered (distributed optimizer). overlap_grad_reduce (default
  false) reduces each bucket as soon as its gradients are ready in the last backward; without
  it the whole buffer is one bucket, reduced after the last backward (finish_grad_sync).
  Buckets hold bucket_size parameters (default max(4e7, 1e6 x dp) with overlap), padded to
  lcm(dp, 128) elements under the distributed optimizer (param_layout.py).
- The distributed optimizer steps on its 1/dp shard of fp32 main parameters and all-gathers
  the bf16 weight buffer bucket by bucket after the step, or, with overlap_param_gather,
  during the next forward (each layer waits for its bucket's all-gather).
- Memory per parameter (docs/user-guide/features/dist_optimizer.md table): bf16 params with
  fp32 grads 18 bytes, 6 + 12/d distributed; fp16 params and grads 20, 4 + 16/d (the
  optimizer keeps fp32 main gradients beside the fp16 buffer); fp32 16, 8 + 8/d.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from simulator.execution.frameworks.buckets import BucketPlan, GradBucketSession, megatron_pad
from simulator.execution.strategies.base import StateBytes, Strategy
from simulator.model.precision import FP32_BYTES

BF16_PRECISIONS = ("bf16-mixed", "bf16", "fp8-mixed")


def grad_buffer_bytes(t) -> int:
    """Bytes per element of the main-grad buffer (and of the gradient collectives)."""
    m = t.framework.megatron
    fp32 = (
        m.grad_reduce_in_fp32
        if m.grad_reduce_in_fp32 is not None
        else t.precision.name in BF16_PRECISIONS
    )
    return FP32_BYTES if fp32 else t.precision.grad_bytes


class _Megatron(Strategy):
    framework = "megatron"
    offload_optimizer = False
    context_parallel = True
    expert_parallel = True
    offload_refusals: ClassVar[dict[str, tuple[str, str]]] = {
        "optimizer": (
            "optimizer offload is not modelled for the megatron profile",
            "use framework deepspeed (ZeRO-Offload)",
        )
    }

    def shard_degree(self, s) -> int:
        """The distributed optimizer shards over the data-parallel ranks with context
        parallelism (Megatron-Core get_data_parallel_group(with_context_parallel=True))."""
        par = s.training.parallel
        return par.dp * par.cp if self.zero_stage else 1

    def states(self, s, lay, k: float) -> StateBytes:
        t, params = s.training, lay.params
        grad = grad_buffer_bytes(t)
        # A 16-bit buffer under mixed precision: the optimizer keeps fp32 main gradients too.
        main_grads = FP32_BYTES if grad < FP32_BYTES and t.precision.master_bytes else 0
        if self.zero_stage:
            # Routed experts are sharded over their own expert-data-parallel group.
            expert = lay.expert_params
            local = math.ceil((params - expert) / self.shard_degree(s)) + (
                math.ceil(expert / t.parallel.edp) if expert else 0
            )
            opt = local * (k + main_grads)
        else:
            opt = params * (k + main_grads)
        return StateBytes(
            params=params * t.precision.weight_bytes, grads=params * grad, optimizer=math.ceil(opt)
        )

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        return 0

    def grad_elem_bytes(self, s) -> int:
        return grad_buffer_bytes(s.training)

    def collectives(self, s):
        group = self.grad_group(s)
        return [(self.op, group)] + ([("all_gather", group)] if self.zero_stage else [])

    def session(self, ctx, b):
        s = ctx.scenario
        # The data-parallel group with context parallelism (see shard_degree).
        m, dp = s.training.framework.megatron, s.training.parallel.dp * s.training.parallel.cp
        cap = m.bucket_params(dp)
        plan = BucketPlan(
            op=self.op,
            cap_elements=cap,
            flush_before_overflow=False,
            elem_bytes=grad_buffer_bytes(s.training),
            pad_to=megatron_pad(dp) if self.zero_stage else 1,
            during_backward=m.overlap_grad_reduce,
            sharded_optimizer=self.zero_stage > 0,
            gather_buckets=True,
            gather_before_forward=m.overlap_param_gather,
        )
        edp = s.training.parallel.edp
        experts = dataclasses.replace(plan, pad_to=megatron_pad(edp) if self.zero_stage else 1)
        return GradBucketSession(ctx, b, plan, experts)


class MegatronDDP(_Megatron):
    name = "ddp"
    description = "Megatron-Core DDP: fp32 gradient buffer all-reduced once per step"
    zero_stage = 0
    op = "all_reduce"


class MegatronDistributedOptimizer(_Megatron):
    name = "zero1"
    description = (
        "Megatron-Core distributed optimizer: gradients reduce-scattered, weights all-gathered"
    )
    zero_stage = 1
    op = "reduce_scatter"
