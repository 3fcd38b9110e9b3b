"""Activation memory per block and at the model's edges (Korthikanti et al. 2022), pure functions,
on one rank of tensor, context and expert parallelism (activations_moe: MLA and MoE terms)."""

from __future__ import annotations

import functools

from simulator.model.activations_moe import mla_attention_terms, moe_mlp_terms
from simulator.model.architecture import Architecture, is_moe_layer
from simulator.model.ops_attention import CP_COMMS
from simulator.model.ops_common import _check_ops_args, local_seq
from simulator.model.precision import CHECKPOINTING

# Megatron-Core's --recompute-modules (transformer_config.py `recompute_modules`): the
# submodules `selective` recomputes; its default, the attention core, is Korthikanti et al.
# 2022's selective recompute (Sec 4.2).
RECOMPUTE_MODULES = (
    "core_attn",
    "layernorm",
    "moe_act",
    "mla_up_proj",
    "mlp",
    "moe",
    "shared_experts",
)
DEFAULT_RECOMPUTE = ("core_attn",)


def _split(shared: int, replicated: int, tp: int, sp: bool) -> int:
    """Bytes on one rank: `shared` terms are split over tp ranks; `replicated` terms are kept
    whole by plain tensor parallelism and split too with sequence parallelism."""
    return shared // tp + (replicated // tp if sp else replicated)


