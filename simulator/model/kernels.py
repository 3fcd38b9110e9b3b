"""Memory-bound kernels as an implementation runs them (`training.kernels`), pure functions.

The layer builders (ops, ops_attention, ops_moe) describe each norm, activation and loss as
one kernel that reads its inputs and writes its output once. What runs depends on the code:

* "megatron": Megatron-LM / Megatron-Core / NeMo with Transformer Engine or Apex fused kernels
  (LayerNorm / RMSNorm, `apply_rope_fusion`, `bias_swiglu_fusion`): one pass each, as the
  builders count. The loss is Megatron's `vocab_parallel_cross_entropy` on `logits.float()`
  (megatron/core/tensor_parallel/cross_entropy.py), which passes over the fp32 logits in place:
  max, subtract, exp, sum, divide (the softmax it saves); its backward multiplies the saved
  softmax in place and casts back. Per logit: forward e + 4 (cast) + 4 + 8 + 8 + 4 + 8 bytes,
  backward 8 + 4 + e.
* "eager": PyTorch modules run op by op (Hugging Face transformers, llm-foundry, torchtitan,
  fms-fsdp without torch.compile), each op a kernel that reads and writes its tensors:
  - RMSNorm (transformers LlamaRMSNorm; torch.nn.RMSNorm's composite): `x.to(float32)` (e + 4
    bytes per element), `pow(2)` (8), `mean` (4), `x * rsqrt(var + eps)` (8), `.to(dtype)`
    (4 + e), `weight * x` (2e): 4e + 28 bytes per element where a fused kernel moves 2e.
    LayerNorm is one native kernel (F.layer_norm) either way.
  - RoPE (transformers apply_rotary_pos_emb: `q * cos + rotate_half(q) * sin`, rotate_half a
    negation of one half and a cat): e (neg) + 2e (cat) + 2e + 2e (the two products) + 3e
    (the add) = 10e per element of Q and K, where a fused kernel moves 2e (torchtitan's
    complex-number RoPE moves 2e + 16, the same for bf16).
  - SwiGLU (`act_fn(gate) * up`): the SiLU (2e) and the product (3e) per element: 5e where a
    fused kernel moves 3e.
  - The loss: F.cross_entropy on fp32 logits (transformers' `logits.float()`, torchtitan's
    `.float()`, autocast's fp32 log_softmax): forward the cast (e + 4) and log_softmax (8);
    backward nll_loss's dense gradient (4), log_softmax's backward (12) and the cast back (4 + e).
* "compiled": torch.compile (Inductor fuses each chain of pointwise ops and reductions into one
  kernel; Ansel et al. 2024, "PyTorch 2", Sec 4): one pass each, and the loss as one pass each
  way (read the logits, write fp32 log-probabilities; read them, write the gradient).

Every backward of a norm, RoPE or activation moves twice its forward's bytes (ops.backward_ops).
Activation memory is counted as the fused kernels save it: eager's fp32 intermediates kept for
the backward are not in the memory model.
"""

from __future__ import annotations

from dataclasses import replace

from simulator.model.architecture import Architecture
from simulator.model.ops_common import _EW_FLOPS, Op
from simulator.model.precision import FP32_BYTES

KERNELS = ("eager", "megatron", "compiled")
DEFAULT_KERNELS = "compiled"  # the builders' one-pass kernels, for direct callers of ops

# The norms the builders emit: each `_norm` op moves 2e bytes per element (read and write).
NORM_OPS = frozenset(
    (
        "attn_norm",
        "mlp_norm",
        "final_norm",
        "cross_norm",
        "embedding_norm",
        "qk_norm",
        "q_norm",
        "kv_norm",
        "mtp_norms",
    )
)


def default_kernels(framework: str) -> str:
    """Megatron's fused kernels under framework megatron; PyTorch's eager modules elsewhere."""
    return "megatron" if framework == "megatron" else "eager"


def cross_entropy_bytes(kernels: str, e: int) -> tuple[int, int]:
    """(forward, backward) bytes per logit of the loss (module doc)."""
    if kernels == "megatron":
        # cast (write 4), max (read 4), subtract, exp (8 each), sum (4), divide (8); the
        # backward's in-place multiply (8) and the cast back (read 4).
        return e + 9 * FP32_BYTES, 3 * FP32_BYTES + e
    if kernels == "eager":
        # cast (write 4), log_softmax (8); nll_loss's gradient (4), log_softmax's (12), the
        # cast back (read 4).
        return e + 3 * FP32_BYTES, 5 * FP32_BYTES + e
    return e + FP32_BYTES, 2 * (e + FP32_BYTES)


def apply_kernels(ops: tuple[Op, ...], arch: Architecture, kernels: str, e: int) -> tuple[Op, ...]:
    """A layer's ops as `kernels` runs them: RoPE after the QKV projection (rotary models),
    and the norms and gated activations at the implementation's bytes (module doc)."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels: {kernels!r} is not one of {KERNELS}")
    eager = kernels == "eager"
    out: list[Op] = []
    for op in ops:
        if eager and op.name in NORM_OPS and arch.norm == "rmsnorm":
            elements = round(op.flops / _EW_FLOPS["norm"])
            op = replace(op, bytes_moved=op.bytes_moved + elements * (2 * e + 7 * FP32_BYTES))
        elif eager and op.name.endswith("_act") and arch.gated:
            elements = round(op.flops / _EW_FLOPS["act"])
            op = replace(op, bytes_moved=op.bytes_moved + 2 * e * elements)
        out.append(op)
        if op.name == "qkv_proj" and arch.position_embedding == "rotary" and op.gemm:
            t, n, _ = op.gemm
            qk = n * (arch.q_dim + arch.kv_dim) // (arch.q_dim + 2 * arch.kv_dim)
            per = 10 * e if eager else 2 * e
            out.append(Op("rope", "memory", _EW_FLOPS["rope"] * t * qk, t * qk * per))
    return tuple(out)
