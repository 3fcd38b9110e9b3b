"""What every strategy shares: the compute work of one pipeline stage on one tensor-parallel rank,
the context a strategy builds its schedule in (the optimizer step: strategies/optimizer.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from simulator.execution import finetune
from simulator.execution import layout as layout_mod
from simulator.execution.opclass import ClassTimes, class_times, total
from simulator.execution.pipeline import Pass
from simulator.execution.schedule import Collective
from simulator.execution.tp_overlap import OverlapGemms, overlap_gemms
from simulator.model import ops as op_math
from simulator.model.architecture import Architecture
from simulator.spec.mesh import Group, Mesh
from simulator.spec.specs import Scenario
from simulator.system.compute import ComputeModel

# The attention-core ops that selective recompute re-runs (Korthikanti et al. 2022, Sec 4.2).
SELECTIVE_OPS = ("attn_scores", "softmax", "attn_dropout", "attn_over_values")

# The forward ops each Megatron-Core --recompute-modules submodule re-runs in backward
# (model/ops.py names; core_attn also matches the cross-attention core's "cross_" ops):
# layernorm, the input and pre-MLP norms (transformer_layer.py); moe_act, the experts'
# activation (experts.py); mla_up_proj, the q / kv up projections (multi_latent_attention.py;
# the RoPE application is not an op of its own); mlp, the dense MLP's GEMMs and activation
# (its norm and residual add lie outside the module); shared_experts, the shared experts'
# GEMMs and activation; moe, the whole MoE layer: router, permutation, sorts, experts,
# unpermutation and shared experts (its token dispatch collectives are not re-timed, as with
# full recompute).
RECOMPUTE_OPS: dict[str, frozenset[str]] = {
    "core_attn": frozenset(SELECTIVE_OPS),
    "layernorm": frozenset({"attn_norm", "mlp_norm"}),
    "moe_act": frozenset({"expert_act"}),
    "mla_up_proj": frozenset({"q_up_proj", "kv_up_proj"}),
    "mlp": frozenset({"mlp_gate", "mlp_up", "mlp_act", "mlp_down"}),
    "shared_experts": frozenset({"shared_gate", "shared_up", "shared_act", "shared_down"}),
    "moe": frozenset(
        {"router", "router_topk", "moe_permute", "moe_sort", "expert_gate", "expert_up"}
        | {"expert_act", "expert_down", "moe_unsort", "moe_unpermute", "shared_gate"}
        | {"shared_up", "shared_act", "shared_down", "shared_add"}
    ),
}


@dataclass(frozen=True, kw_only=True)
class SegmentWork:
    """A sub-layer between two tensor-parallel communication points (attention or MLP)."""

    name: str
    fwd_s: float
    bwd_s: float
    # The same kernels' time by op class (the breakdown's; they sum to fwd_s / bwd_s).
    fwd_classes: ClassTimes
    bwd_classes: ClassTimes
    # The collectives the parallel dimensions insert around it (model/ops.py Segment).
    before: tuple[op_math.Comm, ...] = ()
    after: tuple[op_math.Comm, ...] = ()
    bwd_before: tuple[op_math.Comm, ...] = ()
    bwd_after: tuple[op_math.Comm, ...] = ()
    # The GEMMs beside its tensor-parallel points (execution/tp_overlap.py), for tp_comm_overlap.
    overlap: OverlapGemms | None = None


@dataclass(frozen=True, kw_only=True)
class UnitWork:
    """One unit's compute for one micro-batch on one rank: times and activation bytes."""

    name: str
    params: int  # on this tensor-parallel rank
    segments: tuple[SegmentWork, ...]  # in forward order
    recompute_s: float
    recompute_classes: ClassTimes  # recompute_s by op class
    act_bytes: int
    working_bytes: int

    @cached_property
    def fwd_s(self) -> float:
        return sum(g.fwd_s for g in self.segments)

    @cached_property
    def bwd_s(self) -> float:
        return sum(g.bwd_s for g in self.segments)

    @cached_property
    def fwd_classes(self) -> ClassTimes:
        return total(g.fwd_classes for g in self.segments)

    @cached_property
    def bwd_classes(self) -> ClassTimes:
        return total(g.bwd_classes for g in self.segments)


@dataclass(frozen=True, kw_only=True)
class ChunkWork:
    """One model chunk on its stage: the embedding (first chunk), blocks, the head (last chunk)."""

    index: int
    embedding: UnitWork | None
    blocks: tuple[UnitWork, ...]
    head: UnitWork | None

    @property
    def units(self) -> list[UnitWork]:
        """The embedding, blocks and head, in forward order."""
        return _units(self)

    @property
    def edge_params(self) -> int:
        """Parameters whose gradients are ready at the end of the chunk's backward (embedding)."""
        return self.embedding.params if self.embedding else 0


