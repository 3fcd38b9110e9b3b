"""Per-layer kernels (forward ops, and the backward derived from them), pure functions.

* Forward ops only come from `layer_ops`/`embedding_ops`/`head_ops`; `backward_ops` derives
  the backward pass (every GEMM becomes two GEMMs of equal FLOPs, dgrad and wgrad).
* Bytes are ints; `dtype_bytes` is the element size of activations (2 for bf16/fp16).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model.architecture import STACKS, Architecture, _check_int

# FlashAttention-2 backward does 2.5x the forward FLOPs (it recomputes S = QK^T):
# flash-attention benchmarks/benchmark_flash_attention.py, flops(..., mode="bwd") = 2.5 * fwd.
FLASH_BACKWARD_FACTOR = 2.5
# Rough FLOPs per element of the memory-bound ops; excluded from model FLOPs, as in the
# llm-foundry benchmarking README ("All FLOP calculations exclude ... normalization,
# activation, and residuals"). Only their bytes matter for timing.
_EW_FLOPS = {"norm": 5.0, "softmax": 5.0, "dropout": 1.0, "residual": 1.0, "act": 8.0, "ce": 5.0}


@dataclass(frozen=True)
class Op:
    """One forward (or backward) kernel of a layer.

    kind "matmul": gemm = (m, n, k), flops = 2*m*n*k*batch (batch = b*heads for attention).
    kind "attention": one fused flash-attention kernel. kind "memory": element-wise / norm /
    softmax / reduction ops, whose time is bytes_moved (reads + writes) over bandwidth.
    """

    name: str
    kind: str
    flops: float
    bytes_moved: int
    gemm: tuple[int, int, int] | None = None
    batch: int = 1


def _matmul(name: str, m: int, n: int, k: int, e: int, batch: int = 1) -> Op:
    # C[m,n] = A[m,k] @ B[k,n]: 2*m*n*k FLOPs; reads A and B, writes C.
    return Op(
        name,
        "matmul",
        2.0 * m * n * k * batch,
        (m * k + k * n + m * n) * e * batch,
        (m, n, k),
        batch,
    )


def _mem(name: str, kind: str, elements: int, bytes_moved: int) -> Op:
    return Op(name, "memory", _EW_FLOPS[kind] * elements, bytes_moved)


def _residual(name: str, t: int, h: int, e: int, dropout: bool) -> Op:
    # dropout(x) + residual: read two t x h tensors, write one, plus a 1-byte mask.
    return _mem(name, "residual", t * h, 3 * t * h * e + (t * h if dropout else 0))


def _attention_ops(
    arch: Architecture,
    prefix: str,
    b: int,
    s: int,
    s_kv: int,
    e: int,
    flash: bool,
    dropout: bool,
    causal: bool,
    tp: int = 1,
) -> list[Op]:
    """The attention core on this rank's num_heads / tp heads (Megatron splits heads over tp)."""
    heads, d = arch.num_heads // tp, arch.head_size
    q_dim, kv_dim = arch.q_dim // tp, arch.kv_dim // tp
    if flash:
        # Dao et al. 2022 FlashAttention: QK^T and PV in one kernel, 4*b*s*s_kv*h_q*d forward;
        # a causal kernel skips the masked half (flash-attention benchmark divides by 2).
        flops = 4.0 * b * s * s_kv * heads * d / (2.0 if causal else 1.0)
        io = (2 * b * s * q_dim + 2 * b * s_kv * kv_dim) * e  # Q, O; K, V
        return [Op(f"{prefix}flash_attention", "attention", flops, io, None, b * heads)]
    scores = b * heads * s * s_kv
    ops = [
        _matmul(f"{prefix}attn_scores", s, s_kv, d, e, b * heads),
        _mem(f"{prefix}softmax", "softmax", scores, 2 * scores * e),
    ]
    if dropout:
        ops.append(_mem(f"{prefix}attn_dropout", "dropout", scores, 2 * scores * e + scores))
    ops.append(_matmul(f"{prefix}attn_over_values", s, d, s_kv, e, b * heads))
    return ops


