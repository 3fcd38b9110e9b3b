"""What every strategy shares: per-unit compute work, the micro-batch walk, the optimizer step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from simulator.execution import layout as layout_mod

from simulator.model import transformer as model_math
from simulator.system.compute import ComputeModel
from simulator.execution.memory import PRECISION_BYTES, MemoryBreakdown, optimizer_state_bytes_per_param
from simulator.execution.schedule import ScheduleBuilder
from simulator.scenario.load import Scenario

# The attention-core ops that selective recompute re-runs (Korthikanti et al. 2022, Sec 4.2).
SELECTIVE_OPS = ("attn_scores", "softmax", "attn_dropout", "attn_over_values")


@dataclass(frozen=True)
class UnitWork:
    """One unit's compute for one micro-batch: times, hardware FLOPs and activation bytes."""

    name: str
    params: int
    fwd_s: float
    bwd_s: float
    recompute_s: float
    fwd_flops: float
    bwd_flops: float
    recompute_flops: float
    act_bytes: int
    working_bytes: int


@dataclass(frozen=True)
class StepWork:
    embedding: UnitWork | None
    blocks: tuple[UnitWork, ...]
    head: UnitWork | None
    edge_params: int     # root parameters whose gradients are ready at the end of backward
    head_params: int     # root parameters whose gradients are ready right after the loss


@dataclass(frozen=True)
class Context:
    """Everything a strategy needs to build one rank's schedule."""

    scenario: Scenario
    memory: MemoryBreakdown
    cm: ComputeModel
    work: StepWork
    pb: int   # bytes per weight element
    gb: int   # bytes per gradient element

    @property
    def accum(self) -> int:
        return self.scenario.grad_accum_steps


def _unit(name: str, params: int, cm: ComputeModel, fwd: list[model_math.Op], recompute: list[model_math.Op],
          act: int, working: int) -> UnitWork:
    bwd = model_math.backward_ops(fwd)
    return UnitWork(name, params, cm.ops_time_s(fwd), cm.ops_time_s(bwd), cm.ops_time_s(recompute),
                    sum(o.flops for o in fwd), sum(o.flops for o in bwd), sum(o.flops for o in recompute),
                    act, working)


def step_work(scenario: Scenario, cm: ComputeModel) -> StepWork:
    t = scenario.training
    lay = layout_mod.model_layout(scenario.model)
    act_b = PRECISION_BYTES[t.precision][3]
    acts = layout_mod.activations(lay, t.seq_len, t.micro_batch_size, t.activation_checkpointing,
                                  t.flash_attention, act_b)
    arch, s, b = lay.arch, t.seq_len, t.micro_batch_size
    blocks = []
    for i, block in enumerate(lay.blocks):
        ops = model_math.layer_ops(arch, s, b, t.flash_attention, stack=block.stack, dtype_bytes=act_b,
                                   causal=block.stack == "decoder")
        if t.activation_checkpointing == "full":
            again = ops
        elif t.activation_checkpointing == "selective":
            again = [o for o in ops if o.name.removeprefix("cross_") in SELECTIVE_OPS]
        else:
            again = []
        blocks.append(_unit(block.name, block.params, cm, ops, again, acts.blocks[i], acts.working[i]))
    embedding = head = None
    if lay.has_edges:
        embedding = _unit("embedding", lay.root_params - lay.head_params, cm,
                          model_math.embedding_ops(arch, s, b, act_b), [], acts.embedding, 0)
        head = _unit("head", lay.head_params, cm, model_math.head_ops(arch, s, b, act_b), [], acts.output, 0)
    return StepWork(embedding, tuple(blocks), head, lay.root_params - lay.head_params, lay.head_params)


Before = Callable[[int, UnitWork], tuple]      # (block index, unit) -> deps of its compute
After = Callable[[int, UnitWork, int], None]    # (block index, unit, compute task id)


def micro_batch(b: ScheduleBuilder, ctx: Context, m: int, before_fwd: Before | None = None,
                after_fwd: After | None = None, before_bwd: Before | None = None,
                after_bwd: After | None = None) -> int:
    """Forward then backward of micro-batch m on the compute stream; hooks add the strategy's
    communication around each block (the head is index len(blocks) for the backward hooks).
    Returns the id of the last backward task."""
    w = ctx.work
    tag = f"mb{m}"
    if w.embedding:
        _compute(b, f"{tag} forward embedding", "forward", w.embedding.fwd_s, w.embedding.fwd_flops,
                 alloc=w.embedding.act_bytes)
    for i, unit in enumerate(w.blocks):
        deps = before_fwd(i, unit) if before_fwd else ()
        tid = _compute(b, f"{tag} forward {unit.name}", "forward", unit.fwd_s, unit.fwd_flops,
                       alloc=unit.act_bytes, deps=deps)
        if after_fwd:
            after_fwd(i, unit, tid)
    last = None
    if w.head:
        _compute(b, f"{tag} forward head", "forward", w.head.fwd_s, w.head.fwd_flops, alloc=w.head.act_bytes)
        if before_bwd:
            before_bwd(len(w.blocks), w.head)
        last = _compute(b, f"{tag} backward head", "backward", w.head.bwd_s, w.head.bwd_flops,
                        free=w.head.act_bytes)
        if after_bwd:
            after_bwd(len(w.blocks), w.head, last)
    for i in range(len(w.blocks) - 1, -1, -1):
        unit = w.blocks[i]
        deps = before_bwd(i, unit) if before_bwd else ()
        if unit.recompute_s:
            _compute(b, f"{tag} recompute {unit.name}", "recompute", unit.recompute_s, unit.recompute_flops,
                     alloc=unit.working_bytes, deps=deps)
            deps = ()
        last = _compute(b, f"{tag} backward {unit.name}", "backward", unit.bwd_s, unit.bwd_flops,
                        free=unit.act_bytes + unit.working_bytes, deps=deps)
        if after_bwd:
            after_bwd(i, unit, last)
    if w.embedding:
        last = _compute(b, f"{tag} backward embedding", "backward", w.embedding.bwd_s, w.embedding.bwd_flops,
                        free=w.embedding.act_bytes)
    return last


def _compute(b: ScheduleBuilder, name: str, phase: str, duration_s: float, flops: float, alloc: int = 0,
             free: int = 0, deps=()) -> int:
    return b.add(name, "compute", phase, deps=deps, duration_s=duration_s, hardware_flops=flops,
                 alloc_bytes=alloc, free_bytes=free)


# PyTorch's fused/foreach Adam and DeepSpeed's FusedAdam are memory-bound: per parameter they
# read the gradient, fp32 master weight and states and write back master, states and the
# 16-bit weight. K bytes of states + master are read and written once each.
def optimizer_step(b: ScheduleBuilder, ctx: Context, local_params: int, deps) -> int:
    """The optimizer update of `local_params` parameters, on the GPU or (offload) the CPU."""
    t = ctx.scenario.training
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, ctx.scenario.model.hidden_size)
    if t.offload.optimizer == "cpu":
        return offloaded_optimizer(b, ctx, local_params, k, deps)
    update = model_math.Op("optimizer step", "memory", 0.0, int(local_params * (ctx.gb + ctx.pb + 2 * k)))
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
