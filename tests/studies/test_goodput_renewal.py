"""The vectorized renewal process (renewal.py) against the simpy process it replaces where
renewal.supports(model): the same runs for the same seeds, the same distribution for other
seeds, the accounting identities of every run, and cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.scenario.load import scenario_from_dict
from simulator.studies.goodput import progress, renewal
from simulator.studies.goodput.model import RunModel, run_model
from simulator.studies.goodput.monte_carlo import run_monte_carlo
from simulator.studies.goodput.process import RunResult, simulate_run
from tests.studies.test_goodput import one_process

HOUR = 3600.0


def model_of(data: dict, work_s: float, runs: int = 20, seed: int = 0) -> RunModel:
    return run_model(scenario_from_dict(data), 1.0, work_s, runs, seed)


def both(m: RunModel, cap: int | None = None) -> tuple[list[RunResult], list[RunResult]]:
    """simpy's runs and renewal's, from the same seed sequences (fresh: spawning is stateful)."""
    simpy = [simulate_run(m, s, cap) for s in np.random.SeedSequence(m.seed).spawn(m.runs)]
    fast = renewal.simulate_runs(m, np.random.SeedSequence(m.seed).spawn(m.runs), cap)
    return simpy, fast


def assert_same_run(a: RunResult, b: RunResult) -> None:
    assert (a.interruptions, a.capped) == (b.interruptions, b.capped)
    assert b.wall_s == pytest.approx(a.wall_s, rel=1e-9)
    assert b.useful_s == pytest.approx(a.useful_s, rel=1e-9)
    assert list(b.lost_s) == list(a.lost_s) and list(b.lost_by_cause_s) == list(a.lost_by_cause_s)
    for k, v in a.lost_s.items():
        assert b.lost_s[k] == pytest.approx(v, rel=1e-9, abs=1e-6)
    for k, v in a.lost_by_cause_s.items():
        assert b.lost_by_cause_s[k] == pytest.approx(v, rel=1e-9, abs=1e-6)


def assert_identities(r: RunResult) -> None:
    lost = sum(r.lost_s.values())
    assert r.wall_s == pytest.approx(r.useful_s + lost, rel=1e-9)
    assert sum(r.lost_by_cause_s.values()) == pytest.approx(lost, rel=1e-9, abs=1e-6)
    assert min(r.lost_s.values()) >= -1e-6 and r.lost_s["waiting"] == r.lost_s["degraded"] == 0.0


# ---------------------------------------------------------------------------------- random sections


@st.composite
def sections(draw) -> tuple[dict, float]:
    """A one-host scenario within renewal.supports: one to three job-level failure classes
    (exponential or Weibull), maybe a planned one, sync or async checkpoints at a given or the
    optimal interval, detection and initialization, whole work or a window."""
    mtbf_h = st.floats(1.0, 12.0)
    data = one_process(mtbf=f"{draw(mtbf_h):.3f} h")
    failures = data["reliability"]["failures"]
    failures["crash"]["weibull_shape"] = draw(st.sampled_from([1.0, 0.5, 0.8, 2.0, 3.0]))
    for n in range(draw(st.integers(0, 2))):
        failures[f"extra{n}"] = {"unit": "job", "mtbf": f"{draw(mtbf_h):.3f} h"}
    if draw(st.booleans()):
        failures["maintenance"] = {"unit": "job", "mtbf": f"{draw(mtbf_h):.3f} h"}
    interval = draw(st.sampled_from([None, "5 min", "20 min", "1 h", "200 h"]))
    data["reliability"]["checkpoint"] |= {"mode": draw(st.sampled_from(["sync", "async"]))}
    if interval is not None:
        data["reliability"]["checkpoint"]["interval"] = interval
    data["reliability"]["restart"] |= {
        "detection": f"{draw(st.integers(0, 300))} s",
        "initialization": f"{draw(st.integers(0, 600))} s",
    }
    if draw(st.booleans()):
        data["reliability"]["window"] = f"{draw(st.integers(10, 60))} h"
        return data, math.inf
    return data, draw(st.floats(5.0, 40.0)) * HOUR


@settings(max_examples=60, deadline=None, derandomize=True)
@given(sections(), st.integers(0, 2**16), st.sampled_from([None, 40]))
def test_the_same_runs_as_simpy_for_the_same_seeds(section, seed, cap):
    data, work = section
    m = model_of(data, work, runs=16, seed=seed)
    assert renewal.supports(m)
    simpy, fast = both(m, cap)
    for a, b in zip(simpy, fast):
        assert_same_run(a, b)
        assert_identities(b)


@settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(sections(), st.integers(0, 2**16))
def test_the_same_distribution_as_simpy_for_other_seeds(section, seed):
    # Independent seeds: mean wall days and mean interruptions per class agree within 4.5
    # standard errors of their difference (300 runs each).
    data, work = section
    a = run_monte_carlo(model_of(data, work, runs=300, seed=seed))  # renewal
    m = model_of(data, work, runs=300, seed=seed + 1)
    b = [simulate_run(m, s) for s in np.random.SeedSequence(m.seed).spawn(m.runs)]
    series = [([r.wall_s for r in a.runs], [r.wall_s for r in b])]
    series += [
        ([r.interruptions[c.name] for r in a.runs], [r.interruptions[c.name] for r in b])
        for c in m.classes
        if c.rate_s > 0
    ]
    for x, y in series:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        assert abs(x.mean() - y.mean()) <= 4.5 * se + 1e-9 * abs(y.mean())


def test_the_llama3_default_classes_match_simpy_run_for_run():
    # Six classes at 16,384 GPUs (host-taking ones with unlimited spares), planned maintenance.
    data = one_process()
    del data["reliability"]["failures"]
    data["cluster"] = {"topology": "h100-ndr-cluster", "num_hosts": 2048}
    m = model_of(data, 20 * 86400.0, runs=5)
    simpy, fast = both(m)
    for a, b in zip(simpy, fast):
        assert_same_run(a, b)
        assert_identities(b)
    assert sum(r.interruptions["maintenance"] for r in fast) > 0


# ---------------------------------------------------------------------------------- what it supports


def test_supports_is_the_exogenous_failure_times():
    plain = one_process(restart={"hot_spares": 2, "repair_time": "1 h"})
    assert renewal.supports(model_of(plain, 10 * HOUR))  # no class with arrivals takes a host
    plain["reliability"]["failures"]["crash"]["takes_host"] = True
    assert not renewal.supports(model_of(plain, 10 * HOUR))  # waits for repairs: simpy
    slow = one_process(
        stragglers={"mtbf": "10 h", "unit": "job", "slowdown": 1.5, "detection": "10 min"}
    )
    assert not renewal.supports(model_of(slow, 10 * HOUR))


def test_same_seed_same_runs_in_the_monte_carlo():
    m = model_of(one_process(mtbf="2 h"), 50 * HOUR, runs=10, seed=7)
    a, b = run_monte_carlo(m), run_monte_carlo(m)
    assert a.runs == b.runs
    assert run_monte_carlo(model_of(one_process(mtbf="2 h"), 50 * HOUR, 10, 8)).runs != a.runs


# ---------------------------------------------------------------------------------- by hand


def test_fresh_positions_are_at_and_finish_time_element_by_element():
    rng = np.random.default_rng(0)
    for tau, pause, lag in [(600.0, 60.0, 0.0), (600.0, 5.0, 300.0), (math.inf, 60.0, 0.0)]:
        c = progress.Cycle(tau=tau, pause=pause, lag=lag, rate=1.0)
        start, base = rng.uniform(0, 1e5, 200), rng.uniform(0, 1e5, 200)
        t = start + rng.uniform(0, 1e4, 200)
        got = progress.at_fresh(c, start, base, t)
        ends = progress.finish_fresh(c, start, base, 3e5)
        for k in range(200):
            seg = progress.start(float(start[k]), float(base[k]), c)
            p = progress.at(seg, float(t[k]))
            assert (got.progress[k], got.committed[k], got.pause_s[k]) == (
                p.progress,
                p.committed,
                p.pause_s,
            )
            assert ends[k] == progress.finish_time(seg, 3e5)


def by_hand(arrivals: list[tuple[float, str]]) -> RunResult:
    """One run of 1 h of work, checkpoints every 600 s with a 60 s pause, a 60 s restart
    (the load; no detection, no initialization), with the given arrivals and no others."""
    data = one_process(checkpoint={"interval": "600 s"})
    m = model_of(data, HOUR, runs=1)
    runs, one = renewal.Runs(m, 1, None), np.array([0])
    names = [c.name for c in m.classes]
    for t, name in arrivals:
        runs.step(one, np.array([t]), np.array([names.index(name)]))
    runs.step(one, np.array([1e9]), None)
    return runs.result(0)


def test_no_failures_is_the_work_and_its_checkpoint_pauses():
    r = by_hand([])
    assert r.wall_s == HOUR + 5 * 60.0  # checkpoints at 600 ... 3000 s of work, none at the end
    assert r.lost_s["checkpoint"] == r.lost_by_cause_s["checkpoint"] == 300.0
    assert r.useful_s == HOUR and sum(r.interruptions.values()) == 0


def test_a_failure_loses_the_work_since_the_checkpoint_and_a_restart():
    # At 1000 s: 600 s done and saved (pause 600-660 s), then 340 s lost; restart until 1060 s;
    # 3000 s of work left: 4 more pauses, done at 1060 + 4 x 660 + 600 = 4300 s.
    r = by_hand([(1000.0, "crash")])
    assert r.wall_s == pytest.approx(4300.0)
    assert r.lost_s == pytest.approx(
        {"rework": 340.0, "restart": 60.0, "waiting": 0.0, "checkpoint": 300.0, "degraded": 0.0}
    )
    assert r.lost_by_cause_s["crash"] == pytest.approx(400.0)
    assert r.interruptions["crash"] == 1


def test_a_failure_during_the_restart_restarts_it():
    r = by_hand([(1000.0, "crash"), (1030.0, "crash")])
    assert r.wall_s == pytest.approx(4330.0)
    assert r.lost_s["restart"] == pytest.approx(90.0) and r.interruptions["crash"] == 2


def test_planned_maintenance_saves_first_and_loses_nothing():
    # At 1000 s (940 s of work): a 60 s save, a 60 s restart (no detection) until 1120 s; 2660 s
    # left: 4 pauses, done at 1120 + 4 x 660 + 260 = 4020 s.
    r = by_hand([(1000.0, "maintenance")])  # the planned class (its rate is 0: no other arrival)
    assert r.wall_s == pytest.approx(4020.0)
    assert r.lost_s["rework"] == 0.0
    assert r.lost_by_cause_s["maintenance"] == pytest.approx(120.0)
    assert r.lost_s["checkpoint"] == pytest.approx(60.0 + 4 * 60.0 + 60.0)
