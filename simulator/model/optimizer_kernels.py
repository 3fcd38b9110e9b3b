"""The optimizer update's HBM traffic as an implementation runs it (`training.optimizer_implementation`),
pure functions.

The update is memory-bound: its time is the bytes its kernels read and write. What runs depends
on the implementation (torch.optim's `fused` / `foreach` flags; torchtitan's
`optimizer.implementation` names the same three):

* "fused": one kernel per parameter chunk reads the gradient, the parameter and the states
  and writes the parameter and the states once (torch's `fused=True`, Apex / Transformer
  Engine FusedAdam under Megatron, DeepSpeed's FusedAdam): g + 2p + 2 x the states' bytes,
  28 bytes per parameter for Adam under bf16 mixed precision, 14 under pure bf16, and the
  16-bit model weights written beside an fp32 master where the framework keeps them (below);
  every optimizer of the catalog is costed this way (its states from model/precision.py).
* "foreach": torch.optim.AdamW's default on CUDA since PyTorch 2.0 ("we will try to use foreach
  over the for-loop implementation on CUDA"; `foreach` and `fused` both unset), one
  multi-tensor kernel per operation over all the parameters (torch/optim/adamw.py
  `_multi_tensor_adamw`):
    _foreach_mul_(params, 1 - lr wd)               decoupled weight decay   2p
    _foreach_lerp_(exp_avgs, grads, 1 - b1)        first moment             2s + g
    _foreach_mul_(exp_avg_sqs, b2)                 second moment            2s
    _foreach_addcmul_(exp_avg_sqs, g, g, 1 - b2)                            2s + g
    denom = _foreach_sqrt(exp_avg_sqs)             a new tensor             2s
    _foreach_div_(denom, sqrt(bias_correction2))                            2s
    _foreach_add_(denom, eps)                                               2s
    _foreach_addcdiv_(params, exp_avgs, denom, -step_size)                  2p + 2s
  = 4p + 2g + 14s bytes per parameter (p: the parameter the optimizer updates, the fp32
  master under mixed precision; g: its gradient, fp32 under mixed precision; s: a state
  element), against 28 bytes fused under bf16 mixed precision. Adam (torch.optim.Adam) has no
  decay pass at its default weight_decay 0: 2p + 2g + 14s.
* "for-loop": `foreach=False` (torch's `_single_tensor_adamw`): the same operations tensor by
  tensor, so the same bytes; its extra kernel launches (one per operation per tensor) are not
  counted. Composer's DecoupledAdamW (llm-foundry) is a for-loop whose first moment is a
  `mul_` then an `add_` (2s more than the lerp, not counted either).

Frameworks that keep separate 16-bit model weights beside an fp32 master (Megatron's
distributed optimizer and Float16Optimizer, DeepSpeed's ZeRO optimizers) copy the master into
them after an unfused update: one more pass reading p and writing the 16-bit weight. PyTorch
FSDP and AMP update the fp32 parameters themselves and cast them per gather or per op.

Memory: foreach's `_foreach_sqrt` allocates the denominator for every parameter at once, s bytes
per parameter held during the update (torch.optim's docs: foreach "uses more peak memory"
than the for-loop, whose denominator is one tensor's at a time, not counted).

Per-operation tables exist for Adam and AdamW; other optimizers are costed as one pass
(`fused`), and asking for another implementation for them is refused at load.
"""

from __future__ import annotations

from simulator.model.precision import FP32_BYTES, Precision

UNFUSED_OPTIMIZERS = ("adam", "adamw")  # the optimizers with a per-operation table above
# Frameworks whose fused Adam is their default optimizer: Megatron (Apex / Transformer Engine
# FusedAdam, megatron/core/optimizer/__init__.py) and DeepSpeed (FusedAdam for type Adam/AdamW
# unless torch_adam is set). PyTorch's own stacks default to torch.optim's foreach.
FUSED_BY_DEFAULT = ("megatron", "deepspeed")
# Frameworks that keep separate 16-bit model weights beside the fp32 master (module doc).
SEPARATE_MODEL_WEIGHTS = ("megatron", "deepspeed")


def default_optimizer_implementation(framework: str, optimizer: str) -> str:
    """The implementation a framework runs `optimizer` with when the scenario does not say."""
    if optimizer not in UNFUSED_OPTIMIZERS or framework in FUSED_BY_DEFAULT:
        return "fused"
    return "foreach"


def _mixed(precision: Precision) -> tuple[int, int]:
    """(p, g): the parameter the optimizer updates and the gradient it reads (module doc)."""
    if precision.master_bytes:
        return precision.master_bytes, FP32_BYTES
    return precision.weight_bytes, precision.grad_bytes


def _copy_to_model_weights(precision: Precision, framework: str) -> int:
    """The pass copying the fp32 master into separate 16-bit model weights (module doc)."""
    if precision.master_bytes and framework in SEPARATE_MODEL_WEIGHTS:
        return precision.master_bytes + precision.weight_bytes
    return 0


def fused_update_bytes_per_param(state_bytes: float, precision: Precision, framework: str) -> float:
    """Bytes one parameter's fused update moves: the gradient read, the parameter and its
    `state_bytes` of optimizer states (the master copy not included) read and written, and the
    copy into separate 16-bit weights where the framework keeps them (in the same kernel:
    FusedAdam's multi_tensor_adam writes the 16-bit copy beside the master)."""
    p, g = _mixed(precision)
    copy = precision.weight_bytes if _copy_to_model_weights(precision, framework) else 0
    return g + 2 * p + 2 * state_bytes + copy


def unfused_update_bytes_per_param(optimizer: str, precision: Precision, framework: str) -> int:
    """Bytes one parameter's foreach / for-loop update moves (module doc)."""
    if optimizer not in UNFUSED_OPTIMIZERS:
        raise ValueError(f"no per-operation table for optimizer {optimizer!r}")
    p, g = _mixed(precision)
    s = precision.state_bytes
    decay = 2 * p if optimizer == "adamw" else 0
    return decay + 2 * g + 14 * s + 2 * p + _copy_to_model_weights(precision, framework)


def update_temporary_bytes_per_param(implementation: str, precision: Precision) -> int:
    """Bytes per parameter the update allocates and frees: foreach's denominators (module doc)."""
    return precision.state_bytes if implementation == "foreach" else 0
