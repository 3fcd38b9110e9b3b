"""The parameter tensors of each unit, by the nn.Module that owns them, in forward order.

Frameworks differ in how they cut the model: PyTorch FSDP flattens a wrapped block into one
FlatParameter, FSDP2 shards each parameter on its first dimension, DeepSpeed ZeRO-3 hooks every
nn.Module and fetches its direct parameters. The modules follow the Hugging Face layout of a
pre-norm block (LlamaDecoderLayer / GPT2Block): the block; its attention with a norm, q, k, v
and output projections; for an encoder-decoder's decoder a cross-attention alike; its MLP with
a norm, (gate,) up and down projections and an activation module. A Linear weight is
(out_features, in_features), so its first dimension is the output width. Containers and
activations own no parameters but are modules all the same (DeepSpeed's hooks fire on them).

Sizes are those of one tensor-parallel rank: column-parallel weights (q, k, v, up, gate) and
their biases split their first dimension, row-parallel ones (out, down) their second; norms
and row-parallel biases are whole (simulator/model/architecture.py counts the same). Every
unit's tensors sum to its count in architecture.py.

MoE blocks (HF DeepseekV3MoE / Qwen3MoeSparseMoeBlock names): `mlp.gate` the router
(replicated; DeepSeek-V3's e_score_correction_bias with it), `mlp.experts.{j}` with gate/up/down
projections for this rank's num_experts/ep local experts only (j counts from 0 on every rank),
each split over etp, marked Module.expert; `mlp.shared_experts` one MLP split over tp. MLA
(HF DeepseekV3Attention): q_a_proj, q_a_layernorm, q_b_proj (or q_proj), kv_a_proj_with_mqa,
kv_a_layernorm, kv_b_proj, o_proj, the down projections and their norms replicated. Qwen3:
self_attn.q_norm / k_norm. An MTP module (`mtp.i`): enorm, hnorm, eh_proj, its block, and
shared_head.norm (DeepSeek-V3's model.layers.61 names).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model import moe_params as mp
from simulator.model.architecture import Architecture, is_moe_layer, mtp_block_index, norm_params


@dataclass(frozen=True)
class Tensor:
    name: str
    numel: int
    rows: int  # first dimension (FSDP2 shards and pads it)

    @property
    def cols(self) -> int:
        return max(1, self.numel // max(1, self.rows))


@dataclass(frozen=True)
class Module:
    """An nn.Module: its direct parameters and the compute segment it runs in."""

    name: str
    segment: str  # attention | cross_attention | mlp | mtp | embedding | head
    tensors: tuple[Tensor, ...] = ()
    expert: bool = False  # a routed expert's module (its gradients reduce over edp)

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)


def _norm(arch: Architecture, name: str, segment: str, width: int | None = None) -> Module:
    h = arch.hidden_size if width is None else width
    ts = (Tensor(f"{name}.weight", h, h),) + (
        (Tensor(f"{name}.bias", h, h),) if arch.norm == "layernorm" else ()
    )
    assert width is not None or sum(t.numel for t in ts) == norm_params(arch)
    return Module(name, segment, ts)


def _linear(
    name: str,
    segment: str,
    rows: int,
    cols: int,
    bias: bool,
    bias_rows: int | None = None,
    expert: bool = False,
) -> Module:
    ts = [Tensor(f"{name}.weight", rows * cols, rows)]
    if bias:
        b = rows if bias_rows is None else bias_rows
        ts.append(Tensor(f"{name}.bias", b, b))
    return Module(name, segment, tuple(ts), expert)


def _attention(arch: Architecture, prefix: str, segment: str, tp: int) -> list[Module]:
    if arch.mla:
        return _mla(arch, prefix, segment, tp)
    h, q, kv = arch.hidden_size, arch.q_dim // tp, arch.kv_dim // tp
    qkv_bias = arch.bias if arch.qkv_bias is None else arch.qkv_bias
    qk_norm = (
        [_norm(arch, f"{prefix}.{n}", segment, arch.head_size) for n in ("q_norm", "k_norm")]
        if arch.qk_norm
        else []
    )
    return [
        Module(prefix, segment),
        _linear(f"{prefix}.q_proj", segment, q, h, qkv_bias),
        _linear(f"{prefix}.k_proj", segment, kv, h, qkv_bias),
        *qk_norm,
        _linear(f"{prefix}.v_proj", segment, kv, h, qkv_bias),
        # Row-parallel: its input width is split, its bias is whole.
        _linear(f"{prefix}.o_proj", segment, h, q, arch.bias, h),
    ]


def _mla(arch: Architecture, prefix: str, segment: str, tp: int) -> list[Module]:
    a = arch.attention
    assert a is not None
    h, n, kl = arch.hidden_size, arch.num_heads, a.kv_lora_rank
    qk, v = n * (arch.head_size + a.rope_head_dim) // tp, n * mp.mla_v_head_dim(arch) // tp
    kv_up = n * (arch.head_size + mp.mla_v_head_dim(arch)) // tp
    qkv_bias = arch.bias if arch.qkv_bias is None else arch.qkv_bias
    if a.q_lora_rank is None:
        q = [_linear(f"{prefix}.q_proj", segment, qk, h, qkv_bias)]
    else:
        r = a.q_lora_rank
        q = [
            _linear(f"{prefix}.q_a_proj", segment, r, h, qkv_bias),  # replicated
            _norm(arch, f"{prefix}.q_a_layernorm", segment, r),
            _linear(f"{prefix}.q_b_proj", segment, qk, r, False),
        ]
    return [
        Module(prefix, segment),
        *q,
        _linear(f"{prefix}.kv_a_proj_with_mqa", segment, kl + a.rope_head_dim, h, qkv_bias),
        _norm(arch, f"{prefix}.kv_a_layernorm", segment, kl),
        _linear(f"{prefix}.kv_b_proj", segment, kv_up, kl, False),
        _linear(f"{prefix}.o_proj", segment, h, v, arch.bias, h),
    ]


def _ffn(arch: Architecture, prefix: str, width: int, expert: bool = False) -> list[Module]:
    """An MLP of `width` (this rank's share): container, (gate,) up, down, activation."""
    h = arch.hidden_size
    ups = ["gate_proj", "up_proj"] if arch.gated else ["up_proj"]
    return (
        [Module(prefix, "mlp", (), expert)]
        + [_linear(f"{prefix}.{n}", "mlp", width, h, arch.bias, None, expert) for n in ups]
        + [
            _linear(f"{prefix}.down_proj", "mlp", h, width, arch.bias, h, expert),
            Module(f"{prefix}.act_fn", "mlp", (), expert),
        ]
    )


def _mlp(arch: Architecture, tp: int) -> list[Module]:
    return _ffn(arch, "mlp", arch.ffn_hidden_size // tp)


def _moe(arch: Architecture, tp: int, ep: int, etp: int) -> list[Module]:
    m = arch.moe
    assert m is not None
    h, e = arch.hidden_size, m.num_experts
    gate = [Tensor("mlp.gate.weight", e * h, e)]
    if m.router_bias:
        gate.append(Tensor("mlp.gate.e_score_correction_bias", e, e))
    mods = [Module("mlp", "mlp"), Module("mlp.gate", "mlp", tuple(gate))]
    mods.append(Module("mlp.experts", "mlp", (), True))
    for j in range(mp.local_experts(arch, ep)):
        mods += _ffn(arch, f"mlp.experts.{j}", m.expert_ffn_hidden_size // etp, expert=True)
    if mp.shared_width(arch):
        mods += _ffn(arch, "mlp.shared_experts", mp.shared_width(arch) // tp)
    return mods


def block_modules(
    arch: Architecture,
    stack: str = "decoder",
    index: int = 1,
    tp: int = 1,
    ep: int = 1,
    etp: int = 1,
) -> tuple[Module, ...]:
    """One block's modules in forward order (the block container first), as written: not fitted
    to architecture.py's count, so a test can hold the two independent counts equal. An MoE
    block (is_moe_layer) holds this rank's routed experts (num_experts/ep, split over etp)."""
    mods = [Module("block", "attention"), _norm(arch, "input_layernorm", "attention")]
    attn = _attention(arch, "self_attn", "attention", tp)
    if arch.position_embedding == "relative" and index == 0:
        # HF T5Attention: relative_attention_bias Embedding(num_buckets, n_heads) in block 0.
        buckets = arch.relative_attention_num_buckets
        attn.append(
            Module(
                "self_attn.relative_attention_bias",
                "attention",
                (
                    Tensor(
                        "self_attn.relative_attention_bias.weight",
                        buckets * arch.num_heads,
                        buckets,
                    ),
                ),
            )
        )
    mods += attn
    if arch.kind == "encoder-decoder" and stack == "decoder":
        mods += [_norm(arch, "cross_attn_layernorm", "cross_attention")]
        mods += _attention(arch, "cross_attn", "cross_attention", tp)
    mlp = _moe(arch, tp, ep, etp) if is_moe_layer(arch, index) else _mlp(arch, tp)
    mods += [_norm(arch, "post_attention_layernorm", "mlp")] + mlp
    return tuple(mods)


def mtp_modules(arch: Architecture, tp: int = 1, ep: int = 1, etp: int = 1) -> tuple[Module, ...]:
    """One multi-token-prediction module's modules in forward order: enorm and hnorm, eh_proj
    (2h -> h, column-parallel), its block (the last layer's MLP kind), shared_head.norm. The
    embedding and output head are the main model's."""
    h = arch.hidden_size
    head = (
        _norm(arch, "enorm", "mtp"),
        _norm(arch, "hnorm", "mtp"),
        _linear("eh_proj", "mtp", h // tp, 2 * h, False),
    )
    block = block_modules(arch, "decoder", mtp_block_index(arch), tp, ep, etp)
    return head + block + (_norm(arch, "shared_head.norm", "mtp"),)


def unit_modules(
    arch: Architecture, name: str, stack: str, params: int, tp: int = 1, ep: int = 1, etp: int = 1
) -> tuple[Module, ...]:
    """A layout block's (or `mtp.i` module's) modules, scaled to its parameter count when the
    architecture is a stand-in for a bare parameter count (the matrices grow or shrink, the
    vectors stay)."""
    if name.startswith("mtp."):
        return _fitted(mtp_modules(arch, tp, ep, etp), params)
    index = int(name.rsplit(".", 1)[-1]) if name.rsplit(".", 1)[-1].isdigit() else 1
    return _fitted(block_modules(arch, stack, index, tp, ep, etp), params)


def _fitted(mods: tuple[Module, ...], total: int) -> tuple[Module, ...]:
    """The modules with their largest tensors resized so that they sum to `total` exactly."""
    have = sum(m.numel for m in mods)
    if have == total:
        return mods
    matrices = [t for m in mods for t in m.tensors if t.numel > t.rows]
    big = sum(t.numel for t in matrices)
    scale = (big + total - have) / big if big else 1.0
    resized = {t.name: max(1, int(t.numel * scale)) for t in matrices}
    largest = max(matrices, key=lambda t: (t.numel, t.name)).name if matrices else None
    if largest is not None:
        resized[largest] += total - (have - big + sum(resized.values()))
    out = []
    for m in mods:
        ts = tuple(
            Tensor(t.name, resized[t.name], max(1, resized[t.name] * t.rows // t.numel))
            if t.name in resized
            else t
            for t in m.tensors
        )
        out.append(Module(m.name, m.segment, ts, m.expert))
    assert sum(m.numel for m in out) == total, (total, sum(m.numel for m in out))
    return tuple(out)


def root_modules(
    arch: Architecture, tp: int, embedding_params: int, head_params: int, tied_copy: bool
) -> tuple[tuple[Module, ...], tuple[Module, ...]]:
    """The embedding unit's and the head unit's modules. A tied output projection on the
    embedding's stage is the word table itself (the same Tensor), so it is counted once; with
    pipeline parallelism the last stage holds its own copy (`tied_copy`). The embedding unit
    also holds what layout.py puts there (an encoder's final norm, a decoder's embedding extras),
    fitted to `embedding_params` as one more tensor."""
    h = arch.hidden_size
    word = Tensor("embed_tokens.weight", arch.vocab_size * h // tp, arch.vocab_size // tp)
    emb: list[Module] = []
    if embedding_params:
        emb.append(Module("embed_tokens", "embedding", (word,)))
        if arch.position_embedding == "learned" and arch.max_position_embeddings:
            n = arch.max_position_embeddings
            emb.append(
                Module(
                    "embed_positions", "embedding", (Tensor("embed_positions.weight", n * h, n),)
                )
            )
        if arch.token_type_vocab:
            n = arch.token_type_vocab
            emb.append(
                Module(
                    "token_type_embeddings",
                    "embedding",
                    (Tensor("token_type_embeddings.weight", n * h, n),),
                )
            )
        rest = embedding_params - sum(m.numel for m in emb)
        if rest > 0:
            emb.append(
                Module("embedding_extras", "embedding", (Tensor("embedding_extras", rest, rest),))
            )
    head: list[Module] = []
    if head_params:
        if arch.final_norm:
            head.append(_norm(arch, "norm", "head"))
        if arch.lm_head:
            out = (
                word
                if arch.tied_embeddings and not tied_copy
                else Tensor("lm_head.weight", word.numel, word.rows)
            )
            extra = (
                (Tensor("lm_head.bias", arch.vocab_size // tp, arch.vocab_size // tp),)
                if arch.lm_head_bias
                else ()
            )
            head.append(Module("lm_head", "head", (out, *extra)))
        if arch.pooler:
            head.append(_linear("pooler.dense", "head", h, h, True))
    return tuple(emb), tuple(head)


def unique_numel(modules) -> int:
    """Elements of the distinct tensors (a tied tensor counted once)."""
    return sum({t.name: t.numel for m in modules for t in m.tensors}.values())
