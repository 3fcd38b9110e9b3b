"""Before any Monte Carlo: does the run complete within what the simulation can do? Closed form,
from the renewal process of checkpoint/restart (milliseconds, whatever the inputs).

Expected wall time, Daly 2006's complete model (closed_forms.log_daly_expected_wall; Poisson
failures at the unplanned rate 1/M, which also strike restarts and checkpoints):
    T_w = M e^(R/M) (e^((tau + delta + lag)/M) - 1) T_s / tau
in logarithms, so that no input overflows (e^(R/M) is 10^260 for R = 10 min, M = 1 s). An
asynchronous snapshot is at risk until durable, so its commit lag joins the exposure; a run
without checkpoints is one cycle of tau = T_s. With finite hot spares and `without_spare: wait`
the job runs only while the hosts out for repair are at most the spares: out ~ Poisson(lambda_h
x repair) (an M/G/inf queue of repairs, lambda_h the rate of host-taking failures), and T_w is
divided by that availability (an approximation: it treats the waits as independent of the job).

The run does not complete (within the bound) when a run would be expected to take more than
MAX_EVENTS_PER_RUN interruptions (failures, planned restarts, slow nodes, repairs): T_w x their
rate. Llama 3's 54 days on 16,384 GPUs took 466; a million-step run of it ~3,000. Beyond the
bound the expected number of restarts per completion is itself the answer: the job spends its
time restarting (each restart succeeds with probability e^(-R/M); to first order a failure cycle
of length M yields M - R - (tau + delta)/2 - lag - M delta / tau of progress, negative when
restarts and rework outpace failures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from simulator.studies.goodput.closed_forms import daly_interval, log_daly_expected_wall
from simulator.studies.goodput.model import RunModel

# The most interruptions a run may be expected to take. The simulation handles ~30,000 events
# a second on one core (benchmarks/bench_goodput.py: 100 runs of ~3,000 in 7-12 s).
MAX_EVENTS_PER_RUN = 100_000
# The most expected events over all runs (~1 min on one core); fewer runs are simulated beyond.
MAX_TOTAL_EVENTS = 2_000_000


@dataclass(frozen=True, kw_only=True)
class Feasibility:
    completes: bool
    because: str | None  # why not (None when it completes)
    cluster_mtbf_s: float  # unplanned failures of the whole job (inf: none)
    restart_s: float
    restart_success: float  # probability that a restart ends before the next failure
    interval_s: float  # work between checkpoints (inf: none)
    pause_s: float
    commit_lag_s: float
    progress_per_failure_s: float | None  # first order, M (1 - waste); None without failures
    availability: float  # fraction of time enough hosts are healthy (1 without spares)
    expected_wall_s: float  # Daly 2006 complete model (inf when it overflows)
    expected_failures: float  # unplanned, per run
    expected_events: float  # interruptions of every kind, per run
    event_rate_s: float
    runs: int  # runs to simulate (fewer than asked beyond MAX_TOTAL_EVENTS)
    event_cap: int  # a run stops after this many events (process.py)
    expected_ettr: float  # failure-free work / expected wall (1 in a window: unknown)
    remedies: tuple[str, ...] = ()
    bound: int = MAX_EVENTS_PER_RUN  # the most interruptions a run may be expected to take


def event_rate(m: RunModel) -> float:
    """Interruptions per second: every failure class, slow nodes (arrival and removal), repairs."""
    repairs = (
        sum(c.rate_s for c in m.classes if c.spec.takes_host) if m.hot_spares is not None else 0.0
    )
    return sum(c.rate_s for c in m.classes) + 2.0 * m.straggler_rate_s + repairs


def log_availability(m: RunModel, spares: int | None = None) -> float:
    """log P(hosts out for repair <= spares): Poisson(lambda_h x repair) (0 with shrink or no spares)."""
    spares = m.hot_spares if spares is None else spares
    if spares is None or m.without_spare != "wait":
        return 0.0
    mu = sum(c.rate_s for c in m.classes if c.spec.takes_host) * (m.repair_s or 0.0)
    if mu <= 0.0 or spares > mu + 40.0 * math.sqrt(mu) + 40.0:
        return 0.0
    terms = [k * math.log(mu) - mu - math.lgamma(k + 1) for k in range(spares + 1)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def log_slowdown(
    m: RunModel,
    scale: float = 1.0,
    restart_s: float | None = None,
    tau: float | None = None,
    spares: int | None = None,
) -> float:
    """log(T_w / T_s): the expected wall time per unit of work, failure rates x scale."""
    rate = m.unplanned_rate_s * scale
    restart = m.restart_s if restart_s is None else restart_s
    tau = min(m.interval_s if tau is None else tau, m.work_s)
    if math.isinf(tau):  # a window without checkpoints: the exposure is the whole window
        tau = m.window_s or math.inf
    pause = 0.0 if tau >= m.work_s else m.pause_s
    lag = 0.0 if tau >= m.work_s else m.commit_lag_s
    if rate <= 0.0:
        base = math.log1p(pause / tau) if math.isfinite(tau) else 0.0
    elif math.isinf(tau):
        base = math.inf
    else:
        # Daly's T_w / T_s (solve = 1); an asynchronous snapshot's commit lag joins its exposure.
        base = log_daly_expected_wall(1.0, tau, pause + lag, restart, 1.0 / rate)
    return base - log_availability(m, spares)


def log_wall(m: RunModel, **kw) -> float:
    """log of the expected wall time of the whole run (of the window in window mode)."""
    if m.window_s is not None:
        return math.log(m.window_s)
    if m.work_s <= 0.0:
        return -math.inf
    return math.log(m.work_s) + log_slowdown(m, **kw)


def _optimal_tau(m: RunModel, rate: float) -> float:
    """Daly's interval in whole steps at this rate (inf: none, as model.py)."""
    if rate <= 0.0:
        return math.inf
    target = daly_interval(m.pause_s, 1.0 / rate)
    if target >= m.work_s:
        return math.inf
    return max(1, round(target / m.step_s)) * m.step_s


