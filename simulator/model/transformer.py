"""Transformer architecture and its math: parameters, FLOPs, per-layer ops, activation bytes.

Conventions (all functions are pure):
* Parameter counts follow the reference implementation named by each preset (HF transformers
  `model.num_parameters()`, which counts a tied weight once; llm-foundry MPT).
* FLOPs are floats, 2 per multiply-accumulate. Attention scores count the full s x s matrix,
  never halved for causal masking (Megatron, Narayanan et al. 2021 Sec 5.1; llm-foundry MFU).
* Bytes are ints; `dtype_bytes` is the element size of activations (2 for bf16/fp16).
* Forward ops only come from `layer_ops`/`embedding_ops`/`head_ops`; `backward_ops` derives
  the backward pass (every GEMM becomes two GEMMs of equal FLOPs, dgrad and wgrad).
* Encoder-decoder: `num_layers` is the encoder, `num_decoder_layers` the decoder; both stacks
  see `seq_len` tokens, and "per token" means per sequence position (one encoder token plus
  one decoder token).
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("decoder", "encoder", "encoder-decoder")
FFNS = ("gelu", "relu", "swiglu", "geglu")
GATED_FFNS = ("swiglu", "geglu")
POSITIONS = ("learned", "rotary", "alibi", "relative")
NORMS = ("layernorm", "layernorm-nobias", "rmsnorm")
CHECKPOINTING = ("none", "selective", "full")
STACKS = ("encoder", "decoder")

# FlashAttention-2 backward does 2.5x the forward FLOPs (it recomputes S = QK^T):
# flash-attention benchmarks/benchmark_flash_attention.py, flops(..., mode="bwd") = 2.5 * fwd.
FLASH_BACKWARD_FACTOR = 2.5
# Rough FLOPs per element of the memory-bound ops; excluded from model FLOPs, as in the
# llm-foundry benchmarking README ("All FLOP calculations exclude ... normalization,
# activation, and residuals"). Only their bytes matter for timing.
_EW_FLOPS = {"norm": 5.0, "softmax": 5.0, "dropout": 1.0, "residual": 1.0, "act": 8.0, "ce": 5.0}


@dataclass(frozen=True)
class Architecture:
    kind: str  # "decoder" | "encoder" | "encoder-decoder"
    num_layers: int  # the stack; for encoder-decoder the ENCODER layers
    hidden_size: int
    num_heads: int
    ffn_hidden_size: int
    vocab_size: int
    num_kv_heads: int | None = None  # None = num_heads (MHA); fewer = GQA / MQA
    head_dim: int | None = None  # None = hidden_size // num_heads (T5 d_kv, GPT-3 d_head)
    ffn: str = "gelu"  # "gelu" | "relu" (2 matrices) | "swiglu" | "geglu" (3 matrices)
    num_decoder_layers: int | None = None  # encoder-decoder only; None = num_layers
    tied_embeddings: bool = True  # output projection shares the input embedding
    position_embedding: str = "learned"  # "learned" | "rotary" | "alibi" | "relative"
    max_position_embeddings: int = 0  # rows of a learned position table (0: none counted)
    norm: str = "layernorm"  # "layernorm" (w+b) | "layernorm-nobias" | "rmsnorm" (w)
    bias: bool = True  # biases on all linear layers of the blocks
    qkv_bias: bool | None = None  # None = follows `bias`; True alone = Qwen-style QKV bias
    lm_head: bool = True  # False: no output projection (HF BertModel)
    lm_head_bias: bool = False
    embedding_norm: bool = False  # norm after the embeddings (BLOOM, BERT)
    final_norm: bool = True  # norm after each stack (pre-LN); False for post-LN BERT
    token_type_vocab: int = 0  # BERT segment embeddings (2)
    pooler: bool = False  # BERT pooler dense h x h + bias
    relative_attention_num_buckets: int = 32  # T5 bias table, first block of each stack

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "ffn_hidden_size", "vocab_size",
                     "relative_attention_num_buckets"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("num_kv_heads", "head_dim", "num_decoder_layers"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        for name in ("max_position_embeddings", "token_type_vocab"):
            _check_int(name, getattr(self, name), minimum=0)
        for name, allowed in (("kind", KINDS), ("ffn", FFNS),
                              ("position_embedding", POSITIONS), ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of {allowed}")
        for name in ("tied_embeddings", "bias", "lm_head", "lm_head_bias", "embedding_norm",
                     "final_norm", "pooler"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.qkv_bias is not None and not isinstance(self.qkv_bias, bool):
            raise ValueError(f"qkv_bias: expected true, false or null, got {self.qkv_bias!r}")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size: {self.hidden_size} is not divisible by num_heads "
                             f"{self.num_heads} (set head_dim to decouple them)")
        if self.num_heads % self.kv_heads:
            raise ValueError(f"num_kv_heads: num_heads {self.num_heads} is not a multiple of "
                             f"num_kv_heads {self.kv_heads}")
        if self.num_decoder_layers is not None and self.kind != "encoder-decoder":
            raise ValueError("num_decoder_layers: only an encoder-decoder has a second stack")

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads if self.head_dim is None else self.head_dim

    @property
    def q_dim(self) -> int:
        """Width of Q (and of the attention output): num_heads * head_dim."""
        return self.num_heads * self.head_size

    @property
    def kv_dim(self) -> int:
        """Width of K (and of V): num_kv_heads * head_dim."""
        return self.kv_heads * self.head_size

    @property
    def gated(self) -> bool:
        return self.ffn in GATED_FFNS

    @property
    def decoder_layers(self) -> int:
        """Layers of the decoder stack (0 for an encoder-only or decoder-only model)."""
        if self.kind != "encoder-decoder":
            return 0
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    @property
    def total_layers(self) -> int:
        return self.num_layers + self.decoder_layers


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Unit:
    """One FSDP wrap unit / DDP bucket source, in forward execution order."""

    name: str
    params: int
    kind: str  # "embedding" | "block" | "norm" | "head"


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


# ---------------------------------------------------------------- parameters

def norm_params(arch: Architecture) -> int:
    """One norm's parameters: LayerNorm has weight and bias, RMSNorm only a weight."""
    return 2 * arch.hidden_size if arch.norm == "layernorm" else arch.hidden_size


