"""Transformer architecture: shape, validation and exact parameter counts.

Parameter counts follow the reference implementation named by each preset (HF transformers
`model.num_parameters()`, which counts a tied weight once; llm-foundry MPT).
Encoder-decoder: `num_layers` is the encoder, `num_decoder_layers` the decoder.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from simulator.model import moe_params as mp

KINDS = ("decoder", "encoder", "encoder-decoder")
FFNS = ("gelu", "relu", "swiglu", "geglu")
GATED_FFNS = ("swiglu", "geglu")
POSITIONS = ("learned", "rotary", "alibi", "relative")
NORMS = ("layernorm", "layernorm-nobias", "rmsnorm")
STACKS = ("encoder", "decoder")
ATTENTION_KINDS = ("mha", "gqa", "mla")


@dataclass(frozen=True, kw_only=True)
class MoE:
    """Mixture-of-experts MLPs (scenario key model.architecture.moe).

    Layer i (0-based) of the stack is an MoE layer when i >= first_dense_layers and
    (i - first_dense_layers) % layer_frequency == 0; the others keep the dense MLP of
    `ffn_hidden_size`. Each MoE layer has a router (h x num_experts), num_experts routed experts
    of expert_ffn_hidden_size (the architecture's `ffn` kind: gated or not) of which each token
    uses experts_per_token, and `shared_experts` always-on experts of
    shared_expert_ffn_hidden_size each (None: expert_ffn_hidden_size).
    capacity_factor None: dropless (Megatron-Core --moe-expert-capacity-factor unset).
    """

    num_experts: int
    experts_per_token: int
    expert_ffn_hidden_size: int
    shared_experts: int = 0
    shared_expert_ffn_hidden_size: int | None = None
    first_dense_layers: int = 0
    layer_frequency: int = 1
    capacity_factor: float | None = None
    router_bias: bool = False  # a per-expert score bias (DeepSeek-V3 e_score_correction_bias)
    # Group-limited routing (DeepSeek-V3 Sec 2.1.2 "node-limited routing"; HF config n_group /
    # topk_group; Megatron-Core --moe-router-num-groups / --moe-router-group-topk): the experts
    # split into router_groups groups and each token's experts come from router_group_topk of
    # them. None: unrestricted.
    router_groups: int | None = None
    router_group_topk: int | None = None


@dataclass(frozen=True, kw_only=True)
class Attention:
    """The attention kind (scenario key model.architecture.attention). mha / gqa are the same
    layer (num_kv_heads decides); mla is DeepSeek-V2/V3 multi-head latent attention:
    Q through a low-rank q_lora_rank bottleneck (None: a full-rank Q projection), K and V
    from a kv_lora_rank latent, each Q/K head of head_dim + rope_head_dim (the decoupled RoPE
    part) and each V head of v_head_dim (None: head_dim)."""

    kind: str = "mha"
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    v_head_dim: int | None = None


@dataclass(frozen=True, kw_only=True)
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
    moe: MoE | None = None  # mixture-of-experts MLPs; None: every MLP dense
    attention: Attention | None = None  # None: mha / gqa as num_kv_heads says
    mtp_layers: int = 0  # DeepSeek-V3 multi-token-prediction modules after the stack
    qk_norm: bool = False  # Qwen3: RMSNorm(head_dim) on each head's query and key

    def __post_init__(self) -> None:
        for name in (
            "num_layers",
            "hidden_size",
            "num_heads",
            "ffn_hidden_size",
            "vocab_size",
            "relative_attention_num_buckets",
        ):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("num_kv_heads", "head_dim", "num_decoder_layers"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        for name in ("max_position_embeddings", "token_type_vocab"):
            _check_int(name, getattr(self, name), minimum=0)
        for name, allowed in (
            ("kind", KINDS),
            ("ffn", FFNS),
            ("position_embedding", POSITIONS),
            ("norm", NORMS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of {allowed}")
        for name in (
            "tied_embeddings",
            "bias",
            "lm_head",
            "lm_head_bias",
            "embedding_norm",
            "final_norm",
            "pooler",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.qkv_bias is not None and not isinstance(self.qkv_bias, bool):
            raise ValueError(f"qkv_bias: expected true, false or null, got {self.qkv_bias!r}")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} is not divisible by num_heads "
                f"{self.num_heads} (set head_dim to decouple them)"
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"num_kv_heads: num_heads {self.num_heads} is not a multiple of "
                f"num_kv_heads {self.kv_heads}"
            )
        if self.num_decoder_layers is not None and self.kind != "encoder-decoder":
            raise ValueError("num_decoder_layers: only an encoder-decoder has a second stack")
        mp.check(self)

    @property
    def mla(self) -> bool:
        """Whether attention is DeepSeek's multi-head latent attention."""
        return self.attention is not None and self.attention.kind == "mla"

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


def is_moe_layer(arch: Architecture, index: int) -> bool:
    """Whether block `index` (0-based, within its stack) has an MoE MLP (see MoE)."""
    m = arch.moe
    if m is None or index < m.first_dense_layers:
        return False
    return (index - m.first_dense_layers) % m.layer_frequency == 0


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Unit:
    """One FSDP wrap unit / DDP bucket source, in forward execution order."""

    name: str
    params: int
    kind: str  # "embedding" | "block" | "norm" | "mtp" | "head"
    expert_params: int = 0  # the routed experts' part of params (reduced over edp, not dp)


# ---------------------------------------------------------------- parameters


def norm_params(arch: Architecture) -> int:
    """One norm's parameters: LayerNorm has weight and bias, RMSNorm only a weight."""
    return mp.norm_width_params(arch, arch.hidden_size)


def _attention_params(arch: Architecture, tp: int = 1) -> int:
    """One attention sub-layer on one of tp ranks: the QKV and output weights and the QKV bias
    are split (Megatron ColumnParallelLinear / RowParallelLinear), the output bias and a QK-norm
    are not. MLA: moe_params.mla_params."""
    if arch.mla:
        return mp.mla_params(arch, tp)
    h = arch.hidden_size
    # Q: h x q_dim, K and V: h x kv_dim, output: q_dim x h (HF LlamaAttention / GPT2 c_attn).
    weights = h * arch.q_dim + 2 * h * arch.kv_dim + arch.q_dim * h
    qkv_bias = arch.bias if arch.qkv_bias is None else arch.qkv_bias
    split_bias = arch.q_dim + 2 * arch.kv_dim if qkv_bias else 0
    return (weights + split_bias) // tp + (h if arch.bias else 0) + mp.qk_norm_params(arch)


def _ffn_params(arch: Architecture, tp: int = 1) -> int:
    """One dense MLP of ffn_hidden_size on one of tp ranks (moe_params.ffn_params)."""
    return mp.ffn_params(arch, arch.ffn_hidden_size, tp)


def block_params(
    arch: Architecture,
    stack: str = "decoder",
    index: int = 1,
    tp: int = 1,
    ep: int = 1,
    etp: int = 1,
) -> int:
    """Parameters of block `index` of `stack` on one rank of tp tensor-parallel, ep
    expert-parallel and etp expert-tensor-parallel ranks (norms and a router replicated);
    cross-attention only in an enc-dec decoder; an MoE MLP where is_moe_layer(arch, index)."""
    cross = arch.kind == "encoder-decoder" and stack == "decoder"
    total = _attention_params(arch, tp) * (2 if cross else 1)
    if is_moe_layer(arch, index):
        total += mp.moe_mlp_params(arch, tp, ep, etp)
    else:
        total += _ffn_params(arch, tp)
    total += norm_params(arch) * (3 if cross else 2)
    if arch.position_embedding == "relative" and index == 0:
        # HF T5Stack: relative_attention_bias Embedding(num_buckets, n_heads) in block 0 only.
        total += arch.relative_attention_num_buckets * arch.num_heads
    return total


def expert_block_params(arch: Architecture, index: int = 1, ep: int = 1, etp: int = 1) -> int:
    """The routed-expert part of block_params(arch, "decoder", index, ...) on one rank (0 for a
    dense block): reduced over the expert-data-parallel group, the rest over data parallel."""
    return mp.routed_expert_params(arch, ep, etp) if is_moe_layer(arch, index) else 0


def mtp_block_index(arch: Architecture) -> int:
    """The index whose MLP kind an MTP module's block takes: the stack's last layer's
    (Megatron-Core num_floating_point_operations `last_layer_is_moe`; DeepSeek-V3's is MoE)."""
    return arch.num_layers - 1


def mtp_params(arch: Architecture, tp: int = 1, ep: int = 1, etp: int = 1) -> int:
    """One multi-token-prediction module on one rank: enorm, hnorm, eh_proj, one transformer
    block and a final norm; the embedding and output head are the main model's, not counted."""
    return mp.mtp_extra_params(arch, tp) + block_params(
        arch, "decoder", mtp_block_index(arch), tp, ep, etp
    )


def word_embedding_params(arch: Architecture, tp: int = 1) -> int:
    """The token table on one of tp ranks (Megatron VocabParallelEmbedding splits the vocabulary)."""
    return arch.vocab_size * arch.hidden_size // tp


def _stack_embedding_params(arch: Architecture) -> int:
    """Per-stack embedding extras: learned positions and the embedding norm (BART-style)."""
    pos = arch.max_position_embeddings * arch.hidden_size
    pos = pos if arch.position_embedding == "learned" else 0
    return pos + (norm_params(arch) if arch.embedding_norm else 0)


def parameter_units(arch: Architecture, tp: int = 1, ep: int = 1, etp: int = 1) -> list[Unit]:
    """Units in forward order; sum(u.params) == param_count(arch) (a new list of shared, frozen
    units: memoized by _parameter_units).

    Single-stack blocks are `layers.i`; an encoder-decoder has `encoder.i`,
    `encoder.final_norm`, `decoder.embedding` (only if it has parameters), `decoder.i`.
    Multi-token-prediction modules follow the stack as `mtp.i` (kind "mtp"), before the head.
    `head` holds the final norm, an untied output projection (+ bias) and a BERT pooler; it
    is omitted when it has no parameters. A tied output projection lives in `embedding`.
    With tp > 1, the parameters of one tensor-parallel rank: vocabulary-parallel tables and
    output projection and the blocks' GEMMs split, norms, position tables and a pooler whole.
    With ep / etp, MoE blocks hold num_experts/ep routed experts each split over etp
    (Unit.expert_params); dense and MoE blocks differ, so each block is counted on its own.
    """
    return list(_parameter_units(arch, tp, ep, etp))


# The memo of parameter_units: a pure function of a frozen (hashable) Architecture and three
# ints, asked for again and again with the same arguments (every scenario derived from one model,
# every pipeline stage and memory check of a layout search). Bounded; the units are frozen.
@functools.lru_cache(maxsize=512)
def _parameter_units(arch: Architecture, tp: int, ep: int, etp: int) -> tuple[Unit, ...]:
    """parameter_units, as a tuple."""
    h = arch.hidden_size
    embedding = (
        word_embedding_params(arch, tp) + arch.token_type_vocab * h + _stack_embedding_params(arch)
    )
    units = [Unit(name="embedding", params=embedding, kind="embedding")]

    def stack_units(prefix: str, stack: str, n: int) -> list[Unit]:
        # Blocks differ by index only in block 0 (a relative-position table) and MoE vs dense.
        sizes: dict[tuple[bool, bool], tuple[int, int]] = {}
        out = []
        for i in range(n):
            key = (i == 0, is_moe_layer(arch, i))
            if key not in sizes:
                sizes[key] = (
                    block_params(arch, stack, i, tp, ep, etp),
                    expert_block_params(arch, i, ep, etp),
                )
            params, expert = sizes[key]
            out.append(
                Unit(name=f"{prefix}.{i}", params=params, kind="block", expert_params=expert)
            )
        return out

    if arch.kind == "encoder-decoder":
        units += stack_units("encoder", "encoder", arch.num_layers)
        if arch.final_norm:
            units.append(Unit(name="encoder.final_norm", params=norm_params(arch), kind="norm"))
        if _stack_embedding_params(arch):
            units.append(
                Unit(
                    name="decoder.embedding", params=_stack_embedding_params(arch), kind="embedding"
                )
            )
        units += stack_units("decoder", "decoder", arch.decoder_layers)
    else:
        units += stack_units(
            "layers", "encoder" if arch.kind == "encoder" else "decoder", arch.num_layers
        )
    mtp_expert = expert_block_params(arch, mtp_block_index(arch), ep, etp)
    units += [
        Unit(
            name=f"mtp.{i}",
            params=mtp_params(arch, tp, ep, etp),
            kind="mtp",
            expert_params=mtp_expert,
        )
        for i in range(arch.mtp_layers)
    ]
    head = norm_params(arch) if arch.final_norm else 0
    if arch.lm_head:
        head += 0 if arch.tied_embeddings else word_embedding_params(arch, tp)
        head += arch.vocab_size // tp if arch.lm_head_bias else 0
    # HF BertPooler: Linear(h, h) with bias.
    head += (h * h + h) if arch.pooler else 0
    if head:
        units.append(Unit(name="head", params=head, kind="head"))
    return tuple(units)


def param_count(arch: Architecture) -> int:
    """Exact parameter count, each shared (tied) tensor counted once: every routed expert and
    the multi-token-prediction modules included (DeepSeek-V3: 671B main model + MTP)."""
    return sum(u.params for u in parameter_units(arch))


def moe_layer_count(arch: Architecture) -> int:
    """MoE blocks of the model, those of the MTP modules included."""
    if arch.moe is None:
        return 0
    main = sum(is_moe_layer(arch, i) for i in range(arch.num_layers))
    return main + arch.mtp_layers * is_moe_layer(arch, mtp_block_index(arch))


def active_param_count(arch: Architecture, embedding: bool = True) -> int:
    """Parameters one token uses: param_count less the routed experts it is not sent to
    (num_experts - experts_per_token per MoE layer, MTP modules' included).

    embedding=True counts the token table (the convention of Mistral's "12.9B active" for
    Mixtral 8x7B and Qwen's "3.3B activated" for Qwen3-30B-A3B); embedding=False leaves out a
    table used only as a lookup (untied), as DeepSeek-V3's "37B activated" (36.6B, of which
    0.9B the output head, in the DeepSeek-V3 repo's README_WEIGHTS.md) does; a tied table is
    the output GEMM and stays. A dense model's active count is its param_count (less an
    untied token table when embedding=False).
    """
    active = param_count(arch)
    if arch.moe is not None:
        active -= moe_layer_count(arch) * mp.inactive_expert_params(arch)
    used_as_head = arch.lm_head and arch.tied_embeddings
    return active - (0 if embedding or used_as_head else arch.vocab_size * arch.hidden_size)


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
