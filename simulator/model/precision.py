"""Numeric formats of training, one source of truth each: datatypes, precisions (bytes per
weight, gradient, master copy and activation; the datatypes GEMMs and attention compute in),
optimizers (state bytes per parameter) and activation-checkpointing modes.

The schema's choices, the memory model, the roofline and the report all read these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

# Datatypes a GPU's peak FLOP/s are catalogued for (dense tensor-core rates, fp32/fp64 CUDA cores).
DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "fp4")

# Korthikanti et al. 2022 Sec 4.2: no recompute, selective (attention core only), full (per block).
CHECKPOINTING = ("none", "selective", "full")


@dataclass(frozen=True, kw_only=True)
class Precision:
    """A training precision: bytes per element of each state, and the datatypes kernels run in."""

    name: str
    weight_bytes: int  # the weights the model computes with
    grad_bytes: int  # gradients
    master_bytes: int  # an fp32 master copy kept by the optimizer (0: none)
    activation_bytes: int  # activations kept for backward
    state_bytes: int  # each optimizer state element (momentum, variance)
    gemm_dtype: str
    attention_dtype: str
    description: str


# Mixed precision keeps an fp32 master copy (Micikevicius et al. 2018, "Mixed Precision
# Training", Sec 3.1); pure bf16 keeps none and 16-bit optimizer states. fp8-mixed
# (Transformer Engine) keeps 16-bit weights + fp32 master and casts to fp8 per GEMM, so its
# memory is that of bf16-mixed; attention stays bf16. fp32 runs true fp32 GEMMs: PyTorch
# disables TF32 for matmuls by default since 1.12 (torch.backends.cuda.matmul.allow_tf32).
PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision(
            name="fp32",
            weight_bytes=4,
            grad_bytes=4,
            master_bytes=0,
            activation_bytes=4,
            state_bytes=4,
            gemm_dtype="fp32",
            attention_dtype="fp32",
            description="fp32 weights, gradients, activations and states",
        ),
        Precision(
            name="fp16-mixed",
            weight_bytes=2,
            grad_bytes=2,
            master_bytes=4,
            activation_bytes=2,
            state_bytes=4,
            gemm_dtype="fp16",
            attention_dtype="fp16",
            description="fp16 compute, fp32 master weights and states (AMP / DeepSpeed fp16)",
        ),
        Precision(
            name="bf16-mixed",
            weight_bytes=2,
            grad_bytes=2,
            master_bytes=4,
            activation_bytes=2,
            state_bytes=4,
            gemm_dtype="bf16",
            attention_dtype="bf16",
            description="bf16 compute, fp32 master weights and states",
        ),
        Precision(
            name="bf16",
            weight_bytes=2,
            grad_bytes=2,
            master_bytes=0,
            activation_bytes=2,
            state_bytes=2,
            gemm_dtype="bf16",
            attention_dtype="bf16",
            description="pure bf16: no master copy, bf16 optimizer states",
        ),
        Precision(
            name="fp8-mixed",
            weight_bytes=2,
            grad_bytes=2,
            master_bytes=4,
            activation_bytes=2,
            state_bytes=4,
            gemm_dtype="fp8",
            attention_dtype="bf16",
            description="fp8 GEMMs (Transformer Engine), bf16 attention, fp32 master and states",
        ),
    )
}

# 8-bit Adam (Dettmers et al. 2022, bitsandbytes): both states at 1 byte, plus one fp32 absmax
# per 2048-element block (block-wise quantization), 8/2048 bytes per parameter.
ADAM_8BIT_BLOCK = 2048

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd-momentum", "adam-8bit", "adafactor")


def optimizer_state_bytes_per_param(
    optimizer: str, precision: Precision, hidden_size: int
) -> float:
    """K of the ZeRO paper: optimizer-state bytes per parameter, the master copy included."""
    master, state = precision.master_bytes, precision.state_bytes
    if optimizer in ("adam", "adamw"):
        # Adam/AdamW: momentum + variance (Kingma & Ba 2015).
        return master + 2 * state
    if optimizer == "sgd":
        return master
    if optimizer == "sgd-momentum":
        return master + state
    if optimizer == "adam-8bit":
        return master + 2 * 1 + 2 * 4 / ADAM_8BIT_BLOCK
    if optimizer == "adafactor":
        # Adafactor (Shazeer & Stern 2018) with beta1 = 0 keeps a factored second moment: one
        # row and one column vector per r x c matrix, (r + c) states; for square h x h matrices
        # that is 2 / h states per parameter.
        return master + state * 2 / hidden_size
    raise ValueError(f"unknown optimizer {optimizer!r}")