# Memoized (functools.lru_cache, bounded): pure functions of a frozen, hashable Architecture and
# scalars, asked for the same block, embedding and head again and again (every pipeline stage,
# memory check and estimate of a layout search, every step of a sweep).
@functools.lru_cache(maxsize=4096)
def activation_bytes_per_layer(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    checkpointing: str,
    flash_attention: bool,
    dtype_bytes: int = 2,
    stack: str = "decoder",
    dropout: bool = True,
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
    recompute: tuple[str, ...] = DEFAULT_RECOMPUTE,
    gemm_input_bytes: int | None = None,
) -> int:
    """Activations one block keeps for backward, per rank.

    Korthikanti et al. 2022 (arXiv 2205.05198) Eq. (1): s*b*h*(34 + 5*a*s/h) bytes for
    16-bit activations, built term by term from Sec 4.1 so that it generalizes:
      attention: QKV input 2sbh; Q and K 2sb*q_dim + 2sb*kv_dim (4sbh for MHA); softmax
        output 2as^2b; dropout mask as^2b; dropout output 2as^2b; V 2sb*kv_dim;
        output-projection input 2sb*q_dim; dropout mask sbh       -> 11sbh + 5as^2b
      MLP: input 2sbh; activation input 2sbf (gated: gate and up, 4sbf); activation output
        2sbf; dropout mask sbh                                    -> 19sbh for f = 4h
      two norm inputs 4sbh                                        -> total 34sbh + 5as^2b
    "2" is dtype_bytes; masks are 1 byte. dropout=False drops the masks and the dropout
    output (the softmax output feeds attention-over-V). The as^2 terms are not stored with
    flash attention (recomputed in the kernel) nor with selective recompute (Sec 4.2).
    Tensor parallelism (Sec 4.2.1, Eq. 2) splits the Q/K/V, score, out-proj-input and MLP
    terms over t ranks, and keeps the 10sbh of norm inputs, block and MLP inputs and dropout
    masks on every rank: sbh(10 + 24/t + 5as/(ht)); sequence parallelism (Sec 4.2.2, Eq. 4)
    splits those too: sbh(34/t + 5as/(ht)). "full" keeps only the block input, 2sbh (Sec 4.2,
    Table 2); with sequence parallelism that input is the rank's s/t slice (Megatron-Core
    checkpoints the sequence-parallel hidden states), 2sbh/t.
    Enc-dec decoder blocks add a cross-attention set of terms (its K/V input, the encoder
    output, is shared by all decoder blocks and not counted here). A QK-norm (Qwen3) keeps
    its Q and K inputs, 2sb*(q_dim + kv_dim).

    Context parallelism (cp) gives the rank s/cp tokens: every term counts s/cp, and the
    score terms a*s^2*b become a*(s/cp)*s*b (the rank's queries against all keys). All three
    cp_comm schemes keep 1/cp of Q, K and V per rank (ring and all-gather the local K/V,
    Transformer Engine re-sending or re-gathering them in backward; all-to-all, Ulysses,
    all s tokens of heads/cp), so cp_comm does not change the count. MLA attention and
    MoE MLPs (block `index` with is_moe_layer; ep / etp / load_imbalance as in
    ops.layer_segments) have their own terms: activations_moe.

    `gemm_input_bytes` (None: dtype_bytes): the element size a GEMM keeps its input in for the
    weight gradient; fp8-mixed keeps the fp8 cast, 1 byte (Transformer Engine's Linear, and
    LayerNormLinear's normalized output, saved quantized). The terms that are a GEMM's input
    only take it: the QKV and MLP inputs (the norm outputs) and the MLP's activation output.
    The output projection's input is also flash attention's output, which the attention keeps
    in 16 bits for its own backward: under fp8 the projection's fp8 copy adds to it. A
    checkpointed MLP (recompute mlp) keeps its 16-bit input as the checkpoint's.

    `recompute`: with selective checkpointing, the Megatron-Core submodules recomputed in
    backward (--recompute-modules; the default, core_attn, is the paragraph above), each
    dropping the terms it saved (Megatron-Core transformer_layer.py, mlp.py, experts.py,
    moe_layer.py, multi_latent_attention.py):
      core_attn: the as^2 score terms (Sec 4.2)
      layernorm: the two norm outputs, kept as the QKV (MLA: down-projection) input and the
        MLP (MoE: router / permutation) input, 2 x e*sbh replicated; output-discarding
        checkpointing re-runs the norms from their inputs, which stay (the residual stream)
      mlp: a dense MLP's internals, its fc1 output(s) and activation output (the MLP input,
        the checkpoint's input, stays); moe_act, moe, shared_experts, mla_up_proj:
        activations_moe.
    """
    _check_ops_args(seq_len, micro_batch, stack, dtype_bytes)
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing: {checkpointing!r} is not one of {CHECKPOINTING}")
    if cp_comm not in CP_COMMS:
        raise ValueError(f"cp_comm: {cp_comm!r} is not one of {CP_COMMS}")
    if cp > 1 and arch.kind == "encoder-decoder":
        raise ValueError("cp: context parallelism is not modelled for encoder-decoder models")
    s, b, e, h, f = (
        local_seq(seq_len, cp),
        micro_batch,
        dtype_bytes,
        arch.hidden_size,
        arch.ffn_hidden_size,
    )
    sbh = s * b * h
    if checkpointing == "full":
        return _split(0, e * sbh, tp, sp)
    sel = set(recompute) if checkpointing == "selective" else set()
    unknown = sel - set(RECOMPUTE_MODULES)
    if unknown:
        raise ValueError(f"recompute: {sorted(unknown)} not among {RECOMPUTE_MODULES}")
    keep_scores = not flash_attention and (
        checkpointing == "none" or (checkpointing == "selective" and "core_attn" not in sel)
    )
    mask = 1 if dropout else 0
    g = e if gemm_input_bytes is None else gemm_input_bytes
    # The output projection's input: the attention output, kept once at 16 bits; under fp8 the
    # projection's own fp8 copy, beside flash attention's 16-bit output.
    proj_in = e if g == e else g + (e if flash_attention else 0)

    def attention(s_kv: int, s_scores: int) -> tuple[int, int]:
        shared = (
            e * s * b * arch.q_dim + 2 * e * s_kv * b * arch.kv_dim + proj_in * s * b * arch.q_dim
        )  # Q K V, proj in
        scores = arch.num_heads * s * s_scores * b
        shared += (e + mask + (e if dropout else 0)) * scores if keep_scores else 0
        return shared, g * sbh + mask * sbh  # QKV input and dropout mask are replicated

    if arch.mla:
        a_shared, a_rep = mla_attention_terms(
            arch,
            s,
            seq_len,
            b,
            e,
            mask,
            dropout,
            keep_scores,
            up_proj="mla_up_proj" not in sel,
            gemm_input_bytes=g,
            proj_in_bytes=proj_in,
        )
    else:
        a_shared, a_rep = attention(s, seq_len)
        a_shared += e * s * b * (arch.q_dim + arch.kv_dim) if arch.qk_norm else 0
    rank = 0
    if index is not None and is_moe_layer(arch, index):
        m_shared, m_rep, rank = moe_mlp_terms(
            arch,
            s,
            b,
            e,
            mask,
            tp,
            sp,
            ep,
            etp,
            load_imbalance,
            recompute=frozenset(sel),
            gemm_input_bytes=g,
        )
        mlp_in = e * sbh  # the router's (16-bit) input
    else:
        m_shared = 0 if "mlp" in sel else (2 if arch.gated else 1) * e * s * b * f + g * s * b * f
        mlp_in = (e if "mlp" in sel else g) * sbh
        m_rep = mlp_in + mask * sbh
    shared, replicated = a_shared + m_shared, a_rep + m_rep + 2 * e * sbh  # + two norm inputs
    if "layernorm" in sel:
        # the QKV / down-projection and MLP inputs: the norm outputs
        replicated -= g * sbh + mlp_in
    if arch.kind == "encoder-decoder" and stack == "decoder":
        s_enc = seq_len if encoder_seq_len is None else encoder_seq_len
        c_shared, c_rep = attention(s_enc, s_enc)
        shared, replicated = shared + c_shared, replicated + c_rep + e * sbh  # plus its norm input
    return _split(shared, replicated, tp, sp) + rank


