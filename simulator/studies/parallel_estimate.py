"""`plan parallel`'s cheap step-time estimate, used to rank the layouts that fit before the best
few are simulated: the roofline time of a stage's micro-batches with their tensor-parallel
collectives, the pipeline bubble (p - 1) / v of them, and the blocks' context- and
expert-parallel collectives (an overlapped ring exchange only where it outlasts its attention).
Kernel times are memoized per planner run (MemoCompute)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from simulator.core.cache import Memo
from simulator.execution.collectives import Comm
from simulator.execution.frameworks import strategy_for
from simulator.execution.schedule import Collective
from simulator.execution.step import compute_model
from simulator.execution.strategies.common import ChunkWork, SegmentWork, stage_work
from simulator.execution.tp_overlap import exposed_s, points, tensor_parallel
from simulator.model import ops as op_math
from simulator.scenario.moe import moe_of
from simulator.spec.specs import Scenario
from simulator.system.compute import ComputeModel


def _layer_comm_s(s: Scenario, comm: Comm, chunks: dict[int, ChunkWork]) -> float:
    """One micro-batch's context- and expert-parallel collectives of a stage's blocks at their
    standalone time; an overlapped one (ring attention's K/V exchange) counts only where it
    outlasts the compute of its sub-layer."""
    par = s.training.parallel
    if par.cp == 1 and moe_of(s.model) is None:
        return 0.0
    strategy = strategy_for(s.training)
    mesh = strategy.mesh(s)
    groups = {d: mesh.group(d) for d, _ in mesh.dims if d == "cp"}
    if moe_of(s.model) is not None:
        groups |= strategy.moe_groups(s)

    costs: dict[tuple[tuple[op_math.Comm, ...], float], float] = {}  # blocks of a kind repeat

    def cost(cs: tuple[op_math.Comm, ...], compute_s: float) -> float:
        if (cs, compute_s) not in costs:
            costs[cs, compute_s] = _comm_cost(cs, compute_s)
        return costs[cs, compute_s]

    def _comm_cost(cs: tuple[op_math.Comm, ...], compute_s: float) -> float:
        exposed = hidden = 0.0
        for c in cs:
            group = groups.get(c.dim)
            if group is None or group.size == 1:
                continue  # tp collectives are estimated apart; a one-rank group moves nothing
            op, size = (
                ("all_gather", c.size_bytes * (c.steps + 1))
                if c.op == "ring_exchange"
                else (c.op, c.size_bytes)
            )
            coll = Collective(op=op, group=group, size_bytes=size)
            t = comm.cost(coll, (0,), together=False).time_s
            if c.overlapped:
                hidden += t
            else:
                exposed += t
        return exposed + max(0.0, hidden - compute_s)

    return sum(
        cost((*g.before, *g.after), g.fwd_s) + cost((*g.bwd_before, *g.bwd_after), g.bwd_s)
        for c in chunks.values()
        for u in c.blocks
        for g in u.segments
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class MemoCompute(ComputeModel):
    """A ComputeModel that remembers each kernel's time (a pure function of the op, a frozen
    dataclass, and of this model's GPU and datatypes): the planner's candidates time the same
    kernels again and again (every pipeline split, data-parallel strategy and expert layout of
    one tp x cp x micro-batch runs the same blocks). The memo is this object's own."""

    memo: Memo[float] = field(default_factory=lambda: Memo(max_entries=1 << 16), repr=False)

    def op_time_s(self, op: op_math.Op) -> float:
        return self.memo.get(op, lambda: ComputeModel.op_time_s(self, op))


def _memo_compute(cm: ComputeModel, models: list[MemoCompute]) -> MemoCompute:
    """The memoizing model with `cm`'s fields (a GPU spec holds mappings: compared, not
    hashed); made and added if there is none."""
    fields = {f.name: getattr(cm, f.name) for f in dataclasses.fields(ComputeModel)}
    for memo in models:
        if all(getattr(memo, name) == value for name, value in fields.items()):
            return memo
    models.append(MemoCompute(**fields))
    return models[-1]


def estimate_step_s(s: Scenario, comm: Comm, models: list[MemoCompute] | None = None) -> float:
    """A cheap step time for ranking: one stage's micro-batches on the roofline (tensor-,
    context- and expert-parallel collectives at their standalone time) and the pipeline bubble;
    data-parallel communication, mostly overlapped, is left to the simulation of the best
    candidates. `models`: a planner's memoizing compute models (the same figures, each kernel
    timed once); one equal to the scenario's is used, or added."""
    t, par = s.training, s.training.parallel
    cm = compute_model(s)
    if models is not None:
        cm = _memo_compute(cm, models)
    chunks = stage_work(s, cm, min(1, par.pp - 1))
    per_mb = sum(
        u.fwd_s + u.bwd_s + u.recompute_s
        for c in chunks.values()
        for u in (c.embedding, *c.blocks, c.head)
        if u is not None
    )
    if par.tp > 1:
        group = strategy_for(s.training).mesh(s).group("tp")
        size = (
            t.micro_batch_size
            * (t.seq_len // par.cp)
            * s.model.hidden_size
            * t.precision.activation_bytes
        )
        op = "reduce_scatter" if par.sequence_parallel else "all_reduce"
        per_op = comm.cost(
            Collective(op=op, group=group, size_bytes=size), (0,), together=False
        ).time_s
        if par.tp_comm_overlap:  # what the overlap with the GEMMs leaves, point by point
            sms = cm.gpu.sm_count
            per_mb += sum(
                _overlapped_tp_s(g, per_op, par.tp, sms)
                for c in chunks.values()
                for u in c.blocks
                for g in u.segments
            )
        else:
            layers = sum(len(c.blocks) for c in chunks.values())
            per_mb += per_op * layers * (8 if par.sequence_parallel else 4)
    per_mb += _layer_comm_s(s, comm, chunks)
    m = t.grad_accum_steps
    # Narayanan et al. 2021, Sec 2.2: the bubble is (p - 1) / v micro-batches' worth of a stage.
    return (m + (par.pp - 1) / par.pipeline.virtual_stages) * per_mb


def _overlapped_tp_s(g: SegmentWork, comm_s: float, tp: int, sm_count: int) -> float:
    """A sub-layer's four sequence-parallel collectives (each comm_s alone) under
    tp_comm_overlap: what each leaves exposed beside its GEMMs (execution/tp_overlap.py)."""
    if g.overlap is None:
        return 0.0
    total = 0.0
    for forward, ends in ((True, (g.before, g.after)), (False, (g.bwd_before, g.bwd_after))):
        for comms, (method, gemm_s) in zip(ends, points(g.overlap, forward)):
            if tensor_parallel(comms):
                total += exposed_s(method, comm_s, gemm_s, tp, sm_count)
    return total
