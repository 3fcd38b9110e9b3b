"""`plan parallel`: the best tensor x context x pipeline x expert x data layout for a scenario's
model and cluster.

The search covers tensor parallelism (with sequence parallelism) inside an NVLink domain,
pipeline stages (even splits, or Llama 3's one layer fewer on the first and last stage),
1F1B and interleaved 1F1B with virtual stages, the micro-batch size at the scenario's
global batch, the data-parallel strategy and activation recomputation; and, where the model and
the sequence call for them and the framework offers a strategy that models them (the
strategies' `context_parallel` / `expert_parallel` flags, read from the framework registry):
- context parallelism cp (the scenario's cp_comm, ring by default): only at seq_len >= 16,384,
  where NeMo's long-context recipes start using it (NeMo Framework user guide, "Long Context
  Recipes": 16k and 64k with CP) while 8K pre-training runs without it (Llama 3 405B, Dubey et
  al. 2024 Table 4 rows 1-2); powers of two dividing the GPUs left by tp, with Megatron-Core's
  seq_len % (2 x cp x tp with sequence parallelism) == 0, and no rank left under 8,192 tokens of
  a sequence (Llama 3 at 128K: cp 16, 8K per rank) - so cp <= seq_len / 8192;
- expert parallelism ep and expert tensor parallelism etp, for mixture-of-experts models only:
  ep among the divisors of num_experts, etp in {1, tp} (experts split like the dense layers or
  not at all; Megatron-Core's parallel folding allows others, rarely used), with ep x etp
  dividing the tp x cp x dp ranks of a stage the experts fold over (the validation rule).
Each of these multiplies the layouts by a handful (cp: at most log2(seq_len / 8192); ep x etp: at
most 2 x the divisors of num_experts), and the memory check drops most of them at once.
It is fast because it prunes before it simulates:
1. memory: every layout is checked with the analytic per-stage memory model, trying its
   variants from the fastest (no recomputation, replicated states) to the leanest, and keeps
   the first that fits;
2. time: the fitting layouts are ranked by a cheap estimate - the roofline time of a stage's
   micro-batches with their tensor-parallel collectives, and the pipeline bubble (p - 1) / v of
   them, plus the context- and expert-parallel collectives of the blocks (all-to-all dispatch,
   K/V exchange; an overlapped ring exchange only where it outlasts its attention);
3. only the best few by estimate are simulated on the engine, and ranked by tokens/s (ties by
   memory headroom).
Every candidate is a scenario derived and validated like a scenario file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from simulator.core.errors import UserError
from simulator.execution.collectives import Comm
from simulator.execution.context import SimContext
from simulator.execution.frameworks import FRAMEWORKS
from simulator.execution.memory import MemoryBreakdown, memory_breakdown
from simulator.execution.metrics import step_metrics
from simulator.execution.step import simulate_step
from simulator.execution.strategies.base import Strategy
from simulator.scenario.load import derive
from simulator.scenario.moe import has_dense_layers, moe_of
from simulator.spec.specs import Scenario
from simulator.studies.parallel_estimate import MemoCompute, estimate_step_s

CHECKPOINTING = ("none", "selective", "full")
STRATEGIES = ("ddp", "zero1", "zero2", "zero3")
# Variants of one layout, from the expected fastest to the leanest in memory (those of them the
# scenario's framework offers, and that model the layout's cp and experts, are tried).
VARIANTS = tuple((ckpt, strategy) for ckpt in CHECKPOINTING for strategy in STRATEGIES)
MICRO_BATCHES = (1, 2, 4, 8)
VIRTUAL = (1, 2, 4, 8)
# Context parallelism is searched from this sequence length (NeMo's long-context recipes: 16k
# and 64k with CP), down to this many tokens of a sequence per cp rank (Llama 3 at 128K: cp 16).
CP_MIN_SEQ = 16384
CP_MIN_TOKENS = 8192


@dataclass(frozen=True, kw_only=True)
class Layout:
    tp: int
    pp: int
    v: int
    micro_batch: int
    split: tuple[int, ...] = ()  # layers per model chunk when uneven
    cp: int = 1
    ep: int = 1
    etp: int = 1
    cp_comm: str = "ring"

    def dp(self, num_gpus: int) -> int:
        return num_gpus // (self.tp * self.cp * self.pp)

    def changes(self, m: int, tp_comm_overlap: bool = False) -> dict[str, Any]:
        """The scenario keys of this layout with m micro-batches; the base's tensor-parallel
        overlap is kept where the layout has tensor parallelism (it needs tp > 1)."""
        schedule = "interleaved-1f1b" if self.v > 1 else "1f1b"
        return {
            "training.micro_batch_size": self.micro_batch,
            "training.grad_accum_steps": m,
            "training.global_batch_size": None,
            "training.parallelism": {
                "tp": self.tp,
                "pp": self.pp,
                "sequence_parallel": self.tp > 1,
                **({"tp_comm_overlap": True} if tp_comm_overlap and self.tp > 1 else {}),
                **({"cp": self.cp, "cp_comm": self.cp_comm} if self.cp > 1 else {}),
                **({"ep": self.ep} if self.ep > 1 else {}),
                **({"etp": self.etp} if self.etp > 1 else {}),
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
    # Context and expert degrees (the expert data-parallel edp = tp x cp x dp / (ep x etp)).
    cp: int = 1
    ep: int = 1
    etp: int = 1
    edp: int = 1


@dataclass(frozen=True, kw_only=True)
class ParallelPlan:
    rows: list[PlanRow]  # simulated, best first
    layouts: int  # layouts considered
    fitting: int  # layouts with a variant that fits
    memory_checks: int
    elapsed_s: float
    searched: tuple[str, ...] = ()  # beyond tp and pp: "cp", "ep", "etp" where searched


def chunk_split(layers: int, chunks: int) -> tuple[int, ...] | None:
    """How pp x v model chunks share the layers: evenly (() = the default), or as Llama 3 did with
    one layer fewer in the first and last chunk; None if neither works."""
    if layers % chunks == 0:
        return ()
    if chunks > 2 and (layers + 2) % chunks == 0:
        per = (layers + 2) // chunks
        return (per - 1, *([per] * (chunks - 2)), per - 1)
    return None


def _offered(s: Scenario) -> dict[str, Strategy]:
    """The searched strategies the scenario's framework offers, in VARIANTS order."""
    fw = FRAMEWORKS[s.training.framework.name].strategies
    return {name: fw[name] for name in STRATEGIES if name in fw}