@dataclass(frozen=True, kw_only=True)
class Segment:
    """Part of a block between two tensor-parallel communication points: the attention (or
    cross-attention) sub-layer, or the MLP. Megatron's f/g operators sit at its two ends."""

    name: str
    ops: tuple[Op, ...]


def layer_segments(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    flash_attention: bool,
    stack: str = "decoder",
    dtype_bytes: int = 2,
    dropout: bool = True,
    causal: bool = False,
    encoder_seq_len: int | None = None,
    tp: int = 1,
    sp: bool = False,
) -> list[Segment]:
    """Forward ops of ONE block on one tensor-parallel rank, by sub-layer (pre-norm order).

    Matmul FLOPs of a GPT block: 24*b*s*h^2 + 4*b*s^2*h (Narayanan et al. 2021, Sec 5.1), split
    over tp ranks: column-parallel QKV and MLP-up GEMMs and row-parallel output projections
    (Shoeybi et al. 2019, Sec 3). Norms, dropout and residuals run on the full sequence on
    every tensor-parallel rank, or on s / tp tokens with sequence parallelism (Korthikanti et
    al. 2022, Sec 4.2.2). Cross-attention (enc-dec decoder): Q from the decoder, K/V from the
    encoder output (`encoder_seq_len`, default seq_len). GQA shrinks the K/V widths.
    """
    _check_ops_args(seq_len, micro_batch, stack, dtype_bytes)
    b, s, e, h = micro_batch, seq_len, dtype_bytes, arch.hidden_size
    f, q, kv = arch.ffn_hidden_size // tp, arch.q_dim // tp, arch.kv_dim // tp
    t = b * s
    tr = -(-t // tp) if sp else t  # tokens each rank's element-wise ops see
    s_enc = seq_len if encoder_seq_len is None else encoder_seq_len
    attn = [
        _mem("attn_norm", "norm", tr * h, 2 * tr * h * e),
        _matmul("qkv_proj", t, q + 2 * kv, h, e),
    ]
    attn += _attention_ops(arch, "", b, s, s, e, flash_attention, dropout, causal, tp)
    attn += [_matmul("attn_out_proj", t, h, q, e), _residual("attn_residual", tr, h, e, dropout)]
    segments = [Segment(name="attention", ops=tuple(attn))]
    if arch.kind == "encoder-decoder" and stack == "decoder":
        cross = [
            _mem("cross_norm", "norm", tr * h, 2 * tr * h * e),
            _matmul("cross_q_proj", t, q, h, e),
            _matmul("cross_kv_proj", b * s_enc, 2 * kv, h, e),
        ]
        cross += _attention_ops(arch, "cross_", b, s, s_enc, e, flash_attention, dropout, False, tp)
        cross += [
            _matmul("cross_out_proj", t, h, q, e),
            _residual("cross_residual", tr, h, e, dropout),
        ]
        segments.append(Segment(name="cross_attention", ops=tuple(cross)))
    mlp = [_mem("mlp_norm", "norm", tr * h, 2 * tr * h * e)]
    if arch.gated:
        mlp += [
            _matmul("mlp_gate", t, f, h, e),
            _matmul("mlp_up", t, f, h, e),
            _mem("mlp_act", "act", t * f, 3 * t * f * e),
        ]  # read gate, up; write product
    else:
        mlp += [_matmul("mlp_up", t, f, h, e), _mem("mlp_act", "act", t * f, 2 * t * f * e)]
    mlp += [_matmul("mlp_down", t, h, f, e), _residual("mlp_residual", tr, h, e, dropout)]
    segments.append(Segment(name="mlp", ops=tuple(mlp)))
    return segments


def layer_ops(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    flash_attention: bool,
    stack: str = "decoder",
    dtype_bytes: int = 2,
    dropout: bool = True,
    causal: bool = False,
    encoder_seq_len: int | None = None,
    tp: int = 1,
    sp: bool = False,
) -> list[Op]:
    """Forward ops of ONE block, in order (the segments of `layer_segments` concatenated)."""
    return [
        op
        for seg in layer_segments(
            arch,
            seq_len,
            micro_batch,
            flash_attention,
            stack,
            dtype_bytes,
            dropout,
            causal,
            encoder_seq_len,
            tp,
            sp,
        )
        for op in seg.ops
    ]


def embedding_ops(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    dropout: bool = True,
    tp: int = 1,
    sp: bool = False,
) -> list[Op]:
    """Token (+ position, token-type) lookup and sum, dropout, optional embedding norm (the
    vocabulary-parallel lookup of each rank is summed by a tensor-parallel collective)."""
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    t, h, e = micro_batch * seq_len, arch.hidden_size, dtype_bytes
    tr = -(-t // tp) if sp else t
    tables = 1 + (arch.position_embedding == "learned") + (arch.token_type_vocab > 0)
    io = (tables + 1) * tr * h * e + (tr * h if dropout else 0)  # read the rows, write the sum
    ops = [_mem("embedding", "residual", tr * h, io)]
    if arch.embedding_norm:
        ops.append(_mem("embedding_norm", "norm", tr * h, 2 * tr * h * e))
    return ops


def head_ops(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    tp: int = 1,
    sp: bool = False,
) -> list[Op]:
    """Final norm, logits GEMM (b*s x V/tp x h, vocabulary-parallel), and softmax cross-entropy
    in fp32.

    The loss reads the logits at dtype_bytes and writes fp32 probabilities (Megatron
    vocab_parallel_cross_entropy upcasts to float). An encoder without an LM head runs only
    the BERT pooler (GEMM on the b [CLS] tokens).
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    b, h, e, v = micro_batch, arch.hidden_size, dtype_bytes, arch.vocab_size // tp
    t = b * seq_len
    tr = -(-t // tp) if sp else t
    ops = [_mem("final_norm", "norm", tr * h, 2 * tr * h * e)] if arch.final_norm else []
    if arch.lm_head:
        ops += [_matmul("logits", t, v, h, e), _mem("cross_entropy", "ce", t * v, t * v * (e + 4))]
    if arch.pooler:
        ops.append(_matmul("pooler", b, h, h, e))
    return ops


def backward_ops(ops: list[Op], flash_backward_factor: float = FLASH_BACKWARD_FACTOR) -> list[Op]:
    """Backward of forward `ops`, in reverse order.

    Each GEMM C = A @ B, shape (m, n, k), becomes dA = dC @ B^T, shape (m, k, n), named
    `.dgrad`, and dB = A^T @ dC, shape (k, n, m), named `.wgrad` (for the weightless
    attention GEMMs both are input gradients): 2x forward FLOPs, the same bytes each
    (Narayanan et al. 2021 Sec 5.1: backward = 2x forward). A flash-attention kernel costs
    `flash_backward_factor` x its forward FLOPs (2.5 in hardware; model FLOPs use 2) and reads
    Q, K, V, O, dO while writing dQ, dK, dV: 2x forward bytes. Memory ops: 2x bytes and FLOPs
    (read the saved input and the output gradient, write the input gradient).
    """
    out: list[Op] = []
    for op in reversed(ops):
        if op.kind == "matmul" and op.gemm is not None:
            m, n, k = op.gemm
            for suffix, gemm in ((".dgrad", (m, k, n)), (".wgrad", (k, n, m))):
                out.append(Op(op.name + suffix, "matmul", op.flops, op.bytes_moved, gemm, op.batch))
        elif op.kind == "attention":
            out.append(
                Op(
                    f"{op.name}.backward",
                    "attention",
                    op.flops * flash_backward_factor,
                    2 * op.bytes_moved,
                    None,
                    op.batch,
                )
            )
        else:
            out.append(Op(f"{op.name}.backward", op.kind, 2.0 * op.flops, 2 * op.bytes_moved))
    return out


def _check_ops_args(seq_len: int, micro_batch: int, stack: str, dtype_bytes: int) -> None:
    _check_int("seq_len", seq_len, minimum=1)
    _check_int("micro_batch", micro_batch, minimum=1)
    _check_int("dtype_bytes", dtype_bytes, minimum=1)
    if stack not in STACKS:
        raise ValueError(f"stack: {stack!r} is not one of {STACKS}")
