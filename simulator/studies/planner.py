"""Capacity planning: the common what-if questions answered with the memory model and the step engine.

- min_gpus_plan: the smallest GPU count on which a model fits under each strategy, and the
  fastest strategy among those that fit at that size (each simulated);
- max_model_plan: the largest model that fits on a cluster under each strategy (bisection on
  the parameter count of a bare-params model, or the presets of one family);
- budget_plan: the compute-optimal model for a FLOP budget (Chinchilla) and the fitted loss
  L(N, D) to compare options, then how it trains on the scenario's cluster;
- train_plan: time and cost to train a model on a number of tokens.

Pure functions returning dataclasses; cli formatting lives in simulator/commands/plan.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from simulator.model import presets
from simulator.core.errors import Problem, ScenarioError, did_you_mean
from simulator.execution.memory import memory_breakdown
from simulator.report.report import PF_DAY_FLOPS, TOKENS_PER_PARAM
from simulator.scenario.load import Scenario, scenario_from_dict

STRATEGY_ORDER = ("ddp", "zero1", "zero2", "zero3")
MAX_GPUS = 65536
SECONDS_PER_DAY = 86400


# ---------------------------------------------------------------- compute and scaling laws

def flops_per_param_per_token(kind: str = "decoder") -> int:
    """Training FLOPs per parameter per token, ignoring attention (Kaplan et al. 2020, Sec 2.1).

    6 = 2 (forward) + 4 (backward) multiply-adds per parameter. An encoder-decoder model sees
    each token with only half its parameters (encoder or decoder), so 3 (Brown et al. 2020,
    GPT-3 Appendix D, Table D.1 note on T5)."""
    return 3 if kind == "encoder-decoder" else 6


def training_flops(params: float, tokens: float, kind: str = "decoder") -> float:
    """C = 6 N D (3 N D for encoder-decoder)."""
    return flops_per_param_per_token(kind) * params * tokens


def pf_days(flops: float) -> float:
    """FLOPs in PF-days (1e15 FLOP/s for one day; GPT-3 Table D.1 unit)."""
    return flops / PF_DAY_FLOPS


def compute_optimal(flops: float, tokens_per_param: float = TOKENS_PER_PARAM) -> tuple[float, float]:
    """(N, D) for budget C with D = r N and C = 6 N D, so N = sqrt(C / 6r) (Hoffmann et al. 2022,
    Table 3: about 20 tokens per parameter)."""
    n = math.sqrt(flops / (6 * tokens_per_param))
    return n, tokens_per_param * n


@dataclass(frozen=True)
class LossFit:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str


# Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models"), Sec 3.3 / eq (2),
# Approach 3 parametric fit (nats per token on MassiveText).
CHINCHILLA_FIT = LossFit(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
                         source="Hoffmann et al. 2022, Approach 3 fit (Sec 3.3, eq 2)")


def predicted_loss(params: float, tokens: float, fit: LossFit = CHINCHILLA_FIT) -> float:
    return fit.E + fit.A / params**fit.alpha + fit.B / tokens**fit.beta


def loss_optimal(flops: float, fit: LossFit = CHINCHILLA_FIT) -> tuple[float, float]:
    """(N, D) minimising L(N, D) subject to 6 N D = C.

    Hoffmann et al. 2022, eq (4): N = G (C/6)^(b/(a+b)), D = (C/6)^(a/(a+b)) / G,
    G = (alpha A / (beta B))^(1/(alpha+beta))."""
    a, b = fit.alpha, fit.beta
    g = (a * fit.A / (b * fit.B)) ** (1 / (a + b))
    return g * (flops / 6) ** (b / (a + b)), (flops / 6) ** (a / (a + b)) / g


@dataclass(frozen=True)
class LossRow:
    params: float
    tokens: float
    loss: float
    label: str = ""

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params


def loss_table(flops: float, fit: LossFit = CHINCHILLA_FIT,
               factors: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8)) -> list[LossRow]:
    """Model sizes around the 20-tokens/param optimum at fixed C, with the predicted loss; the
    loss-optimal point of the fit is added (sorted by size)."""
    n20, _ = compute_optimal(flops)
    rows = [LossRow(f * n20, flops / (6 * f * n20), predicted_loss(f * n20, flops / (6 * f * n20), fit),
                    "20 tokens/param" if f == 1 else "") for f in factors]
    n3, d3 = loss_optimal(flops, fit)
    rows.append(LossRow(n3, d3, predicted_loss(n3, d3, fit), "loss-optimal (fit)"))
    return sorted(rows, key=lambda r: r.params)


# ---------------------------------------------------------------- scenario variations

def with_model(scenario: Scenario, model: dict[str, Any]) -> Scenario:
    """The scenario with another model section ({"params": 7e9} or {"preset": "llama2-7b"}),
    validated and shaped exactly as a scenario file's would be."""
    import dataclasses

    spec = scenario_from_dict({"model": model}).model
    return dataclasses.replace(scenario, model=spec)


