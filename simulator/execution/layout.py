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

import functools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TypedDict

from simulator.model import activations as act_math
from simulator.model.architecture import (
    Architecture,
    is_moe_layer,
    parameter_units,
    word_embedding_params,
)
from simulator.model.spec import ModelSpec
from simulator.spec.specs import ParallelSpec, PipelineSpec, Scenario


@dataclass(frozen=True, kw_only=True)
class Block:
    name: str
    stack: str  # "encoder" | "decoder"
    params: int  # on one tensor-parallel rank (its local experts included)
    # Its position in its stack (which layers are MoE: architecture.is_moe_layer); an MTP
    # module's block, the stack's last layer's.
    index: int = 1
    moe: bool = False  # an MoE block
    expert_params: int = 0  # the routed experts' part of params (reduced over edp, not dp)
    mtp: bool = False  # a multi-token-prediction module (its block and its own output head)

    @property
    def kind(self) -> tuple[str, bool, bool]:
        """Blocks of one kind have the same kernels and activations (timed once)."""
        return (self.stack, self.moe, self.mtp)


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

    # Computed once per layout (a frozen dataclass: cached_property fills the instance's
    # __dict__, not a field); layouts are shared by every scenario with the same split.
    @cached_property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for c in self.chunks for b in c.blocks)

    @cached_property
    def expert_params(self) -> int:
        """Routed-expert parameters of the stage on this rank (reduced over edp)."""
        return sum(b.expert_params for b in self.blocks)

    @property
    def root_params(self) -> int:
        return self.embedding_params + self.head_params

    @cached_property
    def params(self) -> int:
        return self.root_params + sum(b.params for b in self.blocks)

    @property
    def edge_params(self) -> int:
        """Root parameters whose gradients are ready at the end of backward (embeddings)."""
        return self.embedding_params

    @cached_property
    def kinds(self) -> tuple[tuple[Block, ...], tuple[int, ...]]:
        """The first block of each kind (Block.kind) in order, and each block's kind by its
        position there: blocks of one kind have the same activations and kernels."""
        first: dict[tuple[str, bool, bool], int] = {}
        reps: list[Block] = []
        for b in self.blocks:
            if b.kind not in first:
                first[b.kind] = len(reps)
                reps.append(b)
        return tuple(reps), tuple(first[b.kind] for b in self.blocks)


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
    """The blocks; an MTP module (DeepSeek-V3) is a block of the decoder after the stack, as
    its transformer block dominates its cost (its eh_proj GEMM is 2h x h)."""
    if m.arch is None:
        per_block = math.ceil(m.params / m.num_layers)
        sizes = [per_block] * (m.num_layers - 1) + [m.params - per_block * (m.num_layers - 1)]
        return [
            Block(name=f"layers.{i}", stack="decoder", params=math.ceil(p / tp))
            for i, p in enumerate(sizes)
        ]
    arch = m.arch
    out = []
    for u in units:
        if u.kind not in ("block", "mtp"):
            continue
        tail = u.name.rsplit(".", 1)[-1]
        # An MTP module's block is of the stack's last layer's kind (DeepSeek-V3's: MoE).
        index = arch.num_layers - 1 if u.kind == "mtp" else int(tail) if tail.isdigit() else 1
        out.append(
            Block(
                name=u.name,
                stack=_stack(arch, u.name),
                params=u.params,
                index=index,
                moe=is_moe_layer(arch, index),
                expert_params=getattr(u, "expert_params", 0),
                mtp=u.kind == "mtp",
            )
        )
    return out