def _attention_params(arch: Architecture) -> int:
    h = arch.hidden_size
    # Q: h x q_dim, K and V: h x kv_dim, output: q_dim x h (HF LlamaAttention / GPT2 c_attn).
    weights = h * arch.q_dim + 2 * h * arch.kv_dim + arch.q_dim * h
    qkv_bias = arch.bias if arch.qkv_bias is None else arch.qkv_bias
    biases = (arch.q_dim + 2 * arch.kv_dim if qkv_bias else 0) + (h if arch.bias else 0)
    return weights + biases


def _ffn_params(arch: Architecture) -> int:
    h, f = arch.hidden_size, arch.ffn_hidden_size
    # Gated FFNs (Shazeer 2020, "GLU Variants"; HF LlamaMLP) have gate, up and down matrices.
    mats = 3 if arch.gated else 2
    biases = ((mats - 1) * f + h) if arch.bias else 0
    return mats * h * f + biases


def block_params(arch: Architecture, stack: str = "decoder", index: int = 1) -> int:
    """Parameters of block `index` of `stack` (cross-attention only in an enc-dec decoder)."""
    cross = arch.kind == "encoder-decoder" and stack == "decoder"
    total = _attention_params(arch) * (2 if cross else 1) + _ffn_params(arch)
    total += norm_params(arch) * (3 if cross else 2)
    if arch.position_embedding == "relative" and index == 0:
        # HF T5Stack: relative_attention_bias Embedding(num_buckets, n_heads) in block 0 only.
        total += arch.relative_attention_num_buckets * arch.num_heads
    return total