def peak_flops(scenario: Scenario) -> float:
    """Dense peak FLOP/s per GPU for the scenario's precision (the MFU denominator)."""
    from simulator.execution.step import compute_model

    cm = compute_model(scenario)
    return cm.gpu.peak(cm.gemm_dtype)


def fits(scenario: Scenario) -> bool:
    return memory_breakdown(scenario).fits


def with_strategy(scenario: Scenario, strategy: str) -> Scenario:
    changes: dict[str, Any] = {"strategy": strategy}
    if strategy == "ddp" and scenario.training.offload.optimizer != "none":
        changes["offload"] = scenario.training.offload.model_copy(update={"optimizer": "none", "params": "none"})
    if strategy != "zero3" and scenario.training.offload.params != "none":
        changes["offload"] = scenario.training.offload.model_copy(update={"params": "none"})
    if strategy == "hsdp" and scenario.training.shard_group_size is None:
        changes["shard_group_size"] = scenario.cluster.gpus_per_host
    return scenario.with_training(**changes)


def gpu_count_candidates(gpus_per_host: int, cap: int = MAX_GPUS) -> list[int]:
    """GPU counts a job can use: 1, 2, 4, ... within a host, then whole hosts."""
    small = [n for n in (2**i for i in range(20)) if n < gpus_per_host]
    return small + list(range(gpus_per_host, cap + 1, gpus_per_host))