def searched(s: Scenario) -> tuple[str, ...]:
    """The degrees beyond tp and pp the search covers for this scenario: cp from seq_len
    CP_MIN_SEQ on, ep and etp for a mixture-of-experts model; each only where some offered
    strategy models it."""
    offered = _offered(s).values()
    out: tuple[str, ...] = ()
    if s.training.seq_len >= CP_MIN_SEQ and any(st.context_parallel for st in offered):
        out += ("cp",)
    if moe_of(s.model) is not None and any(st.expert_parallel for st in offered):
        out += ("ep", "etp")
    return out


def _cp_degrees(s: Scenario, tp: int, rest: int, search: bool) -> list[int]:
    """1, and where searched the powers of two that divide the GPUs left by tp, split each
    sequence into Megatron-Core's 2 x cp (x tp with sequence parallelism) equal pieces and leave
    every cp rank at least CP_MIN_TOKENS tokens."""
    out = [1]
    seq, unit, cp = s.training.seq_len, 2 * tp, 2
    while search and rest % cp == 0 and seq // cp >= CP_MIN_TOKENS:
        if seq % (unit * cp) == 0:
            out.append(cp)
        cp *= 2
    return out


def _expert_degrees(s: Scenario, tp: int, ranks: int, search: bool) -> list[tuple[int, int]]:
    """(ep, etp): (1, 1), and where searched ep among the divisors of num_experts and etp in
    {1, tp} (dividing the expert FFN width), with ep x etp dividing the tp x cp x dp `ranks`."""
    moe = moe_of(s.model)
    if not search or moe is None:
        return [(1, 1)]
    out = []
    for etp in dict.fromkeys((1, tp)):
        if moe.expert_ffn_hidden_size % etp:
            continue
        out += [
            (ep, etp)
            for ep in range(1, moe.num_experts + 1)
            if moe.num_experts % ep == 0 and ranks % (ep * etp) == 0
        ]
    return out


