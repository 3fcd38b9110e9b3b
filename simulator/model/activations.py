"""Activation memory per block and at the model's edges (Korthikanti et al. 2022), pure functions,
on one tensor-parallel rank."""

from __future__ import annotations

from simulator.model.architecture import Architecture
from simulator.model.ops import _check_ops_args
from simulator.model.precision import CHECKPOINTING


def _split(shared: int, replicated: int, tp: int, sp: bool) -> int:
    """Bytes on one rank: `shared` terms are split over tp ranks; `replicated` terms are kept
    whole by plain tensor parallelism and split too with sequence parallelism."""
    return shared // tp + (replicated // tp if sp else replicated)


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
) -> int:
    """Activations one block keeps for backward, per tensor-parallel rank.

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
    output, is shared by all decoder blocks and not counted here).
    """
    _check_ops_args(seq_len, micro_batch, stack, dtype_bytes)
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing: {checkpointing!r} is not one of {CHECKPOINTING}")
    s, b, e, h, f = seq_len, micro_batch, dtype_bytes, arch.hidden_size, arch.ffn_hidden_size
    sbh = s * b * h
    if checkpointing == "full":
        return _split(0, e * sbh, tp, sp)
    keep_scores = not flash_attention and checkpointing == "none"
    mask = 1 if dropout else 0

    def attention(s_kv: int) -> tuple[int, int]:
        shared = (
            e * s * b * arch.q_dim + 2 * e * s_kv * b * arch.kv_dim + e * s * b * arch.q_dim
        )  # Q K V, proj in
        scores = arch.num_heads * s * s_kv * b
        shared += (e + mask + (e if dropout else 0)) * scores if keep_scores else 0
        return shared, e * sbh + mask * sbh  # QKV input and dropout mask are replicated

    a_shared, a_rep = attention(s)
    m_shared = (2 if arch.gated else 1) * e * s * b * f + e * s * b * f
    m_rep = e * sbh + mask * sbh
    shared, replicated = a_shared + m_shared, a_rep + m_rep + 2 * e * sbh  # + two norm inputs
    if arch.kind == "encoder-decoder" and stack == "decoder":
        c_shared, c_rep = attention(seq_len if encoder_seq_len is None else encoder_seq_len)
        shared, replicated = shared + c_shared, replicated + c_rep + e * sbh  # plus its norm input
    return _split(shared, replicated, tp, sp)


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
    )


def embedding_activation_bytes(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    dropout: bool = True,
    tp: int = 1,
    sp: bool = False,
) -> int:
    """Embedding-layer activations not already counted as block 0's input.

    Korthikanti et al. 2022 Sec 4.3: the embedding dropout mask, sbh (1 byte; sbh/t with
    sequence parallelism). An embedding norm (BLOOM, BERT) also keeps its input, 2sbh.
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    sbh = seq_len * micro_batch * arch.hidden_size
    return _split(
        0, (sbh if dropout else 0) + (dtype_bytes * sbh if arch.embedding_norm else 0), tp, sp
    )


def output_activation_bytes(
    arch: Architecture,
    seq_len: int,
    micro_batch: int,
    dtype_bytes: int = 2,
    tp: int = 1,
    sp: bool = False,
) -> int:
    """Final norm, output projection and loss activations.

    Korthikanti et al. 2022 Sec 4.3: final norm input 2sbh + projection input 2sbh + fp32
    cross-entropy logits 4sbv (vocabulary-parallel: 4sbv/t). We also hold the dtype_bytes
    logits (2sbv/t) that are alive while the loss upcasts them (Megatron
    vocab_parallel_cross_entropy), so the peak is 2sbh + 2sbh + (2 + 4)sbv/t; with sequence
    parallelism the norm and projection inputs are s/t slices. Without an LM head only the
    final norm input remains.
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    sb, e = seq_len * micro_batch, dtype_bytes
    replicated = e * sb * arch.hidden_size if arch.final_norm else 0
    shared = 0
    if arch.lm_head:
        replicated += e * sb * arch.hidden_size
        shared = (e + 4) * sb * arch.vocab_size
    return _split(shared, replicated, tp, sp)
