"""What every strategy shares: the compute work of one pipeline stage on one tensor-parallel rank,
the context a strategy builds its schedule in, and the optimizer step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from simulator.execution import layout as layout_mod
from simulator.execution.pipeline import Pass
from simulator.execution.schedule import ScheduleBuilder
from simulator.model import ops as op_math
from simulator.model.precision import optimizer_state_bytes_per_param
from simulator.spec.mesh import Mesh
from simulator.spec.specs import Scenario
from simulator.system.compute import ComputeModel

# The attention-core ops that selective recompute re-runs (Korthikanti et al. 2022, Sec 4.2).
SELECTIVE_OPS = ("attn_scores", "softmax", "attn_dropout", "attn_over_values")


@dataclass(frozen=True, kw_only=True)
class SegmentWork:
    """A sub-layer between two tensor-parallel communication points (attention or MLP)."""

    name: str
    fwd_s: float
    bwd_s: float


@dataclass(frozen=True, kw_only=True)
class UnitWork:
    """One unit's compute for one micro-batch on one rank: times and activation bytes."""

    name: str
    params: int  # on this tensor-parallel rank
    segments: tuple[SegmentWork, ...]  # in forward order
    recompute_s: float
    act_bytes: int
    working_bytes: int

    @cached_property
    def fwd_s(self) -> float:
        return sum(g.fwd_s for g in self.segments)

    @cached_property
    def bwd_s(self) -> float:
        return sum(g.bwd_s for g in self.segments)


@dataclass(frozen=True, kw_only=True)
class ChunkWork:
    """One model chunk on its stage: the embedding (first chunk), blocks, the head (last chunk)."""

    index: int
    embedding: UnitWork | None
    blocks: tuple[UnitWork, ...]
    head: UnitWork | None

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
    tp_bytes: int  # b x s x h x activation bytes: the tensor-parallel buffer
    tp_time_s: dict[str, float]  # standalone time of each tensor-parallel collective

    @property
    def pb(self) -> int:
        return self.scenario.training.precision.weight_bytes

    @property
    def gb(self) -> int:
        return self.scenario.training.precision.grad_bytes

    @property
    def stage_params(self) -> int:
        return sum(u.params for c in self.chunks.values() for u in _units(c))


def _units(c: ChunkWork) -> list[UnitWork]:
    return [u for u in (c.embedding, *c.blocks, c.head) if u is not None]


def _segment_works(cm: ComputeModel, segments: list[op_math.Segment]) -> tuple[SegmentWork, ...]:
    return tuple(
        SegmentWork(
            name=g.name,
            fwd_s=cm.ops_time_s(list(g.ops)),
            bwd_s=cm.ops_time_s(op_math.backward_ops(list(g.ops))),
        )
        for g in segments
    )