@dataclass(frozen=True, kw_only=True)
class Context:
    """Everything a strategy needs to build one stage's schedule."""

    scenario: Scenario
    static_bytes: int
    cm: ComputeModel
    stage: int
    chunks: dict[int, ChunkWork]
    order: tuple[Pass, ...]
    mesh: Mesh
    tp_bytes: int  # b x s x h x activation bytes: the tensor-parallel buffer (s / cp)
    # The groups a layer's collectives run on, by mesh dimension (tp, cp, ep, etp).
    groups: dict[str, Group]
    # A collective's standalone time, where it is folded into a compute task (Task.inline).
    inline_s: Callable[[Collective], float]

    @property
    def pb(self) -> int:
        return self.scenario.training.precision.weight_bytes

    @property
    def gb(self) -> int:
        return self.scenario.training.precision.grad_bytes

    @property
    def data_group(self) -> Group:
        """The ranks a stage's gradients reduce over: every data-parallel dimension of the mesh
        and the context-parallel one, whose ranks hold the same parameters (Strategy.grad_group)."""
        return self.mesh.group(*[d for d, _ in self.mesh.dims if d.startswith("dp") or d == "cp"])

    @property
    def stage_params(self) -> int:
        return sum(u.params for c in self.chunks.values() for u in _units(c))


def _units(c: ChunkWork) -> list[UnitWork]:
    return [u for u in (c.embedding, *c.blocks, c.head) if u is not None]


def _segment_works(
    cm: ComputeModel,
    segments: list[op_math.Segment],
    frozen: frozenset[str] = frozenset(),
    rerun: frozenset[str] = frozenset(),
    overlap: bool = True,
) -> tuple[SegmentWork, ...]:
    """Each sub-layer's forward and backward time, in all and by op class, from one op list
    (fine-tuning: `frozen` ops compute no weight gradient, `rerun` ops run again in backward;
    `overlap`: the GEMMs beside its tensor-parallel points, for tp_comm_overlap)."""
    works = []
    for g in segments:
        fwd = list(g.ops)
        bwd = op_math.backward_ops(fwd, frozen=frozen, rerun=rerun)
        works.append(
            SegmentWork(
                name=g.name,
                fwd_s=cm.ops_time_s(fwd),
                bwd_s=cm.ops_time_s(bwd),
                fwd_classes=class_times(cm, fwd),
                bwd_classes=class_times(cm, bwd),
                before=g.before,
                after=g.after,
                bwd_before=g.bwd_before,
                bwd_after=g.bwd_after,
                overlap=overlap_gemms(cm, fwd, bwd)
                if overlap and g.userbuffers and (g.before or g.after)
                else None,
            )
        )
    return tuple(works)


def _block_work(
    scenario: Scenario,
    cm: ComputeModel,
    arch: Architecture,
    block: layout_mod.Block,
    ep_local: int = 1,
) -> tuple[tuple[SegmentWork, ...], float, ClassTimes]:
    """One block of its kind on one rank: its sub-layers' times and the time (in all and by
    op class) of the ops activation checkpointing re-runs in its backward. `ep_local`: the
    expert-parallel ranks on one host (the deepep dispatcher's NVLink hop)."""
    t, par = scenario.training, scenario.training.parallel
    stack = block.stack
    more: dict = {}
    if par.cp > 1:
        more |= {"cp": par.cp, "cp_comm": par.cp_comm}
    if block.moe:
        more |= {
            "index": block.index,
            "ep": par.ep,
            "etp": par.etp,
            "load_imbalance": t.moe.load_imbalance,
            "dispatch": op_math.Dispatch(
                kind=t.moe.dispatcher,
                ep_local=ep_local,
                fp8=t.precision.gemm_dtype == "fp8",
                shared_overlap=t.moe.overlap == "shared-expert",
            ),
        }
    segments = op_math.layer_segments(
        arch,
        t.seq_len,
        t.micro_batch_size,
        t.flash_attention,
        stack=stack,
        dtype_bytes=t.precision.activation_bytes,
        dropout=t.dropout,
        causal=stack == "decoder",
        tp=par.tp,
        sp=par.sequence_parallel,
        kernels=t.kernels,
        **more,
    )
    frozen = rerun = frozenset[str]()
    if t.finetune.adapters:
        # LoRA / QLoRA: adapter GEMMs and dequantization kernels (execution/finetune.py).
        segments = finetune.segments(scenario, arch, segments)
        frozen, rerun = finetune.FROZEN_OPS, finetune.rerun_ops(segments)
    if block.mtp:  # a multi-token-prediction module also projects and runs its own head
        segments.append(
            op_math.mtp_segment(
                arch,
                t.seq_len,
                t.micro_batch_size,
                t.precision.activation_bytes,
                par.tp,
                par.sequence_parallel,
                cp=par.cp,
                kernels=t.kernels,
            )
        )
    ops = [op for g in segments for op in g.ops]
    if t.activation_checkpointing == "full":
        again = ops
    elif t.activation_checkpointing == "selective":
        mods = t.recompute_modules if t.recompute_modules is not None else ("core_attn",)
        names = frozenset().union(*(RECOMPUTE_OPS[m] for m in mods if m != "core_attn"))
        attn = frozenset(SELECTIVE_OPS) if "core_attn" in mods else frozenset()
        again = [o for o in ops if o.name.removeprefix("cross_") in attn or o.name in names]
    else:
        again = []
    works = _segment_works(cm, segments, frozen, rerun)
    return works, cm.ops_time_s(again), class_times(cm, again)


