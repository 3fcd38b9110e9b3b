"""What every strategy shares: per-unit compute work, the micro-batch walk, the optimizer step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from simulator.execution import layout as layout_mod
from simulator.execution.schedule import ScheduleBuilder
from simulator.model import ops as op_math
from simulator.model.precision import optimizer_state_bytes_per_param
from simulator.spec.mesh import Mesh
from simulator.spec.specs import Scenario
from simulator.system.compute import ComputeModel

# The attention-core ops that selective recompute re-runs (Korthikanti et al. 2022, Sec 4.2).
SELECTIVE_OPS = ("attn_scores", "softmax", "attn_dropout", "attn_over_values")


@dataclass(frozen=True, kw_only=True)
class UnitWork:
    """One unit's compute for one micro-batch: times and activation bytes."""

    name: str
    params: int
    fwd_s: float
    bwd_s: float
    recompute_s: float
    act_bytes: int
    working_bytes: int


@dataclass(frozen=True, kw_only=True)
class StepWork:
    embedding: UnitWork | None
    blocks: tuple[UnitWork, ...]
    head: UnitWork | None
    edge_params: int     # root parameters whose gradients are ready at the end of backward
    head_params: int     # root parameters whose gradients are ready right after the loss


@dataclass(frozen=True, kw_only=True)
class Context:
    """Everything a strategy needs to build one rank's schedule."""

    scenario: Scenario
    static_bytes: int
    cm: ComputeModel
    work: StepWork
    mesh: Mesh

    @property
    def accum(self) -> int:
        return self.scenario.training.grad_accum_steps

    @property
    def pb(self) -> int:
        return self.scenario.training.precision.weight_bytes

    @property
    def gb(self) -> int:
        return self.scenario.training.precision.grad_bytes


def _times(cm: ComputeModel, fwd: list[op_math.Op], again: list[op_math.Op]) -> tuple[float, float, float]:
    return cm.ops_time_s(fwd), cm.ops_time_s(op_math.backward_ops(fwd)), cm.ops_time_s(again)


def step_work(scenario: Scenario, cm: ComputeModel) -> StepWork:
    """Every unit's forward, backward and recompute time; blocks of one stack are alike, so
    their kernels are timed once per stack."""
    t = scenario.training
    lay = layout_mod.model_layout(scenario.model)
    act_b = t.precision.activation_bytes
    acts = layout_mod.activations(lay, t.seq_len, t.micro_batch_size, t.activation_checkpointing,
                                  t.flash_attention, act_b)
    arch, s, b = lay.arch, t.seq_len, t.micro_batch_size
    timed: dict[str, tuple[float, float, float]] = {}
    for stack in {blk.stack for blk in lay.blocks}:
        ops = op_math.layer_ops(arch, s, b, t.flash_attention, stack=stack, dtype_bytes=act_b,
                                causal=stack == "decoder")
        if t.activation_checkpointing == "full":
            again = ops
        elif t.activation_checkpointing == "selective":
            again = [o for o in ops if o.name.removeprefix("cross_") in SELECTIVE_OPS]
        else:
            again = []
        timed[stack] = _times(cm, ops, again)
    blocks = tuple(UnitWork(name=blk.name, params=blk.params, fwd_s=timed[blk.stack][0], bwd_s=timed[blk.stack][1],
                            recompute_s=timed[blk.stack][2], act_bytes=acts.blocks[i], working_bytes=acts.working[i])
                   for i, blk in enumerate(lay.blocks))
    embedding = head = None
    if lay.has_edges:
        f, bw, _ = _times(cm, op_math.embedding_ops(arch, s, b, act_b), [])
        embedding = UnitWork(name="embedding", params=lay.edge_params, fwd_s=f, bwd_s=bw, recompute_s=0.0,
                             act_bytes=acts.embedding, working_bytes=0)
        f, bw, _ = _times(cm, op_math.head_ops(arch, s, b, act_b), [])
        head = UnitWork(name="head", params=lay.head_params, fwd_s=f, bwd_s=bw, recompute_s=0.0,
                        act_bytes=acts.output, working_bytes=0)
    return StepWork(embedding=embedding, blocks=blocks, head=head, edge_params=lay.edge_params,
                    head_params=lay.head_params)


Before = Callable[[int, UnitWork], tuple]      # (block index, unit) -> deps of its compute
After = Callable[[int, UnitWork, int], None]    # (block index, unit, compute task id)


@dataclass(frozen=True, kw_only=True)
class Hooks:
    """A strategy's communication around each block (the head is index len(blocks) in backward)."""

    before_fwd: Before | None = None
    after_fwd: After | None = None
    before_bwd: Before | None = None
    after_bwd: After | None = None


