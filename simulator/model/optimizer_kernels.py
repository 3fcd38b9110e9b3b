"""The optimizer update's HBM traffic as an implementation runs it (`training.optimizer_implementation`),
pure functions.

The update is memory-bound: its time is the bytes its kernels read and write. What runs depends
on the implementation (torch.optim's `fused` / `foreach` flags; torchtitan's
`optimizer.implementation` names the same three):

* "fused": one kernel per parameter chunk reads the gradient, the parameter and the states
  and writes the parameter and the states once (torch's `fused=True`, Apex / Transformer
  Engine FusedAdam under Megatron, DeepSpeed's FusedAdam). Counted as before: the gradient,
  the 16-bit weight and K bytes of states and master read and written
  (strategies/optimizer.py `optimizer_update`).
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

from simulator.model.precision import Precision

OPTIMIZER_IMPLEMENTATIONS = ("fused", "foreach", "for-loop")
UNFUSED_OPTIMIZERS = ("adam", "adamw")  # the optimizers with a per-operation table above
# Frameworks whose fused Adam is their default optimizer: Megatron (Apex / Transformer Engine
# FusedAdam, megatron/core/optimizer/__init__.py) and DeepSpeed (FusedAdam for type Adam/AdamW
# unless torch_adam is set). PyTorch's own stacks default to torch.optim's foreach.
FUSED_BY_DEFAULT = ("megatron", "deepspeed")
# Frameworks that keep separate 16-bit model weights beside the fp32 master (module doc).
SEPARATE_MODEL_WEIGHTS = ("megatron", "deepspeed")
FP32 = 4


def default_optimizer_implementation(framework: str, optimizer: str) -> str:
    """The implementation a framework runs `optimizer` with when the scenario does not say."""
    if optimizer not in UNFUSED_OPTIMIZERS or framework in FUSED_BY_DEFAULT:
        return "fused"
    return "foreach"


def unfused_update_bytes_per_param(optimizer: str, precision: Precision, framework: str) -> int:
    """Bytes one parameter's foreach / for-loop update moves (module doc)."""
    if optimizer not in UNFUSED_OPTIMIZERS:
        raise ValueError(f"no per-operation table for optimizer {optimizer!r}")
    mixed = bool(precision.master_bytes)
    p = precision.master_bytes if mixed else precision.weight_bytes
    g = FP32 if mixed else precision.grad_bytes
    s = precision.state_bytes
    decay = 2 * p if optimizer == "adamw" else 0
    total = decay + 2 * g + 14 * s + 2 * p
    if mixed and framework in SEPARATE_MODEL_WEIGHTS:
        total += p + precision.weight_bytes  # the master copied into the 16-bit weights
    return total


def update_temporary_bytes_per_param(implementation: str, precision: Precision) -> int:
    """Bytes per parameter the update allocates and frees: foreach's denominators (module doc)."""
    return precision.state_bytes if implementation == "foreach" else 0
