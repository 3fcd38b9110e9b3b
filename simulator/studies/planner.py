"""Capacity planning: the common what-if questions answered with the memory model and the step engine.

- min_gpus_plan: the smallest GPU count on which a model fits under each strategy, and the
  fastest strategy among those that fit at that size (each simulated);
- max_model_plan: the largest model that fits on a cluster under each strategy (bisection on
  the parameter count of a bare-params model, or the presets of one family);
- budget_plan: the compute-optimal model for a FLOP budget (Chinchilla) and the fitted loss
  L(N, D) to compare options, then how it trains on the scenario's cluster;
- train_plan: time and cost to train a model on a number of tokens.

Every variation of the scenario is derived and validated like a scenario file. Pure functions
returning dataclasses; the CLI formats them (cli/commands/plan.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.execution.context import SimContext
from simulator.execution.memory import memory_breakdown
from simulator.execution.metrics import (
    SECONDS_PER_DAY,
    TOKENS_PER_PARAM,
    model_flops_per_token,
    step_metrics,
    training_metrics,
)
from simulator.execution.step import simulate_step
from simulator.execution.strategies import by_memory
from simulator.model import presets
from simulator.model.architecture import param_count
from simulator.scenario.load import derive, with_gpus
from simulator.spec.specs import Scenario
from simulator.studies.goodput import simulate_goodput
from simulator.studies.scaling import LossRow, compute_optimal, loss_table, training_flops
from simulator.studies.search import MinGpus, min_gpus
from simulator.system.topology.loader import MAX_GPUS

STRATEGY_ORDER = tuple(s.name for s in by_memory())
# Largest model a budget plan simulates; beyond it the answer is the formula alone.
MAX_SIMULATED_PARAMS = 1e14


def with_model(scenario: Scenario, model: dict[str, Any]) -> Scenario:
    """The scenario with another model section ({"params": 7e9} or {"preset": "llama2-7b"})."""
    return derive(scenario, {"model": model})


def with_strategy(scenario: Scenario, strategy: str) -> Scenario:
    changes: dict[str, Any] = {"training.strategy": strategy}
    t = scenario.training
    if strategy == "ddp" and t.offload.optimizer:
        changes["training.offload"] = None
    if strategy not in ("zero3", "hsdp") and t.offload.params:
        changes["training.offload.params"] = "none"
    if strategy == "hsdp" and t.shard_group_size is None:
        changes["training.shard_group_size"] = scenario.cluster.gpus_per_host
    return derive(scenario, changes)


def peak_flops(scenario: Scenario) -> float:
    """Dense peak FLOP/s per GPU for the scenario's precision (the MFU denominator)."""
    return scenario.cluster.gpu.peak(scenario.training.precision.gemm_dtype)


def fits(scenario: Scenario) -> bool:
    return memory_breakdown(scenario).fits


@dataclass(frozen=True, kw_only=True)
class StrategyRow:
    """One strategy at one GPU count: memory verdict and (when simulated) speed."""

    strategy: str
    num_gpus: int | None
    fits: bool
    mem_total_bytes: int | None = None
    capacity_bytes: int | None = None
    step_time_s: float | None = None
    mfu: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_per_gpu: float | None = None
    exposed_comm_s: float | None = None
    note: str = ""


def strategy_row(scenario: Scenario, ctx: SimContext, simulate: bool = True) -> StrategyRow:
    mem = memory_breakdown(scenario)
    row: dict[str, Any] = {
        "strategy": scenario.strategy,
        "num_gpus": scenario.num_gpus,
        "fits": mem.fits,
        "mem_total_bytes": mem.total_bytes,
        "capacity_bytes": mem.capacity_bytes,
    }
    if simulate:
        m = step_metrics(scenario, simulate_step(scenario, mem, ctx=ctx))
        row.update(
            step_time_s=m.time_s,
            mfu=m.mfu,
            tokens_per_s=m.tokens_per_s,
            tokens_per_s_per_gpu=m.tokens_per_s_per_gpu,
            exposed_comm_s=m.exposed_comm_s,
        )
    return StrategyRow(**row)


@dataclass(frozen=True, kw_only=True)
class MinGpusPlan:
    minimum: dict[str, MinGpus]  # strategy -> smallest valid GPU count that fits
    at_minimum: list[StrategyRow]  # each strategy at its own minimum
    compare_at: int | None  # the GPU count where the strategies are compared
    compared: list[StrategyRow]  # every strategy at compare_at (simulated when it fits)
    fastest: str | None