def micro_batch(b: ScheduleBuilder, ctx: Context, m: int, hooks: Hooks = Hooks()) -> int:
    """Forward then backward of micro-batch m on the compute stream, with the strategy's hooks.
    Returns the id of the last backward task."""
    w, tag = ctx.work, f"mb{m}"
    if w.embedding:
        _compute(b, f"{tag} forward embedding", "forward", w.embedding.fwd_s, alloc=w.embedding.act_bytes)
    for i, unit in enumerate(w.blocks):
        deps = hooks.before_fwd(i, unit) if hooks.before_fwd else ()
        tid = _compute(b, f"{tag} forward {unit.name}", "forward", unit.fwd_s, alloc=unit.act_bytes, deps=deps)
        if hooks.after_fwd:
            hooks.after_fwd(i, unit, tid)
    last = None
    if w.head:
        _compute(b, f"{tag} forward head", "forward", w.head.fwd_s, alloc=w.head.act_bytes)
        if hooks.before_bwd:
            hooks.before_bwd(len(w.blocks), w.head)
        last = _compute(b, f"{tag} backward head", "backward", w.head.bwd_s, free=w.head.act_bytes)
        if hooks.after_bwd:
            hooks.after_bwd(len(w.blocks), w.head, last)
    for i in range(len(w.blocks) - 1, -1, -1):
        unit = w.blocks[i]
        deps = hooks.before_bwd(i, unit) if hooks.before_bwd else ()
        if unit.recompute_s:
            _compute(b, f"{tag} recompute {unit.name}", "recompute", unit.recompute_s,
                     alloc=unit.working_bytes, deps=deps)
            deps = ()
        last = _compute(b, f"{tag} backward {unit.name}", "backward", unit.bwd_s,
                        free=unit.act_bytes + unit.working_bytes, deps=deps)
        if hooks.after_bwd:
            hooks.after_bwd(i, unit, last)
    if w.embedding:
        last = _compute(b, f"{tag} backward embedding", "backward", w.embedding.bwd_s, free=w.embedding.act_bytes)
    return last


def _compute(b: ScheduleBuilder, name: str, phase: str, duration_s: float, alloc: int = 0, free: int = 0,
             deps=()) -> int:
    return b.add(name, "compute", phase, deps=deps, duration_s=duration_s, alloc_bytes=alloc, free_bytes=free)


# PyTorch's fused/foreach Adam and DeepSpeed's FusedAdam are memory-bound: per parameter they
# read the gradient, fp32 master weight and states and write back master, states and the
# 16-bit weight. K bytes of states + master are read and written once each.
def optimizer_step(b: ScheduleBuilder, ctx: Context, local_params: int, deps) -> int:
    """The optimizer update of `local_params` parameters, on the GPU or (offload) the CPU."""
    t = ctx.scenario.training
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, ctx.scenario.model.hidden_size)
    if t.offload.optimizer:
        return offloaded_optimizer(b, ctx, local_params, k, deps)
    update = op_math.Op("optimizer step", "memory", 0.0, int(local_params * (ctx.gb + ctx.pb + 2 * k)))
    return b.add("optimizer step", "compute", "optimizer", deps=deps, duration_s=ctx.cm.op_time_s(update))


# Host memory bandwidth of a DGX A100 / H100 class server: 2 sockets x 8 DDR4-3200 (AMD EPYC
# 7742, 204.8 GB/s per socket; DGX A100 User Guide) - the CPU Adam of ZeRO-Offload (Ren et al.
# 2021, Sec 5) is memory-bound, and the host's GPUs share it.
HOST_MEMORY_BW_BYTES_PER_S = 2 * 204.8e9


def offloaded_optimizer(b: ScheduleBuilder, ctx: Context, local_params: int, k: float, deps) -> int:
    """ZeRO-Offload: gradients to the CPU over PCIe, CPU Adam, updated 16-bit weights back."""
    gpu = ctx.cm.gpu
    d2h = b.add("offload: gradients to CPU", "pcie", "offload", deps=deps,
                duration_s=local_params * ctx.gb / gpu.pcie_bw_bytes_per_s)
    share = HOST_MEMORY_BW_BYTES_PER_S / min(ctx.scenario.cluster.gpus_per_host, ctx.scenario.cluster.num_gpus)
    cpu = b.add("offload: CPU optimizer step", "cpu", "optimizer", deps=(d2h,),
                duration_s=local_params * (ctx.gb + ctx.pb + 2 * k) / share)
    return b.add("offload: weights to GPU", "pcie", "offload", deps=(cpu,),
                 duration_s=local_params * ctx.pb / gpu.pcie_bw_bytes_per_s)


def shard_of(params: int, n: int) -> int:
    return math.ceil(params / n)
