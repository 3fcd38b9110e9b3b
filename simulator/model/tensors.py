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
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model.architecture import Architecture, norm_params


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
    segment: str  # attention | cross_attention | mlp | embedding | head
    tensors: tuple[Tensor, ...] = ()

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)


def _norm(arch: Architecture, name: str, segment: str) -> Module:
    h = arch.hidden_size
    ts = (Tensor(f"{name}.weight", h, h),) + (
        (Tensor(f"{name}.bias", h, h),) if arch.norm == "layernorm" else ()
    )
    assert sum(t.numel for t in ts) == norm_params(arch)
    return Module(name, segment, ts)


def _linear(
    name: str, segment: str, rows: int, cols: int, bias: bool, bias_rows: int | None = None
) -> Module:
    ts = [Tensor(f"{name}.weight", rows * cols, rows)]
    if bias:
        b = rows if bias_rows is None else bias_rows
        ts.append(Tensor(f"{name}.bias", b, b))
    return Module(name, segment, tuple(ts))


def _attention(arch: Architecture, prefix: str, segment: str, tp: int) -> list[Module]:
    h, q, kv = arch.hidden_size, arch.q_dim // tp, arch.kv_dim // tp
    qkv_bias = arch.bias if arch.qkv_bias is None else arch.qkv_bias
    return [
        Module(prefix, segment),
        _linear(f"{prefix}.q_proj", segment, q, h, qkv_bias),
        _linear(f"{prefix}.k_proj", segment, kv, h, qkv_bias),
        _linear(f"{prefix}.v_proj", segment, kv, h, qkv_bias),
        # Row-parallel: its input width is split, its bias is whole.
        _linear(f"{prefix}.o_proj", segment, h, q, arch.bias, h),
    ]


def _mlp(arch: Architecture, tp: int) -> list[Module]:
    h, f = arch.hidden_size, arch.ffn_hidden_size // tp
    ups = ["gate_proj", "up_proj"] if arch.gated else ["up_proj"]
    return (
        [Module("mlp", "mlp")]
        + [_linear(f"mlp.{n}", "mlp", f, h, arch.bias) for n in ups]
        + [_linear("mlp.down_proj", "mlp", h, f, arch.bias, h), Module("mlp.act_fn", "mlp")]
    )


def block_modules(
    arch: Architecture, stack: str = "decoder", index: int = 1, tp: int = 1
) -> tuple[Module, ...]:
    """One block's modules in forward order (the block container first), as written: not fitted
    to architecture.py's count, so a test can hold the two independent counts equal."""
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
    mods += [_norm(arch, "post_attention_layernorm", "mlp")] + _mlp(arch, tp)
    return tuple(mods)


def unit_modules(
    arch: Architecture, name: str, stack: str, params: int, tp: int = 1
) -> tuple[Module, ...]:
    """A layout block's modules, scaled to its parameter count when the architecture is a
    stand-in for a bare parameter count (the matrices grow or shrink, the vectors stay)."""
    index = int(name.rsplit(".", 1)[-1]) if name.rsplit(".", 1)[-1].isdigit() else 1
    return _fitted(block_modules(arch, stack, index, tp), params)


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
        out.append(Module(m.name, m.segment, ts))
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