def stage_work(scenario: Scenario, cm: ComputeModel, stage: int) -> dict[int, ChunkWork]:
    """The chunks of one stage with every unit's forward, backward and recompute time on one
    tensor-parallel rank; blocks of one stack are alike, so their kernels are timed once."""
    t, par = scenario.training, scenario.training.parallel
    lay = layout_mod.model_layout(scenario.model, par, stage)
    act_b, tp, sp = t.precision.activation_bytes, par.tp, par.sequence_parallel
    acts = layout_mod.activations(
        lay,
        t.seq_len,
        t.micro_batch_size,
        t.activation_checkpointing,
        t.flash_attention,
        act_b,
        tp,
        sp,
        t.dropout,
    )
    arch, s, b = lay.arch, t.seq_len, t.micro_batch_size
    timed: dict[str, tuple[tuple[SegmentWork, ...], float]] = {}
    for stack in {blk.stack for blk in lay.blocks}:
        segments = op_math.layer_segments(
            arch,
            s,
            b,
            t.flash_attention,
            stack=stack,
            dtype_bytes=act_b,
            dropout=t.dropout,
            causal=stack == "decoder",
            tp=tp,
            sp=sp,
        )
        ops = [op for g in segments for op in g.ops]
        if t.activation_checkpointing == "full":
            again = ops
        elif t.activation_checkpointing == "selective":
            again = [o for o in ops if o.name.removeprefix("cross_") in SELECTIVE_OPS]
        else:
            again = []
        timed[stack] = (_segment_works(cm, segments), cm.ops_time_s(again))
    blocks = {
        blk.name: UnitWork(
            name=blk.name,
            params=blk.params,
            segments=timed[blk.stack][0],
            recompute_s=timed[blk.stack][1],
            act_bytes=acts.blocks[i],
            working_bytes=acts.working[i],
        )
        for i, blk in enumerate(lay.blocks)
    }
    chunks = {}
    for chunk in lay.chunks:
        embedding = head = None
        if chunk.embedding and lay.has_edges:
            ops = op_math.embedding_ops(arch, s, b, act_b, dropout=t.dropout, tp=tp, sp=sp)
            embedding = UnitWork(
                name="embedding",
                params=lay.embedding_params,
                segments=_segment_works(cm, [op_math.Segment(name="embedding", ops=tuple(ops))]),
                recompute_s=0.0,
                act_bytes=acts.embedding,
                working_bytes=0,
            )
        if chunk.head and lay.has_edges:
            ops = op_math.head_ops(arch, s, b, act_b, tp=tp, sp=sp)
            head = UnitWork(
                name="head",
                params=lay.head_params,
                segments=_segment_works(cm, [op_math.Segment(name="head", ops=tuple(ops))]),
                recompute_s=0.0,
                act_bytes=acts.output,
                working_bytes=0,
            )
        chunks[chunk.index] = ChunkWork(
            index=chunk.index,
            embedding=embedding,
            head=head,
            blocks=tuple(blocks[blk.name] for blk in chunk.blocks),
        )
    return chunks


# PyTorch's fused/foreach Adam and DeepSpeed's FusedAdam are memory-bound: per parameter they
# read the gradient, fp32 master weight and states and write back master, states and the
# 16-bit weight. K bytes of states + master are read and written once each.
def optimizer_step(b: ScheduleBuilder, ctx: Context, local_params: int, deps) -> int:
    """The optimizer update of `local_params` parameters, on the GPU or (offload) the CPU."""
    t = ctx.scenario.training
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, ctx.scenario.model.hidden_size)
    if t.offload.optimizer:
        return offloaded_optimizer(b, ctx, local_params, k, deps)
    update = op_math.Op(
        "optimizer step", "memory", 0.0, int(local_params * (ctx.gb + ctx.pb + 2 * k))
    )
    return b.add(
        "optimizer step", "compute", "optimizer", deps=deps, duration_s=ctx.cm.op_time_s(update)
    )


# Host memory bandwidth of a DGX A100 / H100 class server: 2 sockets x 8 DDR4-3200 (AMD EPYC
# 7742, 204.8 GB/s per socket; DGX A100 User Guide) - the CPU Adam of ZeRO-Offload (Ren et al.
# 2021, Sec 5) is memory-bound, and the host's GPUs share it.
HOST_MEMORY_BW_BYTES_PER_S = 2 * 204.8e9


def offloaded_optimizer(b: ScheduleBuilder, ctx: Context, local_params: int, k: float, deps) -> int:
    """ZeRO-Offload: gradients to the CPU over PCIe, CPU Adam, updated 16-bit weights back."""
    gpu = ctx.cm.gpu
    d2h = b.add(
        "offload: gradients to CPU",
        "pcie",
        "offload",
        deps=deps,
        duration_s=local_params * ctx.gb / gpu.pcie_bw_bytes_per_s,
    )
    share = HOST_MEMORY_BW_BYTES_PER_S / min(
        ctx.scenario.cluster.gpus_per_host, ctx.scenario.cluster.num_gpus
    )
    cpu = b.add(
        "offload: CPU optimizer step",
        "cpu",
        "optimizer",
        deps=(d2h,),
        duration_s=local_params * (ctx.gb + ctx.pb + 2 * k) / share,
    )
    return b.add(
        "offload: weights to GPU",
        "pcie",
        "offload",
        deps=(cpu,),
        duration_s=local_params * ctx.pb / gpu.pcie_bw_bytes_per_s,
    )


def shard_of(params: int, n: int) -> int:
    return math.ceil(params / n)