def layouts(s: Scenario, search: tuple[str, ...] | None = None) -> list[Layout]:
    """Every (tp, cp, pp, v, micro-batch, ep, etp) the model, the cluster and the global batch
    allow; cp, ep and etp stay 1 unless named in `search` (default: searched(s))."""
    search = searched(s) if search is None else search
    arch, n, batch = s.model.shape, s.num_gpus, s.global_batch_size
    cp_comm = s.training.parallel.cp_comm
    dense_ffn = has_dense_layers(s.model)
    out = []
    for tp in (1, 2, 4, 8, 16, 32, 64, 72):
        if (
            tp > s.cluster.gpus_per_host
            or n % tp
            or arch.num_heads % tp
            or arch.kv_heads % tp
            or (dense_ffn and arch.ffn_hidden_size % tp)
            or (s.model.arch is not None and arch.vocab_size % tp)
        ):
            continue
        for cp in _cp_degrees(s, tp, n // tp, "cp" in search):
            for pp in (
                p
                for p in (1, 2, 4, 8, 16, 32, 64, 128)
                if (n // (tp * cp)) % p == 0 and p <= s.model.num_layers
            ):
                if pp > 1 and s.model.kind == "encoder-decoder":
                    continue
                dp = n // (tp * cp * pp)
                experts = _expert_degrees(s, tp, tp * cp * dp, "ep" in search)
                for v in (v for v in VIRTUAL if v == 1 or pp > 1):
                    split = chunk_split(s.model.num_layers, pp * v)
                    if split is None:
                        continue
                    for b in MICRO_BATCHES:
                        if batch % (b * dp) or (v > 1 and (batch // (b * dp)) % pp):
                            continue
                        out += [
                            Layout(
                                tp=tp,
                                pp=pp,
                                v=v,
                                micro_batch=b,
                                split=split,
                                cp=cp,
                                ep=ep,
                                etp=etp,
                                cp_comm=cp_comm if cp > 1 else "ring",
                            )
                            for ep, etp in experts
                        ]
    return out


def variants(s: Scenario, lay: Layout) -> list[tuple[str, str]]:
    """The (checkpointing, strategy) variants of a layout, fastest first: the offered strategies
    that model its context parallelism and its experts' folding (as validation requires)."""
    folded = moe_of(s.model) is not None and (lay.ep * lay.etp > 1 or lay.tp * lay.cp > 1)
    names = [
        name
        for name, st in _offered(s).items()
        if (lay.cp == 1 or st.context_parallel) and (not folded or st.expert_parallel)
    ]
    return [(ckpt, name) for ckpt in CHECKPOINTING for name in names]


def _first_fit(
    s: Scenario, lay: Layout, m: int, counter: list[int]
) -> tuple[Scenario, MemoryBreakdown] | None:
    """The fastest variant of a layout that fits; the leanest is tried first, as most layouts of a
    big model fail even that (and where only it fits, its first check is reused: counted twice,
    derived and checked once)."""
    done: dict[tuple[str, str], tuple[Scenario, MemoryBreakdown]] = {}

    def check(ckpt: str, strategy: str) -> tuple[Scenario, MemoryBreakdown]:
        if (ckpt, strategy) in done:
            counter[0] += 1
            return done[ckpt, strategy]
        cand = derive(
            s,
            {
                **lay.changes(m, s.training.parallel.tp_comm_overlap),
                "training.activation_checkpointing": ckpt,
                "training.strategy": strategy,
                "training.offload": None,
            },
        )
        counter[0] += 1
        done[ckpt, strategy] = cand, memory_breakdown(cand)
        return done[ckpt, strategy]

    tries = variants(s, lay)
    if not tries:
        return None
    try:
        if not check(*tries[-1])[1].fits:
            return None
        for variant in tries:
            cand, mem = check(*variant)
            if mem.fits:
                return cand, mem
    except UserError:
        pass  # the layout itself is not valid for this scenario
    return None


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
    models: list[MemoCompute] = []  # the estimates' kernel times, each once
    search = searched(s)
    candidates = layouts(s, search)
    for lay in candidates:
        m = s.global_batch_size // (lay.micro_batch * lay.dp(s.num_gpus))
        fit = _first_fit(s, lay, m, checks)
        if fit is not None:
            found.append((estimate_step_s(fit[0], comm, models), lay, *fit))
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
                    **lay.changes(
                        cand.training.grad_accum_steps, s.training.parallel.tp_comm_overlap
                    ),
                    "training.strategy": cand.strategy,
                    "training.activation_checkpointing": cand.training.activation_checkpointing,
                },
                cp=par.cp,
                ep=par.ep,
                etp=par.etp,
                edp=par.edp,
            )
        )
    rows.sort(key=lambda r: (-r.tokens_per_s, r.mem_bytes - r.capacity_bytes))
    return ParallelPlan(
        rows=rows[:top],
        layouts=len(candidates),
        fitting=len(found),
        memory_checks=checks[0],
        elapsed_s=time.perf_counter() - start,
        searched=search,
    )