def min_gpus_plan(
    scenario: Scenario,
    strategies: tuple[str, ...] = STRATEGY_ORDER,
    compare_at: int | None = None,
    cap: int = MAX_GPUS,
) -> MinGpusPlan:
    """Smallest GPU count per strategy; then all strategies at one size (the smallest on which
    any fits, unless compare_at is given), the fastest step among those that fit."""
    ctx = SimContext()
    minimum, at_min = {}, []
    for strategy in strategies:
        s = with_strategy(scenario, strategy)
        minimum[strategy] = found = min_gpus(s, cap)
        at_min.append(
            strategy_row(with_gpus(s, found.count), ctx)
            if found.count
            else StrategyRow(strategy=strategy, num_gpus=None, fits=False, note=found.invalid_note)
        )
    counts = [m.count for m in minimum.values() if m.count]
    size = compare_at or (min(counts) if counts else None)
    compared: list[StrategyRow] = []
    if size:
        for strategy in strategies:
            try:
                s = with_gpus(with_strategy(scenario, strategy), size)
            except UserError as exc:
                compared.append(
                    StrategyRow(
                        strategy=strategy,
                        num_gpus=size,
                        fits=False,
                        note="; ".join(p.render() for p in exc.problems),
                    )
                )
                continue
            compared.append(strategy_row(s, ctx, simulate=fits(s)))
    ok = [r for r in compared if r.fits]
    fastest = (
        min(ok, key=lambda r: (r.step_time_s, strategies.index(r.strategy))).strategy
        if ok
        else None
    )
    return MinGpusPlan(
        minimum=minimum, at_minimum=at_min, compare_at=size, compared=compared, fastest=fastest
    )


@dataclass(frozen=True, kw_only=True)
class MaxModelRow:
    strategy: str
    params: int | None  # largest that fits (None: not even the smallest candidate)
    model: str  # preset name or "N params (L layers, hidden h)"
    mem_total_bytes: int | None = None
    capacity_bytes: int | None = None


def max_params(
    scenario: Scenario, lo: float = 1e6, hi: float = 1e14, rel: float = 1e-3
) -> int | None:
    """Largest bare parameter count that fits, by bisection on log(params); the shape of each
    candidate is the loader's estimate for a bare count, and memory grows with params."""
    if not fits(with_model(scenario, {"params": lo})):
        return None
    if fits(with_model(scenario, {"params": hi})):
        return int(hi)
    while hi / lo > 1 + rel:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if fits(with_model(scenario, {"params": mid})) else (lo, mid)
    return int(lo)


def family_presets(family: str) -> list[str]:
    """Presets whose name starts with `family` (e.g. 'llama2', 'gpt3', 'mpt'), smallest first."""
    names = [n for n in presets.preset_names() if n.startswith(family)]
    if not names:
        prefixes = sorted({n.rsplit("-", 1)[0] for n in presets.preset_names()})
        raise UserError(
            Problem("--family", f"no preset family {family!r}", did_you_mean(family, prefixes))
        )
    return sorted(names, key=lambda n: param_count(presets.get_preset(n)))


def max_model_plan(
    scenario: Scenario, strategies: tuple[str, ...] = STRATEGY_ORDER, family: str | None = None
) -> list[MaxModelRow]:
    """The largest model that fits on the scenario's cluster under each strategy."""
    rows = []
    for strategy in strategies:
        s = with_strategy(scenario, strategy)
        if family:
            fitting = [n for n in family_presets(family) if fits(with_model(s, {"preset": n}))]
            best = with_model(s, {"preset": fitting[-1]}) if fitting else None
        else:
            p = max_params(s)
            best = with_model(s, {"params": p}) if p else None
        if best is None:
            rows.append(MaxModelRow(strategy=strategy, params=None, model="none fits"))
            continue
        m, mem = best.model, memory_breakdown(best)
        label = (
            m.name
            if family
            else f"{m.params / 1e9:.3g}B ({m.num_layers} layers, hidden {m.hidden_size})"
        )
        rows.append(
            MaxModelRow(
                strategy=strategy,
                params=m.params,
                model=label,
                mem_total_bytes=mem.total_bytes,
                capacity_bytes=mem.capacity_bytes,
            )
        )
    return rows


@dataclass(frozen=True, kw_only=True)
class TrainRow:
    """A model trained on `tokens` on num_gpus GPUs: speed, days, cost."""

    num_gpus: int
    strategy: str
    fits: bool
    mem_total_bytes: int
    step_time_s: float
    mfu: float
    tokens_per_s: float
    days: float
    gpu_hours: float
    cost_usd: float | None
    # Wall-clock with failures, checkpoints and restarts (studies/goodput; None when disabled).
    wall_days_p50: float | None = None
    wall_days_p90: float | None = None
    effective_training_time_ratio: float | None = None
    # Why the run does not complete (goodput's feasibility check); None when it does.
    never_completes_because: str | None = None


