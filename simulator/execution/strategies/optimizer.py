"""The optimizer step: gradient clipping and the update on the GPU (its kernels' bytes), or
ZeRO-Offload's CPU update with its PCIe copies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.execution.schedule import ScheduleBuilder
from simulator.model import ops as op_math
from simulator.model.optimizer_kernels import (
    fused_update_bytes_per_param,
    unfused_update_bytes_per_param,
    update_temporary_bytes_per_param,
)
from simulator.model.precision import FP32_BYTES, optimizer_state_bytes_per_param
from simulator.spec.specs import Scenario
from simulator.system.hardware import GPU

if TYPE_CHECKING:
    from simulator.execution.strategies.common import Context


def optimizer_update(scenario: Scenario, local_params: int) -> op_math.Op:
    """The GPU optimizer update of `local_params` parameters, as one memory-bound kernel: fused
    (one pass) or an unfused implementation's passes (model/optimizer_kernels.py)."""
    t = scenario.training
    per_param: float
    if t.optimizer_implementation == "fused":
        k = optimizer_state_bytes_per_param(t.optimizer, t.precision, scenario.model.hidden_size)
        states = k - t.precision.master_bytes
        per_param = fused_update_bytes_per_param(states, t.precision, t.framework.name)
    else:
        per_param = unfused_update_bytes_per_param(t.optimizer, t.precision, t.framework.name)
    return op_math.Op("optimizer step", "memory", 0.0, int(local_params * per_param))


# Gradient clipping by the global norm (training.gradient_clipping) runs before the update over
# every local gradient: the norm reads each once (Megatron-Core clip_grads.py get_grad_norm_fp32:
# multi_tensor_l2norm; torch.nn.utils.clip_grad_norm_: foreach norm); torch's clip_grad_norm_
# (FSDP's and FSDP2's too) then always multiplies every gradient by min(1, max_norm / norm)
# (foreach_mul_: a read and a write), and DeepSpeed's ZeRO optimizers fold the clip into the
# gradients' unscaling pass (unscale_and_clip_grads: mul_); Megatron-Core scales only when the
# norm exceeds max_norm (clip_grad_by_total_norm_fp32, `if clip_coeff < 1.0`), which a steady
# training step is costed without. The norm's all-reduce of one fp32 scalar is not modelled.
SCALES_ONLY_ABOVE_MAX_NORM = ("megatron",)


def gradient_clipping_ops(scenario: Scenario, local_params: int) -> list[op_math.Op]:
    """The clipping kernels over `local_params` gradients (none when clipping is off)."""
    t = scenario.training
    if not t.gradient_clipping:
        return []
    # The gradients the optimizer sees: fp32 under mixed precision (torch AMP's fp32 .grad,
    # FSDP's fp32 sharded gradients, Megatron's fp32 main_grad, DeepSpeed's fp32 partitions),
    # the training dtype's otherwise (pure bf16, fp32).
    grad_bytes = FP32_BYTES if t.precision.master_bytes else t.precision.grad_bytes
    grads = local_params * grad_bytes
    ops = [op_math.Op("gradient norm", "memory", 0.0, grads)]
    if t.framework.name not in SCALES_ONLY_ABOVE_MAX_NORM:
        ops.append(op_math.Op("gradient clip scale", "memory", 0.0, 2 * grads))
    return ops


def optimizer_ops(scenario: Scenario, local_params: int) -> list[op_math.Op]:
    """The GPU optimizer step's kernels: gradient clipping, then the update."""
    return [
        *gradient_clipping_ops(scenario, local_params),
        optimizer_update(scenario, local_params),
    ]


def optimizer_step(b: ScheduleBuilder, ctx: Context, local_params: int, deps) -> int:
    """The optimizer step of `local_params` parameters, on the GPU or (offload) the CPU."""
    b.optimizer_params = local_params
    if ctx.scenario.training.offload.optimizer:
        return offloaded_optimizer(b, ctx, local_params, deps)
    t = ctx.scenario.training
    ops = optimizer_ops(ctx.scenario, local_params)
    temp = local_params * update_temporary_bytes_per_param(t.optimizer_implementation, t.precision)
    return b.add(
        "optimizer step",
        "compute",
        "optimizer",
        deps=deps,
        duration_s=ctx.cm.ops_time_s(ops),
        alloc_bytes=temp,
        free_bytes=temp,
    )


# Host memory bandwidth of a DGX A100 / H100 class server: 2 sockets x 8 DDR4-3200 (AMD EPYC
# 7742, 204.8 GB/s per socket; DGX A100 User Guide) - the CPU Adam of ZeRO-Offload (Ren et al.
# 2021, Sec 5) is memory-bound, and the host's GPUs share it.
HOST_MEMORY_BW_BYTES_PER_S = 2 * 204.8e9


def offload_times_s(scenario: Scenario, gpu: GPU, local_params: int) -> tuple[float, float, float]:
    """ZeRO-Offload's (gradients to the CPU, CPU Adam, weights back to the GPU) seconds."""
    t, c = scenario.training, scenario.cluster
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, scenario.model.hidden_size)
    gb, pb = t.precision.grad_bytes, t.precision.weight_bytes
    share = HOST_MEMORY_BW_BYTES_PER_S / min(c.gpus_per_host, c.num_gpus)
    # DeepSpeed's CPU optimizer clips in its unscaling pass over the fp32 gradients on the host.
    clip = 3 * FP32_BYTES if t.gradient_clipping else 0
    return (
        local_params * gb / gpu.pcie_bw_bytes_per_s,
        local_params * (gb + pb + 2 * k + clip) / share,
        local_params * pb / gpu.pcie_bw_bytes_per_s,
    )


def offloaded_optimizer(b: ScheduleBuilder, ctx: Context, local_params: int, deps) -> int:
    """ZeRO-Offload: gradients to the CPU over PCIe, CPU Adam, updated 16-bit weights back."""
    d2h_s, cpu_s, h2d_s = offload_times_s(ctx.scenario, ctx.cm.gpu, local_params)
    d2h = b.add("offload: gradients to CPU", "pcie", "offload", deps=deps, duration_s=d2h_s)
    cpu = b.add("offload: CPU optimizer step", "cpu", "optimizer", deps=(d2h,), duration_s=cpu_s)
    return b.add("offload: weights to GPU", "pcie", "offload", deps=(cpu,), duration_s=h2d_s)