def min_gpus(scenario: Scenario, cap: int = MAX_GPUS) -> int | None:
    """Smallest usable GPU count on which the scenario fits (memory only), or None up to cap.

    Per-GPU memory never grows with the GPU count beyond 2 GPUs (shards shrink), so the search
    is a linear scan within a host and a doubling-then-bisection over whole hosts."""
    cands = gpu_count_candidates(scenario.cluster.gpus_per_host, cap)
    small = [n for n in cands if n < scenario.cluster.gpus_per_host]
    for n in small:
        if fits(scenario.with_gpus(n)):
            return n
    hosts = [n for n in cands if n >= scenario.cluster.gpus_per_host]
    if not hosts:
        return None
    lo, hi = -1, 0  # indexes into hosts: hosts[lo] does not fit, hosts[hi] is probed
    while not fits(scenario.with_gpus(hosts[hi])):
        if hi == len(hosts) - 1:
            return None
        lo, hi = hi, min(len(hosts) - 1, 2 * hi + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(scenario.with_gpus(hosts[mid])) else (mid, hi)
    return hosts[hi]


@dataclass(frozen=True)
class StrategyRow:
    """One strategy at one GPU count: memory verdict and (when simulated) speed."""

    strategy: str
    num_gpus: int | None
    fits: bool
    mem_total_bytes: int = 0
    capacity_bytes: int = 0
    step_time_s: float | None = None
    mfu: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_per_gpu: float | None = None
    exposed_comm_s: float | None = None


def strategy_row(scenario: Scenario, simulate_step: bool = True) -> StrategyRow:
    from simulator.studies.simulate import simulate

    mem = memory_breakdown(scenario)
    row: dict[str, Any] = {"strategy": scenario.strategy, "num_gpus": scenario.cluster.num_gpus,
                           "fits": mem.fits, "mem_total_bytes": mem.total_bytes,
                           "capacity_bytes": mem.capacity_bytes}
    if simulate_step:
        st = simulate(scenario)["step"]
        row.update(step_time_s=st["time_s"], mfu=st["mfu"], tokens_per_s=st["tokens_per_s"],
                   tokens_per_s_per_gpu=st["tokens_per_s_per_gpu"], exposed_comm_s=st["exposed_comm_s"])
    return StrategyRow(**row)


@dataclass(frozen=True)
class MinGpusPlan:
    minimum: dict[str, int | None]       # strategy -> smallest GPU count that fits (None: none)
    at_minimum: list[StrategyRow]         # each strategy at its own minimum
    compare_at: int | None                # the GPU count where the strategies are compared
    compared: list[StrategyRow]           # every strategy at compare_at (simulated when it fits)
    fastest: str | None


def min_gpus_plan(scenario: Scenario, strategies: tuple[str, ...] = STRATEGY_ORDER,
                  compare_at: int | None = None, cap: int = MAX_GPUS) -> MinGpusPlan:
    """Smallest GPU count per strategy; then all strategies at one size (the smallest on which
    any fits, unless compare_at is given), the fastest step among those that fit."""
    minimum, at_min = {}, []
    for strategy in strategies:
        s = with_strategy(scenario, strategy)
        minimum[strategy] = n = min_gpus(s, cap)
        at_min.append(strategy_row(s.with_gpus(n)) if n else StrategyRow(strategy, None, False))
    found = [n for n in minimum.values() if n]
    size = compare_at or (min(found) if found else None)
    compared: list[StrategyRow] = []
    if size:
        for strategy in strategies:
            s = with_strategy(scenario, strategy).with_gpus(size)
            compared.append(strategy_row(s, simulate_step=fits(s)))
    ok = [r for r in compared if r.fits]
    fastest = min(ok, key=lambda r: (r.step_time_s, STRATEGY_ORDER.index(r.strategy)
                                     if r.strategy in STRATEGY_ORDER else 9)).strategy if ok else None
    return MinGpusPlan(minimum, at_min, size, compared, fastest)


# ---------------------------------------------------------------- largest model

@dataclass(frozen=True)
class MaxModelRow:
    strategy: str
    params: int | None           # largest that fits (None: not even the smallest candidate)
    model: str                   # preset name or "N params (L layers, hidden h)"
    mem_total_bytes: int = 0
    capacity_bytes: int = 0


def max_params(scenario: Scenario, lo: float = 1e6, hi: float = 1e14, rel: float = 1e-3) -> int | None:
    """Largest bare parameter count that fits, by bisection on log(params).

    The model shape follows the scenario loader's estimate for a bare count (GPT-3's aspect
    ratio, d_model / n_layers ~ 128); memory grows with params, so bisection applies."""
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
    from simulator.model.transformer import param_count

    names = [n for n in presets.preset_names() if n.startswith(family)]
    if not names:
        prefixes = sorted({n.rsplit("-", 1)[0] for n in presets.preset_names()})
        raise ScenarioError(Problem("--family", f"no preset family {family!r}", did_you_mean(family, prefixes)))
    return sorted(names, key=lambda n: param_count(presets.get_preset(n)))


def max_model_plan(scenario: Scenario, strategies: tuple[str, ...] = STRATEGY_ORDER,
                   family: str | None = None) -> list[MaxModelRow]:
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
            rows.append(MaxModelRow(strategy, None, "none fits"))
            continue
        m, mem = best.model, memory_breakdown(best)
        label = m.name if family else f"{m.params / 1e9:.3g}B ({m.num_layers} layers, hidden {m.hidden_size})"
        rows.append(MaxModelRow(strategy, m.params, label, mem.total_bytes, mem.capacity_bytes))
    return rows


# ---------------------------------------------------------------- budgets and training runs

@dataclass(frozen=True)
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


def train_row(scenario: Scenario, tokens: float) -> TrainRow:
    from simulator.studies.simulate import simulate

    r = simulate(scenario.with_training(tokens=float(tokens)))
    st, tr = r["step"], r["training"]
    return TrainRow(scenario.cluster.num_gpus, scenario.strategy, r["memory"]["fits"],
                    r["memory"]["per_gpu"]["total_bytes"], st["time_s"], st["mfu"], st["tokens_per_s"],
                    tr["days"], tr["gpu_hours"], tr.get("cost_usd"))


@dataclass(frozen=True)
class TrainPlan:
    params: int
    tokens: float
    flops_6nd: float              # C = 6ND (3ND encoder-decoder), the GPT-3 / Chinchilla convention
    model_flops: float            # the simulator's model FLOPs, attention included
    rows: list[TrainRow]


def train_plan(scenario: Scenario, tokens: float | None = None,
               gpu_counts: tuple[int, ...] = ()) -> TrainPlan:
    """Time and cost to train the scenario's model on `tokens` (default: its training.tokens,
    else 20 per parameter) at its own GPU count or each of gpu_counts."""
    from simulator.execution.step import model_flops_per_token

    m = scenario.model
    tokens = float(tokens or scenario.training.tokens or TOKENS_PER_PARAM * m.params)
    kind = m.arch.kind if m.arch is not None else "decoder"
    rows = [train_row(scenario.with_gpus(n) if n else scenario, tokens)
            for n in (gpu_counts or (0,))]
    return TrainPlan(m.params, tokens, training_flops(m.params, tokens, kind),
                     model_flops_per_token(scenario) * tokens, rows)


@dataclass(frozen=True)
class BudgetPlan:
    flops: float
    source: str                     # how the budget was given
    params: float                   # compute-optimal N (20 tokens/param)
    tokens: float
    loss_rows: list[LossRow]
    mfu_assumed: float | None = None
    iterations: int = 0
    train: list[TrainRow] = field(default_factory=list)   # per strategy on the scenario's cluster


def budget_plan(flops: float | None = None, gpu_days: float | None = None, scenario: Scenario | None = None,
                mfu: float | None = None, strategies: tuple[str, ...] = STRATEGY_ORDER) -> BudgetPlan:
    """Compute-optimal N and D for a FLOP budget, or for GPU-days on the scenario's cluster.

    GPU-days become FLOPs as gpu_days x 86400 s x peak x MFU. Without a given MFU, it is found
    by a fixed point: simulate the compute-optimal model on the cluster (the scenario's strategy
    and training setup), take its MFU, recompute the budget, until the MFU settles."""
    if (flops is None) == (gpu_days is None):
        raise ScenarioError(Problem("budget", "give exactly one of a FLOP budget and GPU-days"))
    iterations, source = 0, f"{pf_days(flops or 0):.4g} PF-days"
    if gpu_days is not None:
        if scenario is None:
            raise ScenarioError(Problem("--gpu-days", "GPU-days need a scenario for the GPU and its MFU"))
        peak, m = peak_flops(scenario), mfu or 0.4
        for iterations in range(1, 9):
            flops = gpu_days * SECONDS_PER_DAY * peak * m
            if mfu is not None:
                break
            n, d = compute_optimal(flops)
            new = train_row(with_model(scenario, {"params": n}), d).mfu
            if abs(new - m) <= 1e-3 * m:
                m = new
                break
            m = new
        flops = gpu_days * SECONDS_PER_DAY * peak * m
        source = f"{gpu_days:g} GPU-days of {scenario.cluster.gpu.name} at MFU {100 * m:.1f}%"
        mfu = m
    n, d = compute_optimal(flops)
    train = []
    if scenario is not None:
        model = with_model(scenario, {"params": n})
        train = [train_row(with_strategy(model, s), d) for s in strategies]
    return BudgetPlan(flops, source, n, d, loss_table(flops), mfu, iterations, train)