def _edge_unit(
    cm: ComputeModel,
    params: int,
    segment: op_math.Segment,
    act_bytes: int,
    frozen: frozenset[str] = frozenset(),
) -> UnitWork:
    """The embedding or the head: one segment (with its tensor-parallel collectives: model/ops.py
    embedding_segment, head_segment), nothing recomputed; Transformer Engine's userbuffers do
    not cover them (no tp_comm_overlap)."""
    return UnitWork(
        name=segment.name,
        params=params,
        segments=_segment_works(cm, [segment], frozen, overlap=False),
        recompute_s=0.0,
        recompute_classes=ClassTimes(),
        act_bytes=act_bytes,
        working_bytes=0,
    )


def stage_work(
    scenario: Scenario, cm: ComputeModel, stage: int, ep_local: int = 1
) -> dict[int, ChunkWork]:
    """The chunks of one stage with every unit's forward, backward and recompute time on one
    rank; blocks of one kind are alike, so their kernels are timed once."""
    t, par = scenario.training, scenario.training.parallel
    lay = layout_mod.model_layout(scenario.model, par, stage)
    act_b, tp, sp = t.precision.activation_bytes, par.tp, par.sequence_parallel
    cp_kw = {"cp": par.cp, "kernels": t.kernels} if par.cp > 1 else {"kernels": t.kernels}
    acts = layout_mod.stage_activations(scenario, lay)
    frozen = frozenset[str]()
    if t.finetune.adapters:
        # Units carry their trainable parameters (the adapters): what data parallelism
        # reduces and the optimizer updates; the embedding and head are frozen.
        acts = finetune.activations(scenario, lay)
        lay = finetune.trainable_layout(scenario, lay)
        frozen = finetune.FROZEN_OPS
    arch, s, b = lay.arch, t.seq_len, t.micro_batch_size
    timed: dict = {}
    for blk in lay.blocks:
        if blk.kind not in timed:
            timed[blk.kind] = _block_work(scenario, cm, arch, blk, ep_local)
    blocks = {
        blk.name: UnitWork(
            name=blk.name,
            params=blk.params,
            segments=timed[blk.kind][0],
            recompute_s=timed[blk.kind][1],
            recompute_classes=timed[blk.kind][2],
            act_bytes=acts.blocks[i],
            working_bytes=acts.working[i],
        )
        for i, blk in enumerate(lay.blocks)
    }
    chunks = {}
    for chunk in lay.chunks:
        embedding = head = None
        if chunk.embedding and lay.has_edges:
            seg = op_math.embedding_segment(
                arch, s, b, act_b, dropout=t.dropout, tp=tp, sp=sp, **cp_kw
            )
            embedding = _edge_unit(cm, lay.embedding_params, seg, acts.embedding, frozen)
        if chunk.head and lay.has_edges:
            seg = op_math.head_segment(arch, s, b, act_b, tp=tp, sp=sp, **cp_kw)
            head = _edge_unit(cm, lay.head_params, seg, acts.output, frozen)
        chunks[chunk.index] = ChunkWork(
            index=chunk.index,
            embedding=embedding,
            head=head,
            blocks=tuple(blocks[blk.name] for blk in chunk.blocks),
        )
    return chunks


def shard_of(params: int, n: int) -> int:
    return math.ceil(params / n)
