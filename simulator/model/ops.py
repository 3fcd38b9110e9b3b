"""Per-layer kernels (forward ops, and the backward derived from them) and the collectives the
parallel dimensions insert, pure functions.

* A block is described once, as segments (`layer_segments`): each holds its forward ops and the
  collectives (`Comm`) issued before / after them, forward and backward. `layer_ops` flattens
  the ops; `backward_ops` derives the backward kernels (every GEMM becomes two GEMMs of equal
  FLOPs, dgrad and wgrad).
* The attention builders live in `ops_attention`, the MLP / MoE ones in `ops_moe`, the
  primitives in `ops_common` (re-exported here).
* Bytes are ints; `dtype_bytes` is the element size of activations (2 for bf16/fp16).
"""

from __future__ import annotations

from dataclasses import replace

from simulator.model.architecture import Architecture, is_moe_layer
from simulator.model.kernels import DEFAULT_KERNELS, apply_kernels, cross_entropy_bytes
from simulator.model.ops_attention import (
    CP_COMMS,
    core_ops,
    cross_attention_segment,
    dense_widths,
    self_attention_segments,
)
from simulator.model.ops_common import (
    COMM_DIMS,
    COMM_OPS,
    Comm,
    Op,
    Segment,
    _check_ops_args,
    _matmul,
    _mem,
    _residual,
    local_seq,
    tp_in,
    tp_out,
    tp_segment,
)
from simulator.model.ops_moe import Dispatch, mlp_segment, moe_segments

__all__ = [
    "COMM_DIMS",
    "COMM_OPS",
    "CP_COMMS",
    "FLASH_BACKWARD_FACTOR",
    "Comm",
    "Dispatch",
    "Op",
    "Segment",
    "_check_ops_args",
    "_matmul",
    "_mem",
    "_residual",
    "backward_ops",
    "embedding_ops",
    "embedding_segment",
    "head_ops",
    "head_segment",
    "layer_ops",
    "layer_segments",
]