def _log_events(m: RunModel, scale: float = 1.0, **kw) -> float:
    rate = event_rate(m) * scale
    return -math.inf if rate <= 0.0 else log_wall(m, scale=scale, **kw) + math.log(rate)


def _exp(x: float) -> float:
    return math.inf if x > 700.0 else math.exp(x)


LOG_BOUND = math.log(MAX_EVENTS_PER_RUN)


def assess(m: RunModel) -> Feasibility:
    """The verdict, its figures and (when it does not complete) what would make it complete."""
    mtbf, rate = m.mtbf_s, event_rate(m)
    log_events = _log_events(m)
    events, wall = _exp(log_events), _exp(log_wall(m))
    completes = log_events <= LOG_BOUND
    runs = (
        m.runs if events * m.runs <= MAX_TOTAL_EVENTS else max(1, int(MAX_TOTAL_EVENTS // events))
    )
    tau = min(m.interval_s, m.work_s)
    progress = None
    if math.isfinite(mtbf) and math.isfinite(tau):
        progress = (
            mtbf - m.restart_s - (tau + m.pause_s) / 2.0 - m.commit_lag_s - mtbf * m.pause_s / tau
        )
    f = Feasibility(
        completes=completes,
        because=None,
        cluster_mtbf_s=mtbf,
        restart_s=m.restart_s,
        restart_success=math.exp(-m.restart_s / mtbf),
        interval_s=m.interval_s,
        pause_s=m.pause_s,
        commit_lag_s=m.commit_lag_s,
        progress_per_failure_s=progress,
        availability=math.exp(log_availability(m)),
        expected_wall_s=wall,
        expected_failures=wall / mtbf if math.isfinite(wall) else math.inf,
        expected_events=events,
        event_rate_s=rate,
        runs=runs if completes else 0,
        event_cap=2 * MAX_TOTAL_EVENTS // runs if completes else 0,
        expected_ettr=_exp(-log_slowdown(m)) if rate > 0 else 1.0,
    )
    if completes:
        return f
    return replace(f, because=_because(m, f), remedies=_remedies(m))


def _because(m: RunModel, f: Feasibility) -> str:
    if m.window_s is not None:
        return (
            f"the {_t(m.window_s)} window holds ~{f.expected_events:.3g} interruptions per run, beyond the "
            f"{MAX_EVENTS_PER_RUN:,} a run is simulated for"
        )
    text = (
        f"a run would take ~{f.expected_events:.3g} interruptions ({f.expected_failures:.3g} unplanned "
        f"failures) to finish, beyond the {MAX_EVENTS_PER_RUN:,} a run is simulated for: cluster MTBF "
        f"{_t(f.cluster_mtbf_s)}, restart {_t(f.restart_s)} (ends before the next failure with probability "
        f"{f.restart_success:.2g}), checkpoint every {_t(f.interval_s)} with a {_t(f.pause_s)} pause"
    )
    if f.progress_per_failure_s is not None:
        text += (
            f"; to first order a failure cycle yields {_t(f.progress_per_failure_s)} of progress"
        )
        if f.progress_per_failure_s <= 0:
            text += " (none: restarts, rework and checkpoints outpace failures)"
    if f.availability < 1.0:
        text += f"; enough healthy hosts {100 * f.availability:.3g}% of the time"
    ratio = f.expected_wall_s / m.work_s
    return text + (
        f"; expected wall-clock (Daly 2006) {_t(f.expected_wall_s)}, {ratio:.3g}x the failure-free "
        f"{_t(m.work_s)}"
        if math.isfinite(ratio)
        else "; expected wall-clock beyond any horizon"
    )


def _remedies(m: RunModel) -> tuple[str, ...]:
    """Each change that alone brings the run within the bound (the others as given)."""
    out = []
    if m.window_s is not None:
        rate = event_rate(m)
        return (f"a window of at most {_t(MAX_EVENTS_PER_RUN / rate)}",)
    rate = m.unplanned_rate_s
    if rate > 0:
        rest = _log_events(m) - m.restart_s * rate
        most = (LOG_BOUND - rest) / rate
        if most > 0:
            out.append(
                f"a restart of at most {_t(most)} (now {_t(m.restart_s)}: detection + initialization + "
                "checkpoint load)"
            )
        if not m.interval_optimal:
            tau = _optimal_tau(m, rate)
            if _log_events(m, tau=tau) <= LOG_BOUND:
                out.append(
                    f"checkpoint interval: optimal (Daly 2006: {_t(tau)}, now {_t(m.interval_s)})"
                )
    scale = _largest_scale(m)
    if scale is not None:
        out.append(
            f"failure rates {1 / scale:.3g}x lower (failure_rate_scale x {scale:.3g}): a cluster MTBF of "
            f"at least {_t(m.mtbf_s / scale)}"
            if rate > 0
            else f"failure rates {1 / scale:.3g}x lower"
        )
    if m.hot_spares is not None and m.without_spare == "wait" and log_availability(m) < 0:
        k = _fewest_spares(m)
        out.append(
            (f"hot_spares: {k} (now {m.hot_spares})" if k is not None else "more hot_spares")
            + ", or without_spare: shrink"
        )
    return tuple(out)


def _largest_scale(m: RunModel) -> float | None:
    """The largest factor (< 1) on every failure rate that brings the run within the bound."""

    def fits(log_s: float) -> bool:
        s = math.exp(log_s)
        tau = _optimal_tau(m, m.unplanned_rate_s * s) if m.interval_optimal else None
        return _log_events(m, scale=s, tau=tau) <= LOG_BOUND

    lo, hi = -60.0, 0.0  # fits(lo): e^-60 of the rates is as good as none
    if not fits(lo):
        return None
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return math.exp(lo)


def _fewest_spares(m: RunModel) -> int | None:
    assert m.hot_spares is not None  # asked only of a run with a finite number of spares
    mu = sum(c.rate_s for c in m.classes if c.spec.takes_host) * (m.repair_s or 0.0)
    lo, hi = m.hot_spares, int(mu + 40.0 * math.sqrt(mu) + 41.0)
    if _log_events(m, spares=hi) > LOG_BOUND:
        return None
    while lo < hi:  # availability grows with the spares
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if _log_events(m, spares=mid) > LOG_BOUND else (lo, mid)
    return lo


def _t(s: float) -> str:
    """A duration for a sentence."""
    if not math.isfinite(s):
        return "never" if s > 0 else "-inf"
    sign, s = ("-", -s) if s < 0 else ("", s)
    for unit, size in (
        ("years", 365.25 * 86400.0),
        ("days", 86400.0),
        ("h", 3600.0),
        ("min", 60.0),
    ):
        if s >= size:
            return f"{sign}{s / size:.3g} {unit}"
    return f"{sign}{s:.3g} s"
