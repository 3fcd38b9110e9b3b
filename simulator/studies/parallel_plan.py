"""`plan parallel`: the best tensor x pipeline x data layout for a scenario's model and cluster.

The search covers tensor parallelism (with sequence parallelism) inside an NVLink domain,
pipeline stages (even splits, or Llama 3's one layer fewer on the first and last stage),
1F1B and interleaved 1F1B with virtual stages, the micro-batch size at the scenario's
global batch, the data-parallel strategy and activation recomputation. It is fast because it
prunes before it simulates:
1. memory: every layout is checked with the analytic per-stage memory model, trying its
   variants from the fastest (no recomputation, replicated states) to the leanest, and keeps
   the first that fits;
2. time: the fitting layouts are ranked by a cheap estimate - the roofline time of a stage's
   micro-batches with their tensor-parallel collectives, and the pipeline bubble (p - 1) / v of
   them;
3. only the best few by estimate are simulated on the engine, and ranked by tokens/s (ties by
   memory headroom).
Every candidate is a scenario derived and validated like a scenario file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from simulator.core.errors import UserError
from simulator.execution.context import SimContext
from simulator.execution.frameworks import strategy_for
from simulator.execution.memory import MemoryBreakdown, memory_breakdown
from simulator.execution.metrics import step_metrics
from simulator.execution.schedule import Collective
from simulator.execution.step import Comm, compute_model, simulate_step
from simulator.execution.strategies.common import stage_work
from simulator.scenario.load import derive
from simulator.spec.specs import Scenario

# Variants of one layout, from the expected fastest to the leanest in memory.
VARIANTS = tuple(
    (ckpt, strategy)
    for ckpt in ("none", "selective", "full")
    for strategy in ("ddp", "zero1", "zero2", "zero3")
)
MICRO_BATCHES = (1, 2, 4, 8)
VIRTUAL = (1, 2, 4, 8)


@dataclass(frozen=True, kw_only=True)
class Layout:
    tp: int
    pp: int
    v: int
    micro_batch: int
    split: tuple[int, ...] = ()  # layers per model chunk when uneven

    def changes(self, m: int) -> dict[str, Any]:
        schedule = "interleaved-1f1b" if self.v > 1 else "1f1b"
        return {
            "training.micro_batch_size": self.micro_batch,
            "training.grad_accum_steps": m,
            "training.global_batch_size": None,
            "training.parallelism": {
                "tp": self.tp,
                "pp": self.pp,
                "sequence_parallel": self.tp > 1,
                "pipeline": {
                    "schedule": schedule,
                    "virtual_stages": self.v,
                    **({"layers_per_stage": list(self.split)} if self.split else {}),
                },
            },
        }

    def describe(self) -> str:
        sched = f"interleaved x{self.v}" if self.v > 1 else "1f1b"
        pipe = f"pp {self.pp} ({sched})" if self.pp > 1 else "no pipeline"
        return (
            f"tp {self.tp}{' +sp' if self.tp > 1 else ''}, {pipe}, micro-batch {self.micro_batch}"
        )


@dataclass(frozen=True, kw_only=True)
class PlanRow:
    layout: str
    strategy: str
    checkpointing: str
    dp: int
    microbatches: int
    mem_bytes: int
    capacity_bytes: int
    worst_stage: int
    estimate_s: float
    step_time_s: float
    tokens_per_s: float
    mfu: float
    exposed_comm_s: float
    changes: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True, kw_only=True)
class ParallelPlan:
    rows: list[PlanRow]  # simulated, best first
    layouts: int  # layouts considered
    fitting: int  # layouts with a variant that fits
    memory_checks: int
    elapsed_s: float


def chunk_split(layers: int, chunks: int) -> tuple[int, ...] | None:
    """How pp x v model chunks share the layers: evenly (() = the default), or as Llama 3 did with
    one layer fewer in the first and last chunk; None if neither works."""
    if layers % chunks == 0:
        return ()
    if chunks > 2 and (layers + 2) % chunks == 0:
        per = (layers + 2) // chunks
        return (per - 1, *([per] * (chunks - 2)), per - 1)
    return None


def layouts(s: Scenario) -> list[Layout]:
    """Every (tp, pp, v, micro-batch) the model, the cluster and the global batch allow."""
    arch, n, batch = s.model.shape, s.num_gpus, s.global_batch_size
    out = []
    for tp in (1, 2, 4, 8, 16, 32, 64, 72):
        if (
            tp > s.cluster.gpus_per_host
            or n % tp
            or arch.num_heads % tp
            or arch.kv_heads % tp
            or arch.ffn_hidden_size % tp
            or (s.model.arch is not None and arch.vocab_size % tp)
        ):
            continue
        for pp in (
            p
            for p in (1, 2, 4, 8, 16, 32, 64, 128)
            if (n // tp) % p == 0 and p <= s.model.num_layers
        ):
            if pp > 1 and s.model.kind == "encoder-decoder":
                continue
            dp = n // (tp * pp)
            for v in (v for v in VIRTUAL if v == 1 or pp > 1):
                split = chunk_split(s.model.num_layers, pp * v)
                if split is None:
                    continue
                for b in MICRO_BATCHES:
                    if batch % (b * dp) or (v > 1 and (batch // (b * dp)) % pp):
                        continue
                    out.append(Layout(tp=tp, pp=pp, v=v, micro_batch=b, split=split))
    return out


def _first_fit(
    s: Scenario, lay: Layout, m: int, counter: list[int]
) -> tuple[Scenario, MemoryBreakdown] | None:
    """The fastest variant of a layout that fits; the leanest is tried first, as most layouts of a
    big model fail even that."""

    def check(ckpt: str, strategy: str) -> tuple[Scenario, MemoryBreakdown]:
        cand = derive(
            s,
            {
                **lay.changes(m),
                "training.activation_checkpointing": ckpt,
                "training.strategy": strategy,
                "training.offload": None,
            },
        )
        counter[0] += 1
        return cand, memory_breakdown(cand)

    try:
        if not check(*VARIANTS[-1])[1].fits:
            return None
        for variant in VARIANTS:
            cand, mem = check(*variant)
            if mem.fits:
                return cand, mem
    except UserError:
        pass  # the layout itself is not valid for this scenario
    return None


def estimate_step_s(s: Scenario, comm: Comm) -> float:
    """A cheap step time for ranking: one stage's micro-batches on the roofline (tensor-parallel
    collectives at their standalone time) and the pipeline bubble; data-parallel communication,
    mostly overlapped, is left to the simulation of the best candidates."""
    t, par = s.training, s.training.parallel
    cm = compute_model(s)
    chunks = stage_work(s, cm, min(1, par.pp - 1))
    per_mb = sum(
        u.fwd_s + u.bwd_s + u.recompute_s
        for c in chunks.values()
        for u in (c.embedding, *c.blocks, c.head)
        if u is not None
    )
    if par.tp > 1:
        group = strategy_for(s.training).mesh(s).group("tp")
        size = t.micro_batch_size * t.seq_len * s.model.hidden_size * t.precision.activation_bytes
        op = "reduce_scatter" if par.sequence_parallel else "all_reduce"
        per_op = comm.cost(
            Collective(op=op, group=group, size_bytes=size), (0,), together=False
        ).time_s
        layers = sum(len(c.blocks) for c in chunks.values())
        per_mb += per_op * layers * (8 if par.sequence_parallel else 4)
    m = t.grad_accum_steps
    # Narayanan et al. 2021, Sec 2.2: the bubble is (p - 1) / v micro-batches' worth of a stage.
    return (m + (par.pp - 1) / par.pipeline.virtual_stages) * per_mb


def parallel_plan(
    s: Scenario, top: int = 5, simulate: int = 8, ctx: SimContext | None = None
) -> ParallelPlan:
    """The fastest layouts that fit, simulated, best first."""
    start, ctx, checks = time.perf_counter(), ctx or SimContext(), [0]
    comm = Comm(
        ctx.comm(s.cluster, s.calibration.comm, nvls=s.training.nvls),
        s.training.collective_algorithm,
        "fluid",
    )
    found: list[tuple[float, Layout, Scenario, MemoryBreakdown]] = []
    candidates = layouts(s)
    for lay in candidates:
        m = s.global_batch_size // (lay.micro_batch * (s.num_gpus // (lay.tp * lay.pp)))
        fit = _first_fit(s, lay, m, checks)
        if fit is not None:
            found.append((estimate_step_s(fit[0], comm), lay, *fit))
    found.sort(key=lambda f: f[0])
    rows = []
    for est, lay, cand, mem in found[:simulate]:
        metrics = step_metrics(cand, simulate_step(cand, ctx=ctx))
        par = cand.training.parallel
        rows.append(
            PlanRow(
                layout=lay.describe(),
                strategy=cand.strategy,
                checkpointing=cand.training.activation_checkpointing,
                dp=par.dp,
                microbatches=cand.training.grad_accum_steps,
                mem_bytes=mem.total_bytes,
                capacity_bytes=mem.capacity_bytes,
                worst_stage=mem.stage,
                estimate_s=est,
                step_time_s=metrics.time_s,
                tokens_per_s=metrics.tokens_per_s,
                mfu=metrics.mfu,
                exposed_comm_s=metrics.exposed_comm_s,
                changes={
                    **lay.changes(cand.training.grad_accum_steps),
                    "training.strategy": cand.strategy,
                    "training.activation_checkpointing": cand.training.activation_checkpointing,
                },
            )
        )
    rows.sort(key=lambda r: (-r.tokens_per_s, r.mem_bytes - r.capacity_bytes))
    return ParallelPlan(
        rows=rows[:top],
        layouts=len(candidates),
        fitting=len(found),
        memory_checks=checks[0],
        elapsed_s=time.perf_counter() - start,
    )