def _stack_embedding_params(arch: Architecture) -> int:
    """Per-stack embedding extras: learned positions and the embedding norm (BART-style)."""
    pos = arch.max_position_embeddings * arch.hidden_size
    pos = pos if arch.position_embedding == "learned" else 0
    return pos + (norm_params(arch) if arch.embedding_norm else 0)


def parameter_units(arch: Architecture) -> list[Unit]:
    """Units in forward order; sum(u.params) == param_count(arch).

    Single-stack blocks are `layers.i`; an encoder-decoder has `encoder.i`,
    `encoder.final_norm`, `decoder.embedding` (only if it has parameters), `decoder.i`.
    `head` holds the final norm, an untied output projection (+ bias) and a BERT pooler; it
    is omitted when it has no parameters. A tied output projection lives in `embedding`.
    """
    h = arch.hidden_size
    embedding = arch.vocab_size * h + arch.token_type_vocab * h + _stack_embedding_params(arch)
    units = [Unit("embedding", embedding, "embedding")]
    if arch.kind == "encoder-decoder":
        units += [Unit(f"encoder.{i}", block_params(arch, "encoder", i), "block")
                  for i in range(arch.num_layers)]
        if arch.final_norm:
            units.append(Unit("encoder.final_norm", norm_params(arch), "norm"))
        if _stack_embedding_params(arch):
            units.append(Unit("decoder.embedding", _stack_embedding_params(arch), "embedding"))
        units += [Unit(f"decoder.{i}", block_params(arch, "decoder", i), "block")
                  for i in range(arch.decoder_layers)]
    else:
        stack = "encoder" if arch.kind == "encoder" else "decoder"
        units += [Unit(f"layers.{i}", block_params(arch, stack, i), "block")
                  for i in range(arch.num_layers)]
    head = norm_params(arch) if arch.final_norm else 0
    if arch.lm_head:
        head += (0 if arch.tied_embeddings else arch.vocab_size * h)
        head += arch.vocab_size if arch.lm_head_bias else 0
    # HF BertPooler: Linear(h, h) with bias.
    head += (h * h + h) if arch.pooler else 0
    if head:
        units.append(Unit("head", head, "head"))
    return units


def param_count(arch: Architecture) -> int:
    """Exact parameter count, each shared (tied) tensor counted once."""
    return sum(u.params for u in parameter_units(arch))


def largest_unit_params(arch: Architecture) -> int:
    """Largest FSDP unit: bounds the all-gathered (unsharded) parameters held at once."""
    return max(u.params for u in parameter_units(arch))


def embedding_table_params(arch: Architecture) -> int:
    """Token + position + token-type lookup tables (Kaplan et al. 2020 'embedding' params)."""
    h = arch.hidden_size
    pos = arch.max_position_embeddings * h if arch.position_embedding == "learned" else 0
    stacks = 2 if arch.kind == "encoder-decoder" else 1
    return arch.vocab_size * h + arch.token_type_vocab * h + pos * stacks


def non_embedding_params(arch: Architecture) -> int:
    """Kaplan et al. 2020 (Sec 2.1) N: all parameters except the embedding tables."""
    return param_count(arch) - embedding_table_params(arch)


# ---------------------------------------------------------------- model FLOPs

def flops_params(arch: Architecture) -> int:
    """The N of 6N: every parameter except a token table used only as a lookup.

    llm-foundry ComposerMPTCausalLM.flops_per_batch (llmfoundry/models/mpt/modeling_mpt.py)
    uses n_active_params and subtracts wte only when embeddings are untied; a tied table is
    the output GEMM and counts. Position tables and norms stay in, as there.
    """
    used_as_head = arch.lm_head and arch.tied_embeddings
    return param_count(arch) - (0 if used_as_head else arch.vocab_size * arch.hidden_size)


