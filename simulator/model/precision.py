"""Numeric formats of training, one source of truth each: datatypes, precisions (bytes per
weight, gradient, master copy and activation; the datatypes GEMMs and attention compute in),
optimizers (state bytes per parameter) and activation-checkpointing modes.

The schema's choices, the memory model, the roofline and the report all read these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

# Datatypes a GPU's peak FLOP/s are catalogued for (dense tensor-core rates, fp32/fp64 CUDA cores).
DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "fp4")
FP32_BYTES = 4  # an fp32 element (fp32 gradients, master weights, kernels' fp32 intermediates)

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
    # A GEMM's input kept for its weight gradient; fp8-mixed keeps the fp8 cast (Transformer
    # Engine's Linear / GroupedLinear save `inputmat`, the quantized input, when fp8 is on and
    # the weight gradient is not overridden to higher precision: module/linear.py).
    gemm_input_bytes: int
    gemm_dtype: str
    attention_dtype: str
    description: str


# Mixed precision keeps an fp32 master copy (Micikevicius et al. 2018, "Mixed Precision
# Training", Sec 3.1); pure bf16 keeps none and 16-bit optimizer states. fp8-mixed
# (Transformer Engine) keeps 16-bit weights + fp32 master and casts to fp8 per GEMM, so its
# model states are those of bf16-mixed; its GEMMs keep their inputs for backward in fp8 (one
# byte; the per-tensor scale is negligible), the rest of the activations in bf16, and
# attention stays bf16. fp32 runs true fp32 GEMMs: PyTorch
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
            gemm_input_bytes=4,
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
            gemm_input_bytes=2,
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
            gemm_input_bytes=2,
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
            gemm_input_bytes=2,
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
            gemm_input_bytes=1,
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


# ---- frozen base weights of fine-tuning (training.finetune.base_weights), bytes per element.
# bf16: 2 bytes. int8: bitsandbytes LLM.int8() (Dettmers et al. 2022, Sec 3.2 "vector-wise
# quantization"): Linear8bitLt stores the weight as int8 (Int8Params.CB) and one fp32 absmax per
# output row (Int8Params.SCB). nf4: QLoRA (Dettmers et al. 2023, Sec 3): 4-bit NormalFloat, two
# values per byte, with one fp32 absmax per block of 64 weights (32/64 = 0.5 bits per parameter);
# with Double Quantization the absmax are themselves quantized to 8 bits in blocks of 256 with
# one fp32 constant per block (8/64 + 32/(64 x 256) = 0.127 bits per parameter).
BASE_WEIGHTS = ("bf16", "int8", "nf4")
NF4_BLOCK = 64  # bitsandbytes blocksize of 4-bit weights (QLoRA Sec 3)
NF4_DQ_BLOCK = 256  # blocksize of the second quantization of the absmax (Double Quantization)


def quantized_weight_bytes(base_weights: str, rows: int, cols: int, double_quant: bool) -> int:
    """Bytes of one frozen (rows x cols) Linear weight stored as `base_weights`, its
    quantization constants included."""
    numel = rows * cols
    if base_weights == "bf16":
        return 2 * numel
    if base_weights == "int8":
        return numel + 4 * rows  # int8 weight + fp32 absmax per row (SCB)
    if base_weights == "nf4":
        blocks = -(-numel // NF4_BLOCK)
        constants = blocks + 4 * -(-blocks // NF4_DQ_BLOCK) if double_quant else 4 * blocks
        return -(-numel // 2) + constants
    raise ValueError(f"unknown base_weights {base_weights!r}")


def quantization_constant_bits(base_weights: str, double_quant: bool) -> float:
    """Bits per parameter of the quantization constants (0.5 for nf4, 0.127 with double
    quantization: QLoRA Sec 3), for a weight of whole blocks; int8's depend on the row width."""
    if base_weights == "nf4":
        return 8 / NF4_BLOCK + 32 / (NF4_BLOCK * NF4_DQ_BLOCK) if double_quant else 32 / NF4_BLOCK
    return 0.0