def _chunk_sizes(layers: int, par: ParallelSpec) -> list[int]:
    n = par.pp * par.pipeline.virtual_stages
    return list(par.pipeline.layers_per_stage) or [layers // n] * n


# A frozen dataclass: one shared default instance is safe.
def model_layout(m: ModelSpec, par: ParallelSpec = ParallelSpec(), stage: int = 0) -> Layout:  # noqa: B008
    """What pipeline stage `stage` holds of the model, on one tensor-parallel rank."""
    return _layouts(m, *_layout_key(par))[stage]


def model_layouts(m: ModelSpec, par: ParallelSpec = ParallelSpec()) -> list[Layout]:  # noqa: B008
    """Every pipeline stage's layout (the model's units counted once)."""
    return list(_layouts(m, *_layout_key(par)))


def _layout_key(par: ParallelSpec) -> tuple[int, int, int, tuple[int, ...], int, int]:
    """The parallel degrees a layout depends on: tp, pp, virtual stages, layers per chunk, ep, etp
    (not dp, cp, sequence parallelism or the schedule)."""
    pipe = par.pipeline
    return par.tp, par.pp, pipe.virtual_stages, tuple(pipe.layers_per_stage), par.ep, par.etp


# Memo of the stages' layouts: a pure function of a frozen (hashable) ModelSpec and the degrees of
# _layout_key, asked for by every memory check, estimate and schedule of a layout search with the
# same model split (whatever its data-parallel strategy, recomputation or micro-batch). The
# layouts are frozen and shared; bounded.
@functools.lru_cache(maxsize=1024)
def _layouts(
    m: ModelSpec, tp: int, pp: int, v: int, layers_per_stage: tuple[int, ...], ep: int, etp: int
) -> tuple[Layout, ...]:
    par = ParallelSpec(
        tp=tp,
        pp=pp,
        ep=ep,
        etp=etp,
        pipeline=PipelineSpec(virtual_stages=v, layers_per_stage=layers_per_stage),
    )
    parts = _units_and_blocks(m, par)
    return tuple(_stage_layout(m, par, stage, *parts) for stage in range(pp))


def _units_and_blocks(m: ModelSpec, par: ParallelSpec) -> tuple[list, list[Block]]:
    if m.arch is None:
        units = []
    elif m.arch.moe is None:
        units = parameter_units(m.arch, par.tp)
    else:
        units = parameter_units(m.arch, par.tp, ep=par.ep, etp=par.etp)
    return units, _all_blocks(m, units, par.tp)


def _stage_layout(
    m: ModelSpec, par: ParallelSpec, stage: int, units: list, blocks: list[Block]
) -> Layout:
    tp, pp, v = par.tp, par.pp, par.pipeline.virtual_stages
    # MTP modules run after the main stack's last layer, beside the output head (DeepSeek-V3
    # Sec 2.2): they go to the last chunk, which layers_per_stage does not count.
    mtp = sum(1 for b in blocks if b.name.startswith("mtp."))
    sizes = _chunk_sizes(len(blocks) - mtp, par)
    sizes[-1] += mtp
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


class MoEArgs(TypedDict, total=False):
    """The expert layout an MoE block's activations depend on (ops.py's keywords)."""

    ep: int
    etp: int
    load_imbalance: float


class _BlockArgs(_EdgeArgs):
    """The keyword arguments of the per-block activation formula, less the stack and mode."""

    flash_attention: bool
    dropout: bool
    gemm_input_bytes: int | None


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
    *,
    cp: int = 1,
    cp_comm: str = "ring",
    moe: MoEArgs | None = None,
    recompute: tuple[str, ...] | None = None,
    gemm_input_bytes: int | None = None,
) -> Activations:
    """Korthikanti et al. 2022 per-block activations on one rank, and the recompute working set
    in backward. Blocks of one kind (stack, MoE or dense) are alike, so each kind's figures are
    computed once. `cp` divides the sequence; `moe` gives the MoE blocks' expert layout;
    `recompute` the modules selective checkpointing recomputes (None: the attention core);
    `gemm_input_bytes` the element size GEMMs keep their inputs in (None: dtype_bytes)."""
    arch = layout.arch
    kw: _BlockArgs = {
        "seq_len": seq_len,
        "micro_batch": micro_batch,
        "flash_attention": flash,
        "dtype_bytes": dtype_bytes,
        "tp": tp,
        "sp": sp,
        "dropout": dropout,
        "gemm_input_bytes": gemm_input_bytes,
    }
    extra: dict = {"cp": cp} if cp > 1 else {}
    block_extra = {**extra, "cp_comm": cp_comm} if cp > 1 else {}
    reps, kind_of = layout.kinds
    stored_by_kind: list[int] = []
    working_by_kind: list[int] = []
    for block in reps:
        more = dict(block_extra)
        if block.moe:
            more |= {"index": block.index, **(moe or {})}
        if checkpointing == "selective" and recompute is not None:
            more["recompute"] = recompute
        stored = act_math.activation_bytes_per_layer(
            arch, checkpointing=checkpointing, stack=block.stack, **kw, **more
        )
        full = act_math.activation_bytes_per_layer(
            arch, checkpointing="none", stack=block.stack, **kw, **more
        )
        if checkpointing == "full":
            working = (
                full  # the block is recomputed in backward: its full activations are live again
            )
        elif checkpointing == "selective":
            working = full - stored  # the recomputed modules' terms are live again
        else:
            working = 0
        if block.mtp:
            # Its own output head (act_math.output_activation_bytes: final norm and projection
            # inputs, the fp32 logits) and the inputs of its two norms and of its d x 2d
            # projection: h + h + 2h per token (DeepSeek-V3 Sec 2.2), s / tp with sp.
            tokens = micro_batch * (seq_len // cp) // (tp if sp else 1)
            head = act_math.output_activation_bytes(
                arch, seq_len, micro_batch, dtype_bytes, tp, sp, **extra
            )
            head += 4 * tokens * arch.hidden_size * dtype_bytes
            if checkpointing == "full":
                working += head
            else:
                stored += head
        stored_by_kind.append(stored)
        working_by_kind.append(working)
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
        act_math.embedding_activation_bytes(arch, **edge, dropout=dropout, **extra)
        if layout.has_edges and first
        else 0
    )
    out = (
        act_math.output_activation_bytes(arch, **edge, **extra) if layout.has_edges and last else 0
    )
    return Activations(
        embedding=emb,
        blocks=tuple(map(stored_by_kind.__getitem__, kind_of)),
        working=tuple(map(working_by_kind.__getitem__, kind_of)),
        output=out,
    )


def stage_activations(scenario: Scenario, lay: Layout) -> Activations:
    """`activations` with the scenario's training settings (the memory model's and the
    schedule's, so that the two cannot differ)."""
    t, par = scenario.training, scenario.training.parallel
    moe: MoEArgs = {"ep": par.ep, "etp": par.etp, "load_imbalance": t.moe.load_imbalance}
    return activations(
        lay,
        t.seq_len,
        t.micro_batch_size,
        t.activation_checkpointing,
        t.flash_attention,
        t.precision.activation_bytes,
        par.tp,
        par.sequence_parallel,
        t.dropout,
        cp=par.cp,
        cp_comm=par.cp_comm,
        moe=moe,
        recompute=t.recompute_modules,
        # A frozen base (LoRA) keeps no GEMM input for a weight gradient (Transformer Engine
        # saves one only for a weight that requires it); the adapters keep theirs in 16 bits,
        # which the 16-bit count stands for (execution/finetune.py).
        gemm_input_bytes=None if t.finetune.adapters else t.precision.gemm_input_bytes,
    )