def model_flops_per_token(arch: Architecture, seq_len: int, training: bool = True) -> float:
    """Model FLOPs per token (MFU numerator), forward x3 when training.

    llm-foundry scripts/train/benchmarking/README.md (MFU): forward = 2 * n_params per token
    plus attn_flops_per_seq = n_layers * 2 * 2 * d_model * seq_len**2, i.e. 4*L*d*s per
    token; training = 3 x forward (= 6N + 12*L*d*s; PaLM, Chowdhery et al. 2022, App. B).
    d_model is generalized to num_heads * head_dim. Encoder-decoder: the decoder adds
    cross-attention over seq_len encoder tokens, so the attention term is
    4*s*q_dim*(L_enc + 2*L_dec) per position.
    """
    _check_int("seq_len", seq_len, minimum=1)
    attn_layers = arch.num_layers + 2 * arch.decoder_layers
    forward = 2.0 * flops_params(arch) + 4.0 * attn_layers * arch.q_dim * seq_len
    return 3.0 * forward if training else forward


def forward_flops_per_token(arch: Architecture, seq_len: int) -> float:
    return model_flops_per_token(arch, seq_len, training=False)


def six_n_d_flops(params: int | float, tokens: int | float) -> float:
    """Training compute C = 6*N*D (Kaplan et al. 2020 Sec 2.1; GPT-3 Table D.1)."""
    return 6.0 * float(params) * float(tokens)


# ---------------------------------------------------------------- ops

def _matmul(name: str, m: int, n: int, k: int, e: int, batch: int = 1) -> Op:
    # C[m,n] = A[m,k] @ B[k,n]: 2*m*n*k FLOPs; reads A and B, writes C.
    return Op(name, "matmul", 2.0 * m * n * k * batch, (m * k + k * n + m * n) * e * batch,
              (m, n, k), batch)


def _mem(name: str, kind: str, elements: int, bytes_moved: int) -> Op:
    return Op(name, "memory", _EW_FLOPS[kind] * elements, bytes_moved)


def _residual(name: str, t: int, h: int, e: int, dropout: bool) -> Op:
    # dropout(x) + residual: read two t x h tensors, write one, plus a 1-byte mask.
    return _mem(name, "residual", t * h, 3 * t * h * e + (t * h if dropout else 0))


def _attention_ops(arch: Architecture, prefix: str, b: int, s: int, s_kv: int, e: int,
                   flash: bool, dropout: bool, causal: bool) -> list[Op]:
    heads, d = arch.num_heads, arch.head_size
    if flash:
        # Dao et al. 2022 FlashAttention: QK^T and PV in one kernel, 4*b*s*s_kv*h_q*d forward;
        # a causal kernel skips the masked half (flash-attention benchmark divides by 2).
        flops = 4.0 * b * s * s_kv * heads * d / (2.0 if causal else 1.0)
        io = (2 * b * s * arch.q_dim + 2 * b * s_kv * arch.kv_dim) * e  # Q, O; K, V
        return [Op(f"{prefix}flash_attention", "attention", flops, io, None, b * heads)]
    scores = b * heads * s * s_kv
    ops = [_matmul(f"{prefix}attn_scores", s, s_kv, d, e, b * heads),
           _mem(f"{prefix}softmax", "softmax", scores, 2 * scores * e)]
    if dropout:
        ops.append(_mem(f"{prefix}attn_dropout", "dropout", scores, 2 * scores * e + scores))
    ops.append(_matmul(f"{prefix}attn_over_values", s, d, s_kv, e, b * heads))
    return ops