def train_row(
    scenario: Scenario,
    tokens: float,
    ctx: SimContext,
    goodput: bool = True,
    runs: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
) -> TrainRow:
    s = derive(scenario, {"training.tokens": float(tokens)})
    mem = memory_breakdown(s)
    m = step_metrics(s, simulate_step(s, mem, ctx=ctx))
    tr = training_metrics(s, m)
    g = (
        simulate_goodput(s, m.time_s, tr.days * SECONDS_PER_DAY, runs, seed, jobs)
        if goodput
        else None
    )
    wall: dict[str, float] = {}
    because = None
    if g is not None and g.completes:
        wall = {
            "wall_days_p50": g.percentile(g.wall_days, 50),
            "wall_days_p90": g.percentile(g.wall_days, 90),
            "effective_training_time_ratio": float(g.ettr.mean()),
        }
    elif g is not None:
        assert g.feasibility is not None  # a run is left unsimulated only by the feasibility check
        because = g.feasibility.because
    return TrainRow(
        num_gpus=s.num_gpus,
        strategy=s.strategy,
        fits=mem.fits,
        mem_total_bytes=mem.total_bytes,
        step_time_s=m.time_s,
        mfu=m.mfu,
        tokens_per_s=m.tokens_per_s,
        days=tr.days,
        gpu_hours=tr.gpu_hours,
        cost_usd=tr.cost_usd,
        never_completes_because=because,
        **wall,
    )


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    params: int
    tokens: float
    flops_6nd: float  # C = 6ND (3ND encoder-decoder), the GPT-3 / Chinchilla convention
    model_flops: float  # the simulator's model FLOPs, attention included
    rows: list[TrainRow]


def train_plan(
    scenario: Scenario,
    tokens: float | None = None,
    gpu_counts: tuple[int, ...] = (),
    runs: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
) -> TrainPlan:
    """Time and cost to train the scenario's model on `tokens` (default: its training.tokens,
    else 20 per parameter) at its own GPU count or each of gpu_counts; wall-clock days with
    failures from `runs` Monte Carlo runs of the whole run (studies/goodput)."""
    ctx, m = SimContext(), scenario.model
    tokens = float(tokens or scenario.training.tokens or TOKENS_PER_PARAM * m.params)
    rows = [
        train_row(
            with_gpus(scenario, n) if n else scenario, tokens, ctx, runs=runs, seed=seed, jobs=jobs
        )
        for n in (gpu_counts or (0,))
    ]
    return TrainPlan(
        params=m.params,
        tokens=tokens,
        flops_6nd=training_flops(m.params, tokens, m.kind),
        model_flops=model_flops_per_token(scenario) * tokens,
        rows=rows,
    )


@dataclass(frozen=True, kw_only=True)
class BudgetPlan:
    flops: float
    source: str  # how the budget was given
    params: float  # compute-optimal N (20 tokens/param)
    tokens: float
    loss_rows: list[LossRow]
    mfu_assumed: float | None = None
    iterations: int = 0
    train: list[TrainRow] = field(default_factory=list)  # per strategy on the scenario's cluster


def budget_plan(
    flops: float | None = None,
    gpu_days: float | None = None,
    scenario: Scenario | None = None,
    mfu: float | None = None,
    strategies: tuple[str, ...] = STRATEGY_ORDER,
) -> BudgetPlan:
    """Compute-optimal N and D for a FLOP budget, or for GPU-days on the scenario's cluster.

    GPU-days become FLOPs as gpu_days x 86400 s x peak x MFU. Without a given MFU, it is found
    by a fixed point: simulate the compute-optimal model on the cluster (the scenario's strategy
    and training setup), take its MFU, recompute the budget, until the MFU settles."""
    if (flops is None) == (gpu_days is None):
        raise UserError(Problem("budget", "give exactly one of a FLOP budget and GPU-days"))
    iterations, source, ctx = 0, "", SimContext()
    if gpu_days is not None:
        if scenario is None:
            raise UserError(
                Problem("--gpu-days", "GPU-days need a scenario for the GPU and its MFU")
            )
        peak, m = peak_flops(scenario), mfu or 0.4
        for iterations in range(1, 9):
            flops = gpu_days * SECONDS_PER_DAY * peak * m
            n, d = compute_optimal(flops)
            if mfu is not None or n > MAX_SIMULATED_PARAMS:
                break
            new = train_row(with_model(scenario, {"params": n}), d, ctx, goodput=False).mfu
            converged, m = abs(new - m) <= 1e-3 * m, new
            if converged:
                break
        flops = gpu_days * SECONDS_PER_DAY * peak * m
        source = f"{gpu_days:g} GPU-days of {scenario.cluster.gpu.name} at MFU {100 * m:.1f}%"
        mfu = m
    assert flops is not None  # given, or from gpu_days (exactly one, checked above)
    n, d = compute_optimal(flops)
    source = source or f"{flops / 86400e15:.4g} PF-days"
    train = []
    if scenario is not None and n <= MAX_SIMULATED_PARAMS:
        model = with_model(scenario, {"params": n})
        train = [train_row(with_strategy(model, s), d, ctx) for s in strategies]
    return BudgetPlan(
        flops=flops,
        source=source,
        params=n,
        tokens=d,
        loss_rows=loss_table(flops),
        mfu_assumed=mfu,
        iterations=iterations,
        train=train,
    )