# FlashAttention-2 backward does 2.5x the forward FLOPs (it recomputes S = QK^T):
# flash-attention benchmarks/benchmark_flash_attention.py, flops(..., mode="bwd") = 2.5 * fwd.
FLASH_BACKWARD_FACTOR = 2.5


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
    return core_ops(prefix, b, s, s_kv, dense_widths(arch, tp), e, flash, dropout, causal)


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
    *,
    index: int | None = None,
    cp: int = 1,
    cp_comm: str = "ring",
    ep: int = 1,
    etp: int = 1,
    load_imbalance: float = 1.0,
    dispatch: Dispatch | None = None,
    kernels: str = DEFAULT_KERNELS,
) -> list[Segment]:
    """Forward ops of ONE block on one rank, by sub-layer (pre-norm order), with the collectives
    of tensor, context and expert parallelism.

    Matmul FLOPs of a GPT block: 24*b*s*h^2 + 4*b*s^2*h (Narayanan et al. 2021, Sec 5.1), split
    over tp ranks: column-parallel QKV and MLP-up GEMMs and row-parallel output projections
    (Shoeybi et al. 2019, Sec 3). Norms, dropout and residuals run on the full sequence on
    every tensor-parallel rank, or on s / tp tokens with sequence parallelism (Korthikanti et
    al. 2022, Sec 4.2.2). Cross-attention (enc-dec decoder): Q from the decoder, K/V from the
    encoder output (`encoder_seq_len`, default seq_len). GQA shrinks the K/V widths; MLA
    (arch.attention.kind "mla") has its own projections (ops_attention).

    Segments of a dense block: "attention" (cp > 1: "attention_in", "attention_core",
    "attention_out"; MLA with sequence parallelism first "attention_down"), "cross_attention"
    in an enc-dec decoder, "mlp". Block `index` of its stack is an MoE block when
    is_moe_layer(arch, index): its MLP is "moe_route", "experts", "moe_combine"
    (+ "shared_experts"), see ops_moe.moe_segments (ep: expert parallelism, etp: expert tensor
    parallelism, load_imbalance: the busiest rank's expert tokens over the mean). index None:
    the dense block. Every tensor-parallel sub-layer carries Megatron's f / g collectives of
    b x s/cp x h x dtype_bytes (ops_common.tp_segment). cp: context parallelism over the
    sequence, cp_comm: ring | all-gather | all-to-all (ops_attention). kernels: how the
    implementation runs the memory-bound kernels (model/kernels.py).
    """
    _check_ops_args(seq_len, micro_batch, stack, dtype_bytes)
    cross = arch.kind == "encoder-decoder" and stack == "decoder"
    if cp > 1 and arch.kind == "encoder-decoder":
        raise ValueError("cp: context parallelism is not modelled for encoder-decoder models")
    b, e = micro_batch, dtype_bytes
    segments = self_attention_segments(
        arch,
        b=b,
        s=seq_len,
        e=e,
        flash=flash_attention,
        dropout=dropout,
        causal=causal,
        tp=tp,
        sp=sp,
        cp=cp,
        cp_comm=cp_comm,
    )
    if cross:
        s_enc = seq_len if encoder_seq_len is None else encoder_seq_len
        segments.append(
            cross_attention_segment(
                arch,
                b=b,
                s=seq_len,
                s_enc=s_enc,
                e=e,
                flash=flash_attention,
                dropout=dropout,
                tp=tp,
                sp=sp,
            )
        )
    t = b * local_seq(seq_len, cp)
    tr = -(-t // tp) if sp else t
    if index is not None and is_moe_layer(arch, index):
        segments += moe_segments(
            arch,
            t=t,
            tr=tr,
            e=e,
            dropout=dropout,
            tp=tp,
            sp=sp,
            ep=ep,
            etp=etp,
            load_imbalance=load_imbalance,
            dispatch=dispatch,
        )
    else:
        segments.append(mlp_segment(arch, t=t, tr=tr, e=e, dropout=dropout, tp=tp, sp=sp))
    return [replace(seg, ops=apply_kernels(seg.ops, arch, kernels, e)) for seg in segments]


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
    *,
    index: int | None = None,
    cp: int = 1,
    cp_comm: str = "ring",
    ep: int = 1,
    etp: int = 1,
    load_imbalance: float = 1.0,
    dispatch: Dispatch | None = None,
    kernels: str = DEFAULT_KERNELS,
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
            index=index,
            cp=cp,
            cp_comm=cp_comm,
            ep=ep,
            etp=etp,
            load_imbalance=load_imbalance,
            dispatch=dispatch,
            kernels=kernels,
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
    *,
    cp: int = 1,
    kernels: str = DEFAULT_KERNELS,
) -> list[Op]:
    """Token (+ position, token-type) lookup and sum, dropout, optional embedding norm (the
    vocabulary-parallel lookup of each rank is summed by a tensor-parallel collective), on the
    rank's seq_len / cp tokens."""
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    t, h, e = micro_batch * local_seq(seq_len, cp), arch.hidden_size, dtype_bytes
    tr = -(-t // tp) if sp else t
    tables = 1 + (arch.position_embedding == "learned") + (arch.token_type_vocab > 0)
    io = (tables + 1) * tr * h * e + (tr * h if dropout else 0)  # read the rows, write the sum
    ops = [_mem("embedding", "residual", tr * h, io)]
    if arch.embedding_norm:
        ops.append(_mem("embedding_norm", "norm", tr * h, 2 * tr * h * e))
    return list(apply_kernels(tuple(ops), arch, kernels, e))


def head_ops(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    tp: int = 1,
    sp: bool = False,
    *,
    cp: int = 1,
    kernels: str = DEFAULT_KERNELS,
) -> list[Op]:
    """Final norm, logits GEMM (b*s/cp x V/tp x h, vocabulary-parallel), and softmax
    cross-entropy in fp32.

    The loss reads the logits at dtype_bytes and passes over them in fp32 as the
    implementation's kernels do (model/kernels.py cross_entropy_bytes: Megatron's
    vocab_parallel_cross_entropy, PyTorch's F.cross_entropy, or one compiled pass each way).
    An encoder without an LM head runs only the BERT pooler (GEMM on the b [CLS] tokens).
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    b, h, e, v = micro_batch, arch.hidden_size, dtype_bytes, arch.vocab_size // tp
    t = b * local_seq(seq_len, cp)
    tr = -(-t // tp) if sp else t
    ops = [_mem("final_norm", "norm", tr * h, 2 * tr * h * e)] if arch.final_norm else []
    if arch.lm_head:
        fwd, bwd = cross_entropy_bytes(kernels, e)
        loss = replace(_mem("cross_entropy", "ce", t * v, t * v * fwd), backward_bytes=t * v * bwd)
        ops += [_matmul("logits", t, v, h, e), loss]
    if arch.pooler:
        ops.append(_matmul("pooler", b, h, h, e))
    return list(apply_kernels(tuple(ops), arch, kernels, e))


def embedding_segment(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    dropout: bool = True,
    tp: int = 1,
    sp: bool = False,
    *,
    cp: int = 1,
    kernels: str = DEFAULT_KERNELS,
) -> Segment:
    """The embedding (embedding_ops) with the collective that sums the vocabulary-parallel
    lookups of the tp ranks after it: Megatron's VocabParallelEmbedding output goes through
    reduce_from_tensor_model_parallel_region (an all-reduce, identity in backward) or, with
    sequence parallelism, reduce_scatter_to_sequence_parallel_region (a reduce-scatter whose
    backward all-gathers the gradient): ops_common.tp_out."""
    ops = embedding_ops(
        arch, seq_len, micro_batch, dtype_bytes, dropout, tp, sp, cp=cp, kernels=kernels
    )
    size = micro_batch * local_seq(seq_len, cp) * arch.hidden_size * dtype_bytes
    after, bwd_before = tp_out(size, tp, sp)
    return Segment(name="embedding", ops=tuple(ops), after=after, bwd_before=bwd_before)


def head_segment(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    tp: int = 1,
    sp: bool = False,
    *,
    cp: int = 1,
    kernels: str = DEFAULT_KERNELS,
) -> Segment:
    """The head (head_ops) with the collective at the input of its column-parallel logits
    GEMM (ops_common.tp_in: with sequence parallelism an all-gather, reduce-scattered in
    backward; without, the input gradient all-reduced in backward)."""
    ops = head_ops(arch, seq_len, micro_batch, dtype_bytes, tp, sp, cp=cp, kernels=kernels)
    size = micro_batch * local_seq(seq_len, cp) * arch.hidden_size * dtype_bytes
    before, bwd_after = tp_in(size, tp, sp)
    return Segment(name="head", ops=tuple(ops), before=before, bwd_after=bwd_after)


def mtp_segment(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    tp: int = 1,
    sp: bool = False,
    *,
    cp: int = 1,
    kernels: str = DEFAULT_KERNELS,
) -> Segment:
    """What a multi-token-prediction module runs beside its transformer block (DeepSeek-V3,
    arXiv 2412.19437 Sec 2.2, Eq. 21-22): RMSNorm of the hidden state and of the next token's
    embedding, their concatenation projected by M (d x 2d), and the shared output head (final
    norm, logits, cross-entropy) for its extra prediction. The projection is split over tp like
    a sub-layer, with its f / g collectives (ops_common.tp_segment); the vocabulary-parallel
    logits as the main head's."""
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    h, e = arch.hidden_size, dtype_bytes
    t = micro_batch * local_seq(seq_len, cp)
    tr = -(-t // tp) if sp else t
    ops = list(
        apply_kernels(
            (
                _mem("mtp_norms", "norm", 2 * tr * h, 4 * tr * h * e),
                _matmul("mtp_eh_proj", t, h // tp, 2 * h, e),
            ),
            arch,
            kernels,
            e,
        )
    )
    ops += [
        replace(o, name=f"mtp_{o.name}")
        for o in head_ops(arch, seq_len, micro_batch, dtype_bytes, tp, sp, cp=cp, kernels=kernels)
    ]
    return tp_segment("mtp_head", ops, t * h * e, tp, sp)


def backward_ops(
    ops: list[Op],
    flash_backward_factor: float = FLASH_BACKWARD_FACTOR,
    *,
    frozen: frozenset[str] = frozenset(),
    rerun: frozenset[str] = frozenset(),
) -> list[Op]:
    """Backward of forward `ops`, in reverse order.

    Each GEMM C = A @ B, shape (m, n, k), becomes dA = dC @ B^T, shape (m, k, n), named
    `.dgrad`, and dB = A^T @ dC, shape (k, n, m), named `.wgrad` (for the weightless
    attention GEMMs both are input gradients): 2x forward FLOPs, the same bytes each
    (Narayanan et al. 2021 Sec 5.1: backward = 2x forward). A flash-attention kernel costs
    `flash_backward_factor` x its forward FLOPs (2.5 in hardware; model FLOPs use 2) and reads
    Q, K, V, O, dO while writing dQ, dK, dV: 2x forward bytes. Memory ops: 2x bytes and FLOPs
    (read the saved input and the output gradient, write the input gradient).

    Fine-tuning (model/lora.py): the GEMMs named in `frozen` multiply a frozen weight, so their
    backward is the dgrad alone (no weight gradient is computed); a frozen memory op (the
    embedding lookup of a frozen table) has no backward. The ops named in `rerun` run again,
    as they are, in the backward (a quantized weight is dequantized again for its dgrad).
    """
    out: list[Op] = []
    for op in reversed(ops):
        if op.name in rerun:
            out.append(
                Op(f"{op.name}.backward", op.kind, op.flops, op.bytes_moved, op.gemm, op.batch)
            )
        elif op.name in frozen and op.kind != "attention":
            if op.kind == "matmul" and op.gemm is not None:
                m, n, k = op.gemm
                out.append(
                    Op(op.name + ".dgrad", "matmul", op.flops, op.bytes_moved, (m, k, n), op.batch)
                )
        elif op.kind == "matmul" and op.gemm is not None:
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
                    attn=None if op.attn is None else op.attn._replace(backward=True),
                )
            )
        else:
            nbytes = 2 * op.bytes_moved if op.backward_bytes is None else op.backward_bytes
            out.append(Op(f"{op.name}.backward", op.kind, 2.0 * op.flops, nbytes))
    return out
