"""The model as one pipeline stage holds it on one tensor-parallel rank, in the units a
data-parallel framework wraps.

Blocks are the FSDP wrap units (PyTorch FSDP `transformer_auto_wrap_policy`; DeepSpeed
ZeRO-3 fetches per submodule, which for a transformer is per block). Everything else -
embeddings, final norms, the (possibly tied) output head, a BERT pooler - belongs to the
root unit, which FSDP keeps unsharded from the start of forward to the end of backward.

Pipeline parallelism splits the blocks into pp x v model chunks (Megatron: chunk g on stage
g % pp); the embedding lives on the first chunk's stage and the head on the last one's. A
tied output projection needs the word table on the last stage too: Megatron keeps a copy
there and all-reduces its gradient with the first stage (the "embedding group").
Tensor parallelism splits each unit's GEMM weights and vocabulary tables over tp ranks.

Both the analytic memory model (memory.py) and the strategies' schedules read these sizes,
so the timeline's peak and the analytic peak are computed from the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from simulator.model import activations as act_math
from simulator.model.architecture import Architecture, parameter_units, word_embedding_params
from simulator.model.spec import ModelSpec
from simulator.spec.specs import ParallelSpec


@dataclass(frozen=True, kw_only=True)
class Block:
    name: str
    stack: str  # "encoder" | "decoder"
    params: int  # on one tensor-parallel rank


@dataclass(frozen=True, kw_only=True)
class Chunk:
    index: int  # global model chunk g
    blocks: tuple[Block, ...]
    embedding: bool  # holds the embedding (g == 0)
    head: bool  # holds the head (g == last)


@dataclass(frozen=True, kw_only=True)
class Layout:
    """One pipeline stage on one tensor-parallel rank."""

    arch: Architecture  # the real architecture, or a GPT-3-shaped stand-in
    stage: int
    chunks: tuple[Chunk, ...]  # this stage's chunks in virtual order
    embedding_params: int  # embeddings (on the first stage)
    head_params: int  # final norm, output projection (+ a tied copy when pp > 1), pooler
    has_edges: bool  # embeddings and head are modelled (False for a bare parameter count)

    @property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for c in self.chunks for b in c.blocks)

    @property
    def root_params(self) -> int:
        return self.embedding_params + self.head_params

    @property
    def params(self) -> int:
        return self.root_params + sum(b.params for b in self.blocks)

    @property
    def edge_params(self) -> int:
        """Root parameters whose gradients are ready at the end of backward (embeddings)."""
        return self.embedding_params


@dataclass(frozen=True, kw_only=True)
class Activations:
    """Bytes of activations kept for backward, per unit, for one micro-batch."""

    embedding: int
    blocks: tuple[int, ...]  # what each block keeps through forward (its checkpoint if full)
    working: tuple[int, ...]  # extra bytes live during each block's backward (recompute)
    output: int  # final norm, logits and loss

    @property
    def after_forward(self) -> int:
        return self.embedding + sum(self.blocks) + self.output


def _all_blocks(m: ModelSpec, units, tp: int) -> list[Block]:
    if m.arch is None:
        per_block = math.ceil(m.params / m.num_layers)
        sizes = [per_block] * (m.num_layers - 1) + [m.params - per_block * (m.num_layers - 1)]
        return [
            Block(name=f"layers.{i}", stack="decoder", params=math.ceil(p / tp))
            for i, p in enumerate(sizes)
        ]
    return [
        Block(name=u.name, stack=_stack(m.arch, u.name), params=u.params)
        for u in units
        if u.kind == "block"
    ]


def _chunk_sizes(layers: int, par: ParallelSpec) -> list[int]:
    n = par.pp * par.pipeline.virtual_stages
    return list(par.pipeline.layers_per_stage) or [layers // n] * n


# A frozen dataclass: one shared default instance is safe.
def model_layout(m: ModelSpec, par: ParallelSpec = ParallelSpec(), stage: int = 0) -> Layout:  # noqa: B008
    """What pipeline stage `stage` holds of the model, on one tensor-parallel rank."""
    return _stage_layout(m, par, stage, *_units_and_blocks(m, par.tp))


def model_layouts(m: ModelSpec, par: ParallelSpec = ParallelSpec()) -> list[Layout]:  # noqa: B008
    """Every pipeline stage's layout (the model's units counted once)."""
    parts = _units_and_blocks(m, par.tp)
    return [_stage_layout(m, par, stage, *parts) for stage in range(par.pp)]


def _units_and_blocks(m: ModelSpec, tp: int) -> tuple[list, list[Block]]:
    units = parameter_units(m.arch, tp) if m.arch is not None else []
    return units, _all_blocks(m, units, tp)


def _stage_layout(
    m: ModelSpec, par: ParallelSpec, stage: int, units: list, blocks: list[Block]
) -> Layout:
    tp, pp, v = par.tp, par.pp, par.pipeline.virtual_stages
    sizes = _chunk_sizes(len(blocks), par)
    starts = [sum(sizes[:g]) for g in range(len(sizes))]
    last = len(sizes) - 1
    chunks = tuple(
        Chunk(
            index=g,
            blocks=tuple(blocks[starts[g] : starts[g] + sizes[g]]),
            embedding=g == 0,
            head=g == last,
        )
        for g in (k * pp + stage for k in range(v))
    )
    if m.arch is None:
        return Layout(
            arch=m.shape,
            stage=stage,
            chunks=chunks,
            embedding_params=0,
            head_params=0,
            has_edges=False,
        )
    emb = sum(u.params for u in units if u.kind in ("embedding", "norm")) if stage == 0 else 0
    head = sum(u.params for u in units if u.kind == "head") if stage == last % pp else 0
    if stage == last % pp and pp > 1 and m.arch.lm_head and m.arch.tied_embeddings:
        head += word_embedding_params(m.arch, tp)  # Megatron's copy of the tied word table
    return Layout(
        arch=m.arch,
        stage=stage,
        chunks=chunks,
        embedding_params=emb,
        head_params=head,
        has_edges=True,
    )


def _stack(arch: Architecture, name: str) -> str:
    if name.startswith("encoder.") or arch.kind == "encoder":
        return "encoder"
    return "decoder"


class _EdgeArgs(TypedDict):
    """The keyword arguments the embedding and output activation formulas share."""

    seq_len: int
    micro_batch: int
    dtype_bytes: int
    tp: int
    sp: bool


class _BlockArgs(_EdgeArgs):
    """The keyword arguments of the per-block activation formula, less the stack and mode."""

    flash_attention: bool
    dropout: bool


def activations(
    layout: Layout,
    seq_len: int,
    micro_batch: int,
    checkpointing: str,
    flash: bool,
    dtype_bytes: int,
    tp: int = 1,
    sp: bool = False,
    dropout: bool = True,
) -> Activations:
    """Korthikanti et al. 2022 per-block activations on one rank, and the recompute working set
    in backward. Blocks of one stack are alike, so each stack's figures are computed once."""
    arch = layout.arch
    kw: _BlockArgs = {
        "seq_len": seq_len,
        "micro_batch": micro_batch,
        "flash_attention": flash,
        "dtype_bytes": dtype_bytes,
        "tp": tp,
        "sp": sp,
        "dropout": dropout,
    }
    per_stack: dict[str, tuple[int, int]] = {}
    for stack in {b.stack for b in layout.blocks}:
        stored = act_math.activation_bytes_per_layer(
            arch, checkpointing=checkpointing, stack=stack, **kw
        )
        full = act_math.activation_bytes_per_layer(arch, checkpointing="none", stack=stack, **kw)
        if checkpointing == "full":
            working = (
                full  # the block is recomputed in backward: its full activations are live again
            )
        elif checkpointing == "selective":
            working = full - stored  # only the attention core (the a*s^2 terms) is recomputed
        else:
            working = 0
        per_stack[stack] = (stored, working)
    edge: _EdgeArgs = {
        "seq_len": seq_len,
        "micro_batch": micro_batch,
        "dtype_bytes": dtype_bytes,
        "tp": tp,
        "sp": sp,
    }
    first = any(c.embedding for c in layout.chunks)
    last = any(c.head for c in layout.chunks)
    emb = (
        act_math.embedding_activation_bytes(arch, **edge, dropout=dropout)
        if layout.has_edges and first
        else 0
    )
    out = act_math.output_activation_bytes(arch, **edge) if layout.has_edges and last else 0
    return Activations(
        embedding=emb,
        blocks=tuple(per_stack[b.stack][0] for b in layout.blocks),
        working=tuple(per_stack[b.stack][1] for b in layout.blocks),
        output=out,
    )