def layer_ops(arch: Architecture, seq_len: int, micro_batch: int, flash_attention: bool,
              stack: str = "decoder", dtype_bytes: int = 2, dropout: bool = True,
              causal: bool = False, encoder_seq_len: int | None = None) -> list[Op]:
    """Forward ops of ONE block, in order (pre-norm order; post-norm BERT moves the norms).

    Matmul FLOPs of a GPT block: 24*b*s*h^2 + 4*b*s^2*h (Narayanan et al. 2021, Sec 5.1).
    Cross-attention (enc-dec decoder): Q from the decoder, K/V from the encoder output
    (`encoder_seq_len`, default seq_len). GQA shrinks the K/V GEMM widths to kv_dim.
    """
    _check_ops_args(seq_len, micro_batch, stack, dtype_bytes)
    b, s, e, h, f = micro_batch, seq_len, dtype_bytes, arch.hidden_size, arch.ffn_hidden_size
    t = b * s
    s_enc = seq_len if encoder_seq_len is None else encoder_seq_len
    ops = [_mem("attn_norm", "norm", t * h, 2 * t * h * e),
           _matmul("qkv_proj", t, arch.q_dim + 2 * arch.kv_dim, h, e)]
    ops += _attention_ops(arch, "", b, s, s, e, flash_attention, dropout, causal)
    ops += [_matmul("attn_out_proj", t, h, arch.q_dim, e),
            _residual("attn_residual", t, h, e, dropout)]
    if arch.kind == "encoder-decoder" and stack == "decoder":
        ops += [_mem("cross_norm", "norm", t * h, 2 * t * h * e),
                _matmul("cross_q_proj", t, arch.q_dim, h, e),
                _matmul("cross_kv_proj", b * s_enc, 2 * arch.kv_dim, h, e)]
        ops += _attention_ops(arch, "cross_", b, s, s_enc, e, flash_attention, dropout, False)
        ops += [_matmul("cross_out_proj", t, h, arch.q_dim, e),
                _residual("cross_residual", t, h, e, dropout)]
    ops.append(_mem("mlp_norm", "norm", t * h, 2 * t * h * e))
    if arch.gated:
        ops += [_matmul("mlp_gate", t, f, h, e), _matmul("mlp_up", t, f, h, e),
                _mem("mlp_act", "act", t * f, 3 * t * f * e)]  # read gate, up; write product
    else:
        ops += [_matmul("mlp_up", t, f, h, e), _mem("mlp_act", "act", t * f, 2 * t * f * e)]
    ops += [_matmul("mlp_down", t, h, f, e), _residual("mlp_residual", t, h, e, dropout)]
    return ops


def embedding_ops(arch: Architecture, seq_len: int, micro_batch: int, dtype_bytes: int = 2,
                  dropout: bool = True) -> list[Op]:
    """Token (+ position, token-type) lookup and sum, dropout, optional embedding norm."""
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    t, h, e = micro_batch * seq_len, arch.hidden_size, dtype_bytes
    tables = 1 + (arch.position_embedding == "learned") + (arch.token_type_vocab > 0)
    io = (tables + 1) * t * h * e + (t * h if dropout else 0)  # read the rows, write the sum
    ops = [_mem("embedding", "residual", t * h, io)]
    if arch.embedding_norm:
        ops.append(_mem("embedding_norm", "norm", t * h, 2 * t * h * e))
    return ops


