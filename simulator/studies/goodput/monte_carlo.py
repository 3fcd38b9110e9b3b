"""Monte Carlo over seeds: the run simulated `runs` times (one seed sequence each, spawned from
the scenario's seed, so the answer is the same for the same seed), summarized as the report's
goodput section: wall-clock days (p10/p50/p90), effective training time ratio, interruptions by
cause, GPU-hours lost by cause, beside the closed forms.

First the closed-form check of feasibility.py: a run that would not complete within the bound
(MAX_EVENTS_PER_RUN interruptions) is not simulated; its result has no runs and says why. Then
at most MAX_TOTAL_EVENTS expected events in all (fewer runs beyond), and each run stops at its
event cap whatever happens (a heavy-tailed Weibull, waits for repairs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from simulator.spec.specs import Scenario
from simulator.studies.goodput import renewal
from simulator.studies.goodput.closed_forms import first_order_waste
from simulator.studies.goodput.feasibility import Feasibility, assess
from simulator.studies.goodput.model import RunModel, run_model
from simulator.studies.goodput.process import LOSSES, STRAGGLER, RunResult, simulate_run

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, kw_only=True)
class GoodputResult:
    model: RunModel
    runs: tuple[RunResult, ...]
    feasibility: Feasibility | None = None  # None: simulated without the check (run_monte_carlo)

    @property
    def completes(self) -> bool:
        """False: not simulated, the run does not complete within the bound (see feasibility)."""
        return bool(self.runs)

    @property
    def capped_runs(self) -> int:
        return sum(r.capped for r in self.runs)

    def _array(self, values) -> np.ndarray:
        return np.asarray(list(values), dtype=float)

    @property
    def wall_days(self) -> np.ndarray:
        """Each run's wall-clock days; [inf] when the run does not complete."""
        if not self.runs:
            return np.array([math.inf])
        return self._array(r.wall_s / SECONDS_PER_DAY for r in self.runs)

    @property
    def ettr(self) -> np.ndarray:
        """Effective training time ratio of each run: useful training / elapsed (Llama 3's); when
        not simulated, the closed form's expectation."""
        if not self.runs:
            return np.array([self.feasibility.expected_ettr if self.feasibility else 0.0])
        return self._array(r.useful_s / r.wall_s if r.wall_s > 0 else 1.0 for r in self.runs)

    def percentile(self, values: np.ndarray, q: float) -> float:
        if len(values) == 1:  # also [inf] (np.percentile gives nan: inf - inf)
            return float(values[0])
        return float(np.percentile(values, q))

    @property
    def interruptions(self) -> dict[str, float]:
        """Mean count per run by cause (slow-node removals under 'straggler')."""
        names = [c.name for c in self.model.classes] + ([STRAGGLER] if self.model.straggler else [])
        return {n: float(np.mean([r.interruptions[n] for r in self.runs])) for n in names}

    @property
    def lost_s(self) -> dict[str, float]:
        return {k: float(np.mean([r.lost_s[k] for r in self.runs])) for k in LOSSES}

    @property
    def lost_gpu_hours(self) -> dict[str, float]:
        return {k: v * self.model.num_gpus / 3600.0 for k, v in self.lost_s.items()}

    @property
    def lost_by_cause_gpu_hours(self) -> dict[str, float]:
        """The lost time again, by cause (failure class, 'checkpoint', 'degraded', 'straggler')."""
        keys = self.runs[0].lost_by_cause_s
        return {
            k: float(np.mean([r.lost_by_cause_s[k] for r in self.runs]))
            * self.model.num_gpus
            / 3600.0
            for k in keys
        }

    @property
    def lost_fraction(self) -> dict[str, float]:
        return {k: float(np.mean([r.lost_s[k] / r.wall_s for r in self.runs])) for k in LOSSES}

    @property
    def expected_unplanned(self) -> float:
        """Poisson expectation of the unplanned interruptions over the mean wall time."""
        return self.model.unplanned_rate_s * float(np.mean([r.wall_s for r in self.runs]))

    @property
    def first_order_waste(self) -> float | None:
        """The closed form's lost fraction (periodic checkpoints and unplanned failures only)."""
        m = self.model
        if math.isinf(m.mtbf_s) or math.isinf(m.interval_s):
            return None
        return first_order_waste(m.interval_s, m.pause_s, m.restart_s, m.mtbf_s, m.commit_lag_s)


def simulate_goodput(
    scenario: Scenario,
    step_s: float,
    work_s: float,
    runs: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
) -> GoodputResult | None:
    """The Monte Carlo of the scenario's whole run; None when reliability.enabled is false.
    `jobs` > 1 lets a large Monte Carlo use that many processes (never inside a sweep's workers)."""
    if scenario.reliability is not None and not scenario.reliability.enabled:
        return None
    model = run_model(scenario, step_s, work_s, runs, seed)
    found = assess(model)
    if not found.completes:
        return GoodputResult(model=model, runs=(), feasibility=found)
    if found.runs < model.runs:
        model = replace(model, runs=found.runs)
    return run_monte_carlo(model, jobs, found.event_cap, found)


# Below this many expected events (interruptions over all runs) one process is faster than a pool.
PARALLEL_EVENTS = 40_000


def expected_events(model: RunModel) -> float:
    span = model.window_s if model.window_s is not None else model.work_s
    return model.runs * span * (sum(c.rate_s for c in model.classes) + model.straggler_rate_s)


def _runs(
    model: RunModel, seqs: list[np.random.SeedSequence], cap: int | None = None
) -> list[RunResult]:
    return [simulate_run(model, s, cap) for s in seqs]


def run_monte_carlo(
    model: RunModel, jobs: int = 1, cap: int | None = None, feasibility: Feasibility | None = None
) -> GoodputResult:
    """The runs, one seed sequence each (the same results whatever `jobs` is), each stopped after
    `cap` arrivals: in numpy where renewal.supports(model) (one process; the same runs as the
    simpy process's), else simpy processes (process.py) in `jobs` processes."""
    seqs = np.random.SeedSequence(model.seed).spawn(model.runs)
    if renewal.supports(model):  # the same runs, as arithmetic over all of them at once
        runs = renewal.simulate_runs(model, seqs, cap)
        return GoodputResult(model=model, runs=tuple(runs), feasibility=feasibility)
    jobs = min(jobs, model.runs)
    if jobs <= 1 or expected_events(model) < PARALLEL_EVENTS:
        return GoodputResult(
            model=model, runs=tuple(_runs(model, seqs, cap)), feasibility=feasibility
        )
    from simulator.studies.workers import terminate_workers, worker_pool

    chunks = [seqs[i::jobs] for i in range(jobs)]
    pool = worker_pool(jobs)
    try:
        parts = list(pool.map(_runs, [model] * jobs, chunks, [cap] * jobs))
    except BaseException:  # Ctrl-C: the workers are stopped, not waited for
        terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    ordered = [parts[i % jobs][i // jobs] for i in range(model.runs)]  # chunks[j] = seqs[j::jobs]
    return GoodputResult(model=model, runs=tuple(ordered), feasibility=feasibility)
