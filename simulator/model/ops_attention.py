"""The attention sub-layer of a block as segments: MHA / GQA or multi-head latent attention (MLA),
with the collectives of tensor and context parallelism, pure functions.

Context parallelism (cp) follows Megatron-Core on Transformer Engine
(transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py): the
sequence is split into 2 x cp chunks and rank r keeps chunks r and 2cp-1-r, so that the ranks'
causal workloads are balanced (megatron/training/utils.py get_batch_on_this_cp_rank: "we split
sequence into 2*CP ranks. Assuming CP=2, ... chunk_0 and chunk_3 are assigned to GPU0"): each
rank's causal attention is 1/cp of the whole causal work. Every other op runs on the rank's
seq_len / cp tokens (Megatron-Core Context Parallel Overview: "all modules except attention
... can work as usual without any changes").
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model.architecture import Architecture
from simulator.model.ops_common import (
    AttnShape,
    Comm,
    Comms,
    Op,
    Segment,
    _matmul,
    _mem,
    _norm,
    _residual,
    local_seq,
    tp_in,
    tp_out,
    tp_segment,
)

CP_COMMS = ("ring", "all-gather", "all-to-all")  # as simulator/spec/specs.py CP_COMMS


@dataclass(frozen=True)
class Widths:
    """One rank's attention core: its heads, the Q/K and V head sizes, and the widths (per
    token, all heads of the rank) of Q, the output O, K and V."""

    heads: int
    d_qk: int
    d_v: int
    q: int
    o: int
    k: int
    v: int


def dense_widths(arch: Architecture, tp: int) -> Widths:
    """MHA / GQA on num_heads / tp heads (Megatron splits heads over tp)."""
    d, q, kv = arch.head_size, arch.q_dim // tp, arch.kv_dim // tp
    return Widths(arch.num_heads // tp, d, d, q, q, kv, kv)


def mla_widths(arch: Architecture, tp: int) -> Widths:
    """MLA: each Q/K head is head_dim + rope_head_dim wide (the decoupled RoPE part, DeepSeek-V2
    Sec 2.1.3), each V head v_head_dim; K and V have as many heads as Q after the up
    projection (Megatron-Core multi_latent_attention.py: q_head_dim = qk_head_dim +
    qk_pos_emb_head_dim, k_channels = q_head_dim, v_channels = v_head_dim)."""
    a = arch.attention
    assert a is not None
    heads, d_v = arch.num_heads // tp, _v_head_dim(arch)
    d_qk = arch.head_size + a.rope_head_dim
    return Widths(heads, d_qk, d_v, heads * d_qk, heads * d_v, heads * d_qk, heads * d_v)


def _v_head_dim(arch: Architecture) -> int:
    a = arch.attention
    return arch.head_size if a is None or a.v_head_dim is None else a.v_head_dim


def core_ops(
    prefix: str,
    b: int,
    s: int,
    s_kv: int,
    w: Widths,
    e: int,
    flash: bool,
    dropout: bool,
    causal: bool,
) -> list[Op]:
    """The attention core of one rank: s queries against s_kv keys on w.heads heads."""
    if flash:
        # Dao et al. 2022 FlashAttention: QK^T (2*s*s_kv*d_qk) and PV (2*s*s_kv*d_v) per head
        # in one kernel, 4*b*s*s_kv*h_q*d forward when d_qk = d_v; a causal kernel skips the
        # masked half (flash-attention benchmark divides by 2).
        flops = 2.0 * b * s * s_kv * w.heads * (w.d_qk + w.d_v) / (2.0 if causal else 1.0)
        io = (b * s * (w.q + w.o) + b * s_kv * (w.k + w.v)) * e  # Q, O; K, V
        shape = AttnShape(s, s_kv, causal)
        return [
            Op(f"{prefix}flash_attention", "attention", flops, io, None, b * w.heads, attn=shape)
        ]
    scores = b * w.heads * s * s_kv
    ops = [
        _matmul(f"{prefix}attn_scores", s, s_kv, w.d_qk, e, b * w.heads),
        _mem(f"{prefix}softmax", "softmax", scores, 2 * scores * e),
    ]
    if dropout:
        ops.append(_mem(f"{prefix}attn_dropout", "dropout", scores, 2 * scores * e + scores))
    ops.append(_matmul(f"{prefix}attn_over_values", s, w.d_v, s_kv, e, b * w.heads))
    return ops


@dataclass(frozen=True)
class _Inputs:
    """The projections in front of the attention core and the collectives at their input."""

    down: list[Op]  # ops before the tensor-parallel input collectives (MLA with SP), or []
    proj: list[Op]  # norm and projections (MLA with SP: the up projections only)
    before: Comms  # forward, at the input of `proj`
    bwd_after: Comms  # backward, after `proj`'s backward
    widths: Widths


def _dense_inputs(arch: Architecture, t: int, tr: int, e: int, tp: int, sp: bool) -> _Inputs:
    w = dense_widths(arch, tp)
    h = arch.hidden_size
    proj = [_norm("attn_norm", tr, h, e), _matmul("qkv_proj", t, w.q + 2 * w.k, h, e)]
    if arch.qk_norm:
        # Qwen3: an RMSNorm over head_dim on every Q and K head (Megatron-Core qk_layernorm).
        proj.append(_mem("qk_norm", "norm", t * (w.q + w.k), 2 * t * (w.q + w.k) * e))
    before, bwd_after = tp_in(t * h * e, tp, sp)
    return _Inputs([], proj, before, bwd_after, w)


def _mla_inputs(arch: Architecture, t: int, tr: int, e: int, tp: int, sp: bool) -> _Inputs:
    """Megatron-Core MLASelfAttention (multi_latent_attention.py): the q / kv down projections
    (h -> q_lora_rank, h -> kv_lora_rank + rope_head_dim) are replicated linears (TELinear
    parallel_mode "duplicated") that run on the rank's own tokens, s/tp of them with sequence
    parallelism; their RMSNorms (q_layernorm, kv_layernorm) likewise. The up projections
    (q_lora_rank -> heads x (head_dim + rope_head_dim), kv_lora_rank -> heads x (head_dim +
    v_head_dim)) are column-parallel, splitting the heads; without q_lora_rank a
    column-parallel q projection reads the hidden states directly. With sequence parallelism
    the column-parallel inputs are all-gathered (the q latent, or the hidden states without
    q_lora_rank; the kv latent; and k_pos_emb, gather_from_sequence_parallel_region) instead of
    the hidden states; without it their input gradients are all-reduced (the replicated
    k_pos_emb path needs none)."""
    a = arch.attention
    assert a is not None
    w = mla_widths(arch, tp)
    h, r, kv_r = arch.hidden_size, a.rope_head_dim, a.kv_lora_rank
    d_kv_up = w.heads * (arch.head_size + w.d_v)
    down = [_norm("attn_norm", tr, h, e)]
    if a.q_lora_rank is not None:
        q_r = a.q_lora_rank
        down += [_matmul("q_down_proj", tr, q_r, h, e), _norm("q_norm", tr, q_r, e)]
        up = [_matmul("q_up_proj", t, w.q, q_r, e)]
        q_in = q_r
    else:
        up = [_matmul("q_proj", t, w.q, h, e)]
        q_in = h
    down += [_matmul("kv_down_proj", tr, kv_r + r, h, e), _norm("kv_norm", tr, kv_r, e)]
    up.append(_matmul("kv_up_proj", t, d_kv_up, kv_r, e))
    if tp == 1:
        return _Inputs([], down + up, (), (), w)
    if sp:
        sizes = [t * x * e for x in (q_in, kv_r, r) if x]
        gathers = tuple(Comm("all_gather", "tp", z) for z in sizes)
        scatters = tuple(Comm("reduce_scatter", "tp", z) for z in sizes)
        return _Inputs(down, up, gathers, scatters, w)
    reduces = tuple(Comm("all_reduce", "tp", t * x * e) for x in (q_in, kv_r))
    return _Inputs([], down + up, (), reduces, w)


def _cp_core(
    arch: Architecture,
    w: Widths,
    b: int,
    s: int,
    cp: int,
    cp_comm: str,
    e: int,
    flash: bool,
    dropout: bool,
    causal: bool,
    tp: int,
) -> Segment:
    """The attention core of one context-parallel rank and its cp collectives."""
    s_loc = s // cp
    kv_block = b * s_loc * (w.k + w.v) * e  # this rank's K and V
    if cp_comm == "ring":
        # TE AttnFuncWithCPAndKVP2P: K/V blocks go around the cp ring, cp-1 sends, each
        # overlapped with the attention of the block already held. Backward sends K/V and
        # the accumulated dK/dV together (p2p_comm_buffers hold [kv, dkv]): twice the bytes.
        ops = core_ops("", b, s_loc, s, w, e, flash, dropout, causal)
        fwd = Comm("ring_exchange", "cp", kv_block, steps=cp - 1, overlapped=True)
        bwd = Comm("ring_exchange", "cp", 2 * kv_block, steps=cp - 1, overlapped=True)
        return Segment(name="attention_core", ops=tuple(ops), before=(fwd,), bwd_before=(bwd,))
    if cp_comm == "all-gather":
        # Llama 3 (Dubey et al. 2024, Sec 3.3.2), all-gather based context parallelism: the
        # K and V of the whole sequence are all-gathered, then the rank's local Q chunk
        # attends to them. TE AttnFuncWithCPAndKVAllGather keeps only the local K/V for
        # backward, so its backward all-gathers them again and reduce-scatters dK, dV.
        ops = core_ops("", b, s_loc, s, w, e, flash, dropout, causal)
        gather = (
            Comm("all_gather", "cp", b * s * w.k * e),
            Comm("all_gather", "cp", b * s * w.v * e),
        )
        scatter = (
            Comm("reduce_scatter", "cp", b * s * w.k * e),
            Comm("reduce_scatter", "cp", b * s * w.v * e),
        )
        return Segment(
            name="attention_core",
            ops=tuple(ops),
            before=gather,
            bwd_before=gather,
            bwd_after=scatter,
        )
    # DeepSpeed-Ulysses (Jacobs et al. 2023, Sec 3.1): all-to-all of Q, K, V turns the
    # rank's s/cp tokens x heads/tp into all s tokens x heads/(tp*cp); the attention runs on
    # those heads; an all-to-all of the output turns it back. Backward mirrors each one.
    if arch.num_heads % (tp * cp):
        raise ValueError(
            f"cp_comm: all-to-all needs num_heads {arch.num_heads} divisible by tp x cp = {tp * cp}"
        )
    ops = core_ops("", b, s, s, _per_cp(arch, w, tp, cp), e, flash, dropout, causal)
    qkv = tuple(Comm("all_to_all", "cp", b * s_loc * x * e) for x in (w.q, w.k, w.v))
    out = (Comm("all_to_all", "cp", b * s_loc * w.o * e),)
    return Segment(
        name="attention_core", ops=tuple(ops), before=qkv, after=out, bwd_before=out, bwd_after=qkv
    )


def _per_cp(arch: Architecture, w: Widths, tp: int, cp: int) -> Widths:
    """A rank's heads after the Ulysses all-to-all: heads / (tp x cp); K/V widths split the
    same way (a GQA model with fewer K/V heads than tp x cp gets a fraction, as tp does)."""
    if arch.mla:
        return Widths(w.heads // cp, w.d_qk, w.d_v, w.q // cp, w.o // cp, w.k // cp, w.v // cp)
    d, q, kv = arch.head_size, arch.q_dim // (tp * cp), arch.kv_dim // (tp * cp)
    return Widths(arch.num_heads // (tp * cp), d, d, q, q, kv, kv)


def self_attention_segments(
    arch: Architecture,
    *,
    b: int,
    s: int,
    e: int,
    flash: bool,
    dropout: bool,
    causal: bool,
    tp: int,
    sp: bool,
    cp: int,
    cp_comm: str,
) -> list[Segment]:
    """The self-attention sub-layer of one block on one rank.

    cp == 1: one segment "attention" (norm, projections, core, output projection, residual)
    with the tensor-parallel collectives at its ends. cp > 1: "attention_in" (norm and
    projections), "attention_core" (the cp collectives), "attention_out" (output projection
    and residual). MLA with sequence parallelism and tp > 1 first has "attention_down" (the
    replicated down projections on the rank's s/tp tokens), before the all-gathers of the
    latents. The tensor-parallel buffer is b x s/cp x h.
    """
    if cp_comm not in CP_COMMS:
        raise ValueError(f"cp_comm: {cp_comm!r} is not one of {CP_COMMS}")
    s_loc = local_seq(s, cp)
    h, t = arch.hidden_size, b * s_loc
    tr = -(-t // tp) if sp else t
    mla = arch.mla
    inp = (_mla_inputs if mla else _dense_inputs)(arch, t, tr, e, tp, sp)
    post = [
        _matmul("attn_out_proj", t, h, inp.widths.o, e),
        _residual("attn_residual", tr, h, e, dropout),
    ]
    after, bwd_before = tp_out(t * h * e, tp, sp)
    segments = [Segment(name="attention_down", ops=tuple(inp.down))] if inp.down else []
    if cp == 1:
        core = core_ops("", b, s, s, inp.widths, e, flash, dropout, causal)
        ops = tuple(inp.proj + core + post)
        return segments + [
            Segment(
                name="attention",
                ops=ops,
                before=inp.before,
                after=after,
                bwd_before=bwd_before,
                bwd_after=inp.bwd_after,
            )
        ]
    return segments + [
        Segment(
            name="attention_in", ops=tuple(inp.proj), before=inp.before, bwd_after=inp.bwd_after
        ),
        _cp_core(arch, inp.widths, b, s, cp, cp_comm, e, flash, dropout, causal, tp),
        Segment(name="attention_out", ops=tuple(post), after=after, bwd_before=bwd_before),
    ]


def cross_attention_segment(
    arch: Architecture,
    *,
    b: int,
    s: int,
    s_enc: int,
    e: int,
    flash: bool,
    dropout: bool,
    tp: int,
    sp: bool,
) -> Segment:
    """Cross-attention of an enc-dec decoder block: Q from the decoder, K/V from the encoder
    output (s_enc tokens); never causal."""
    h, t = arch.hidden_size, b * s
    tr = -(-t // tp) if sp else t
    w = dense_widths(arch, tp)
    ops = [
        _norm("cross_norm", tr, h, e),
        _matmul("cross_q_proj", t, w.q, h, e),
        _matmul("cross_kv_proj", b * s_enc, 2 * w.k, h, e),
    ]
    ops += core_ops("cross_", b, s, s_enc, w, e, flash, dropout, False)
    ops += [_matmul("cross_out_proj", t, h, w.q, e), _residual("cross_residual", tr, h, e, dropout)]
    return tp_segment("cross_attention", ops, t * h * e, tp, sp)