def recompute_working_bytes(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    flash_attention: bool,
    dtype_bytes: int = 2,
    stack: str = "decoder",
    dropout: bool = True,
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
    gemm_input_bytes: int | None = None,
) -> int:
    """Live during backward of a checkpointed block: one block's un-checkpointed activations."""
    return activation_bytes_per_layer(
        arch,
        seq_len,
        micro_batch,
        "none",
        flash_attention,
        dtype_bytes,
        stack,
        dropout,
        encoder_seq_len,
        tp,
        sp,
        index=index,
        cp=cp,
        cp_comm=cp_comm,
        ep=ep,
        etp=etp,
        load_imbalance=load_imbalance,
        gemm_input_bytes=gemm_input_bytes,
    )


@functools.lru_cache(maxsize=4096)
def embedding_activation_bytes(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    dropout: bool = True,
    tp: int = 1,
    sp: bool = False,
    *,
    cp: int = 1,
) -> int:
    """Embedding-layer activations not already counted as block 0's input.

    Korthikanti et al. 2022 Sec 4.3: the embedding dropout mask, sbh (1 byte; sbh/t with
    sequence parallelism). An embedding norm (BLOOM, BERT) also keeps its input, 2sbh.
    With context parallelism s is the rank's seq_len / cp.
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    sbh = local_seq(seq_len, cp) * micro_batch * arch.hidden_size
    return _split(
        0, (sbh if dropout else 0) + (dtype_bytes * sbh if arch.embedding_norm else 0), tp, sp
    )


@functools.lru_cache(maxsize=4096)
def output_activation_bytes(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    tp: int = 1,
    sp: bool = False,
    *,
    cp: int = 1,
) -> int:
    """Final norm, output projection and loss activations (on the rank's seq_len / cp tokens).

    Korthikanti et al. 2022 Sec 4.3: final norm input 2sbh + projection input 2sbh + fp32
    cross-entropy logits 4sbv (vocabulary-parallel: 4sbv/t). We also hold the dtype_bytes
    logits (2sbv/t) that are alive while the loss upcasts them (Megatron
    vocab_parallel_cross_entropy), so the peak is 2sbh + 2sbh + (2 + 4)sbv/t; with sequence
    parallelism the norm and projection inputs are s/t slices. Without an LM head only the
    final norm input remains.
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    sb, e = local_seq(seq_len, cp) * micro_batch, dtype_bytes
    replicated = e * sb * arch.hidden_size if arch.final_norm else 0
    shared = 0
    if arch.lm_head:
        replicated += e * sb * arch.hidden_size
        shared = (e + 4) * sb * arch.vocab_size
    return _split(shared, replicated, tp, sp)