def head_ops(arch: Architecture, seq_len: int, micro_batch: int, dtype_bytes: int = 2) -> list[Op]:
    """Final norm, logits GEMM (b*s x V x h), and softmax cross-entropy in fp32.

    The loss reads the logits at dtype_bytes and writes fp32 probabilities (Megatron
    vocab_parallel_cross_entropy upcasts to float). An encoder without an LM head runs only
    the BERT pooler (GEMM on the b [CLS] tokens).
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    b, h, e, v = micro_batch, arch.hidden_size, dtype_bytes, arch.vocab_size
    t = b * seq_len
    ops = [_mem("final_norm", "norm", t * h, 2 * t * h * e)] if arch.final_norm else []
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
            out.append(Op(f"{op.name}.backward", "attention", op.flops * flash_backward_factor,
                          2 * op.bytes_moved, None, op.batch))
        else:
            out.append(Op(f"{op.name}.backward", op.kind, 2.0 * op.flops, 2 * op.bytes_moved))
    return out


def _check_ops_args(seq_len: int, micro_batch: int, stack: str, dtype_bytes: int) -> None:
    _check_int("seq_len", seq_len, minimum=1)
    _check_int("micro_batch", micro_batch, minimum=1)
    _check_int("dtype_bytes", dtype_bytes, minimum=1)
    if stack not in STACKS:
        raise ValueError(f"stack: {stack!r} is not one of {STACKS}")


# ---------------------------------------------------------------- activation memory

def activation_bytes_per_layer(arch: Architecture, seq_len: int, micro_batch: int,
                               checkpointing: str, flash_attention: bool, dtype_bytes: int = 2,
                               stack: str = "decoder", dropout: bool = True,
                               encoder_seq_len: int | None = None) -> int:
    """Activations one block keeps for backward (no tensor/sequence parallelism).

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
    flash attention (recomputed in the kernel) nor with selective recompute (Sec 4.2), so
    both give 34sbh. "full" keeps only the block input, 2sbh (Sec 4.2's full recompute).
    Enc-dec decoder blocks add a cross-attention set of terms (its K/V input, the encoder
    output, is shared by all decoder blocks and not counted here).
    """
    _check_ops_args(seq_len, micro_batch, stack, dtype_bytes)
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing: {checkpointing!r} is not one of {CHECKPOINTING}")
    s, b, e, h, f = seq_len, micro_batch, dtype_bytes, arch.hidden_size, arch.ffn_hidden_size
    sbh = s * b * h
    if checkpointing == "full":
        return e * sbh
    keep_scores = not flash_attention and checkpointing == "none"
    mask = 1 if dropout else 0

    def attention(s_kv: int) -> int:
        qkv = e * s * b * arch.q_dim + 2 * e * s_kv * b * arch.kv_dim  # Q, K, V
        inputs = e * sbh + e * s * b * arch.q_dim + mask * sbh  # proj input, out-proj input, mask
        scores = arch.num_heads * s * s_kv * b
        kept = (e + mask + (e if dropout else 0)) * scores if keep_scores else 0
        return qkv + inputs + kept

    mlp = e * sbh + (2 if arch.gated else 1) * e * s * b * f + e * s * b * f + mask * sbh
    total = attention(s) + mlp + 2 * e * sbh
    if arch.kind == "encoder-decoder" and stack == "decoder":
        s_enc = seq_len if encoder_seq_len is None else encoder_seq_len
        total += attention(s_enc) + e * sbh  # plus its norm input
    return total


def recompute_working_bytes(arch: Architecture, seq_len: int, micro_batch: int,
                            flash_attention: bool, dtype_bytes: int = 2,
                            stack: str = "decoder", dropout: bool = True,
                            encoder_seq_len: int | None = None) -> int:
    """Live during backward of a checkpointed block: one block's un-checkpointed activations."""
    return activation_bytes_per_layer(arch, seq_len, micro_batch, "none", flash_attention,
                                      dtype_bytes, stack, dropout, encoder_seq_len)


def embedding_activation_bytes(arch: Architecture, seq_len: int, micro_batch: int,
                               dtype_bytes: int = 2, dropout: bool = True) -> int:
    """Embedding-layer activations not already counted as block 0's input.

    Korthikanti et al. 2022 Sec 4.3: the embedding dropout mask, sbh (1 byte). An embedding
    norm (BLOOM, BERT) also keeps its input, 2sbh.
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    sbh = seq_len * micro_batch * arch.hidden_size
    return (sbh if dropout else 0) + (dtype_bytes * sbh if arch.embedding_norm else 0)


def output_activation_bytes(arch: Architecture, seq_len: int, micro_batch: int,
                            dtype_bytes: int = 2) -> int:
    """Final norm, output projection and loss activations.

    Korthikanti et al. 2022 Sec 4.3: final norm input 2sbh + projection input 2sbh + fp32
    cross-entropy logits 4sbv. We also hold the dtype_bytes logits (2sbv) that are alive
    while the loss upcasts them (Megatron vocab_parallel_cross_entropy), so the peak is
    2sbh + 2sbh + (2 + 4)sbv. Without an LM head only the final norm input remains.
    """
    _check_ops_args(seq_len, micro_batch, "decoder", dtype_bytes)
    sb, e = seq_len * micro_batch, dtype_bytes
    total = e * sb * arch.hidden_size if arch.final_norm else 0
    if arch.lm_head:
        total += e * sb * arch.hidden_size + (e + 4) * sb * arch.vocab_size
    return total
