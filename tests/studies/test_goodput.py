"""Whole-run goodput: the closed forms against published values, the progress arithmetic by hand,
and the simpy Monte Carlo against the closed forms where their assumptions hold (one Poisson
failure process, constant checkpoint and restart costs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.scenario.load import scenario_from_dict
from simulator.studies.goodput import closed_forms as cf
from simulator.studies.goodput import progress
from simulator.studies.goodput.model import checkpoint_bytes, run_model, transfer_s
from simulator.studies.goodput.monte_carlo import run_monte_carlo, simulate_goodput

HOUR = 3600.0
DEFAULT_CLASSES = ("gpu", "host", "nic", "switch", "software", "maintenance")


def one_process(
    mtbf: str = "1 h", checkpoint: dict | None = None, restart: dict | None = None, **reliability
) -> dict:
    """A one-host scenario whose only failures are one job-level Poisson process. The checkpoint
    is 60 GB at 1 GB/s per host: a 60 s save and a 60 s load."""
    off = {name: {"failures_per_1000_unit_days": 0} for name in DEFAULT_CLASSES}
    return {
        "name": "one-process",
        "model": {"params": 1e9},
        "training": {"strategy": "ddp"},
        "cluster": {"topology": "dgx-a100"},
        "reliability": {
            "failures": {**off, "crash": {"unit": "job", "mtbf": mtbf}},
            "checkpoint": {
                "size": "60 GB",
                "write_bandwidth_per_host": "1 GB/s",
                "read_bandwidth_per_host": "1 GB/s",
                **(checkpoint or {}),
            },
            "restart": {"initialization": "0 s", **(restart or {})},
            **reliability,
        },
    }


def goodput(
    data: dict, work_s: float, step_s: float = 1.0, runs: int | None = None, seed: int | None = None
):
    return simulate_goodput(scenario_from_dict(data), step_s, work_s, runs, seed)


# ---------------------------------------------------------------------------------- closed forms


def test_young_interval_is_sqrt_2_delta_m():
    assert cf.young_interval(60.0, HOUR) == pytest.approx(math.sqrt(2 * 60 * 3600))  # 657.27 s
    assert cf.young_interval(300.0, 24 * HOUR) == pytest.approx(120 * 60)  # 5 min, 24 h: 2 h


@pytest.mark.parametrize(
    "mtbf_h, minutes, printed_to", [(24, 117, 1), (6, 57, 1), (0.25, 9.1, 0.1)]
)
def test_daly_interval_matches_the_figures_of_daly_2006(mtbf_h, minutes, printed_to):
    # Daly 2006, FGCS 22(3), Figs. 3-5 captions: checkpoint 5 min, restart 10 min, MTBF 24 h /
    # 6 h / 15 min -> "the new model predicts tau_opt = 117 min", "57 min", "9.1 min"; equal to
    # the digits printed.
    assert cf.daly_interval(300.0, mtbf_h * HOUR) / 60 == pytest.approx(minutes, abs=printed_to / 2)


def test_daly_interval_is_m_when_the_checkpoint_costs_two_mtbfs():
    assert cf.daly_interval(3 * HOUR, HOUR) == HOUR


def test_daly_expected_wall_in_logarithms_is_the_same_formula():
    # Each branch of log(e^x - 1): x = 0.5 (direct) and x = 40 (x + log1p(-e^-x) ~ x).
    for args in [(100.0, 1800.0, 0.0, 600.0, HOUR), (1000.0, 40.0 * HOUR, 0.0, 60.0, HOUR)]:
        assert cf.log_daly_expected_wall(*args) == pytest.approx(
            math.log(cf.daly_expected_wall(*args)), rel=1e-12
        )
    # R = 10 min against M = 1 s: e^600 overflows the linear form, not the logarithm (600 + ...).
    assert cf.log_daly_expected_wall(1.0, 1.0, 0.0, 600.0, 1.0) == pytest.approx(
        600.0 + math.log(math.expm1(1.0)), rel=1e-12
    )


def test_daly_expected_wall_closed_values():
    # delta = R = 0 and tau = M ln 2: T_w = M (e^(ln 2) - 1) T_s / (M ln 2) = T_s / ln 2.
    assert cf.daly_expected_wall(100.0, HOUR * math.log(2), 0.0, 0.0, HOUR) == pytest.approx(
        100 / math.log(2)
    )
    # No failures in sight (M huge): T_w -> T_s (1 + delta / tau).
    assert cf.daly_expected_wall(1000.0, 100.0, 10.0, 0.0, 1e12) == pytest.approx(1100.0, rel=1e-6)


def test_first_order_waste_by_hand():
    # 30 / 600 + ((600 + 30) / 2 + 0) / 7200 + 60 / 7200 = 0.05 + 0.04375 + 0.008333
    assert cf.first_order_waste(600.0, 30.0, 60.0, 7200.0) == pytest.approx(
        0.05 + 315 / 7200 + 60 / 7200
    )
    assert cf.first_order_waste(600.0, 30.0, 0.0, 7200.0, commit_lag=90.0) == pytest.approx(
        0.05 + 405 / 7200
    )


def test_poisson_band():
    assert cf.poisson_band(400.0) == (360.0, 440.0)


# ---------------------------------------------------------------------------------- progress


def test_synchronous_cycle_by_hand():
    c = progress.Cycle(tau=10.0, pause=2.0, lag=0.0, rate=1.0)
    s = progress.start(0.0, 0.0, c)
    p = progress.at(s, 25.0)  # two cycles of 12 s, then 1 s of compute
    assert (p.progress, p.committed, p.pause_s, p.in_pause) == (21.0, 20.0, 4.0, False)
    p = progress.at(s, 11.0)  # in the first pause: snapshot 10 not yet taken
    assert (p.progress, p.committed, p.pause_s, p.in_pause) == (10.0, 0.0, 1.0, True)
    assert progress.finish_time(s, 35.0) == 3 * 12.0 + 5.0  # no pause after the last step
    assert progress.finish_time(s, 30.0) == 2 * 12.0 + 10.0


def test_asynchronous_snapshot_is_durable_one_write_later():
    c = progress.Cycle(tau=10.0, pause=1.0, lag=5.0, rate=1.0)
    s = progress.start(0.0, 0.0, c)
    assert progress.at(s, 13.0).committed == 0.0  # pause ended at 11, write until 16
    assert progress.at(s, 16.5).committed == 10.0
    assert progress.at(s, 23.0).committed == 10.0  # snapshot 20 ends its pause at 22, durable at 27
    assert progress.at(s, 27.5).committed == 20.0


def test_resume_at_half_speed_keeps_the_cycle():
    s = progress.start(0.0, 0.0, progress.Cycle(tau=10.0, pause=2.0, lag=0.0, rate=1.0))
    slow = progress.resume(s, 5.0, 0.5)  # 5 of 10 done; 5 more at 0.5/s take 10 s
    assert progress.at(slow, 15.0).progress == pytest.approx(10.0)
    assert progress.at(slow, 17.0).committed == pytest.approx(10.0)  # after the 2 s pause
    assert progress.finish_time(slow, 12.0) == pytest.approx(17.0 + 2.0 / 0.5)


def test_no_checkpoints_is_plain_compute():
    s = progress.start(0.0, 0.0, progress.Cycle(tau=math.inf, pause=5.0, lag=0.0, rate=1.0))
    p = progress.at(s, 50.0)
    assert (p.progress, p.committed, p.pause_s) == (50.0, 0.0, 0.0)
    assert progress.finish_time(s, 80.0) == 80.0


# ---------------------------------------------------------------------------------- the model


def test_checkpoint_is_weights_plus_optimizer_states():
    s = scenario_from_dict(
        {"model": {"params": 1e9}, "training": {"precision": "bf16-mixed", "optimizer": "adamw"}}
    )
    assert (
        checkpoint_bytes(s) == 14 * 10**9
    )  # 2 (bf16 weights) + 4 (fp32 master) + 8 (Adam moments)
    s = scenario_from_dict(
        {"model": {"params": 1e9}, "training": {"precision": "bf16", "optimizer": "adamw"}}
    )
    assert checkpoint_bytes(s) == 6 * 10**9  # 2 + 2 x 2 (bf16 moments), no master copy


def test_transfer_is_limited_by_the_slower_of_aggregate_and_per_host():
    assert transfer_s(8e12, 2048, 2e12, 1e9) == pytest.approx(4.0)  # aggregate: 8 TB / 2 TB/s
    assert transfer_s(8e12, 1000, 2e12, 1e9) == pytest.approx(8.0)  # per host: 8 GB / 1 GB/s


def test_run_model_costs_and_interval():
    m = run_model(
        scenario_from_dict(one_process(checkpoint={"interval": "10 min"})), 1.0, 100 * HOUR
    )
    assert (m.save_s, m.pause_s, m.load_s, m.commit_lag_s) == (60.0, 60.0, 60.0, 0.0)
    assert (m.interval_s, m.interval_steps, m.mtbf_s, m.restart_s) == (600.0, 600, HOUR, 60.0)
    assert m.optimal_interval_s == pytest.approx(cf.daly_interval(60.0, HOUR))
    m = run_model(scenario_from_dict(one_process(checkpoint={"interval": 7})), 30.0, 100 * HOUR)
    assert (m.interval_s, m.interval_steps) == (210.0, 7)


def test_async_pause_is_the_copy_to_host_memory():
    data = one_process(checkpoint={"mode": "async", "interval": 1})
    s = scenario_from_dict(data)
    m = run_model(s, 1.0, 100 * HOUR)
    # 60 GB over 8 GPUs, each copying its 7.5 GB share at the A100's PCIe rate.
    assert m.pause_s == pytest.approx(60e9 / 8 / s.cluster.gpu.pcie_bw_bytes_per_s)
    assert m.commit_lag_s == 60.0
    # One write in flight: the 1-step interval is raised to the 60 s write.
    assert (m.interval_s, m.interval_steps, m.interval_raised) == (60.0, 60, True)


# ---------------------------------------------------------------------------------- simulation


def test_mean_wall_time_matches_dalys_complete_model():
    g = goodput(
        one_process(
            checkpoint={"interval": "10 min"}, restart={"initialization": "1 min"}, runs=200
        ),
        100 * HOUR,
    )
    m = g.model
    expected = cf.daly_expected_wall(100 * HOUR, m.interval_s, m.pause_s, m.restart_s, m.mtbf_s)
    walls = np.array([r.wall_s for r in g.runs])
    assert walls.mean() == pytest.approx(
        expected, rel=3 * walls.std() / math.sqrt(len(walls)) / expected
    )


def test_simulated_optimal_interval_agrees_with_young_and_daly():
    # Common random numbers: each interval sees the same failure times (one generator per class).
    delta, mtbf, work = 60.0, HOUR, 200 * HOUR
    young, daly = cf.young_interval(delta, mtbf), cf.daly_interval(delta, mtbf)
    logs, walls = [], []
    for factor in (0.5, 0.71, 1.0, 1.41, 2.0):
        g = goodput(
            one_process(checkpoint={"interval": f"{round(daly * factor)} s"}, runs=20), work
        )
        logs.append(math.log(g.model.interval_s))
        walls.append(np.mean([r.wall_s for r in g.runs]))
    a, b, _ = np.polyfit(logs, walls, 2)  # the cosh-like curve of the waste, around its minimum
    best = math.exp(-b / (2 * a))
    assert best == pytest.approx(young, rel=0.10)
    assert best == pytest.approx(daly, rel=0.10)


def test_lost_fraction_matches_the_first_order_formula():
    # delta = 30 s, R = 60 s, M = 8 h: tau_Young = 1,315 s << M, where the first order holds.
    data = one_process(mtbf="8 h", checkpoint={"size": "30 GB", "interval": "1315 s"}, runs=100)
    g = goodput(data, 400 * HOUR)
    m = g.model
    formula = cf.first_order_waste(m.interval_s, m.pause_s, m.restart_s, m.mtbf_s)
    assert 1 - g.ettr.mean() == pytest.approx(formula, rel=0.10)
    assert g.first_order_waste == pytest.approx(formula)


def test_wall_time_is_useful_work_plus_every_loss():
    data = one_process(
        mtbf="3 h",
        checkpoint={"mode": "async", "interval": "20 min"},
        restart={
            "detection": "2 min",
            "hot_spares": 1,
            "without_spare": "shrink",
            "repair_time": "6 h",
        },
        stragglers={"mtbf": "10 h", "unit": "job", "slowdown": 1.5, "detection": "30 min"},
        runs=20,
    )
    data["reliability"]["failures"]["crash"]["takes_host"] = True
    data["reliability"]["failures"]["crash"]["weibull_shape"] = 0.7
    data["reliability"]["failures"]["maintenance"] = {"unit": "job", "mtbf": "1 days"}
    data["cluster"] = {"topology": "a100-hdr-superpod", "num_hosts": 4}
    g = goodput(data, 200 * HOUR)
    for r in g.runs:
        assert r.wall_s == pytest.approx(r.useful_s + sum(r.lost_s.values()), rel=1e-9)
        assert sum(r.lost_by_cause_s.values()) == pytest.approx(sum(r.lost_s.values()), rel=1e-9)
        assert r.useful_s == pytest.approx(200 * HOUR)
    lost = g.lost_s
    assert (
        lost["degraded"] > 0
        and lost["rework"] > 0
        and lost["restart"] > 0
        and lost["checkpoint"] > 0
    )
    assert g.interruptions["straggler"] > 0 and g.interruptions["maintenance"] > 0


def test_without_spares_the_job_waits_for_repairs():
    data = one_process(mtbf="5 h", restart={"hot_spares": 0, "repair_time": "2 h"}, runs=20)
    data["reliability"]["failures"]["crash"]["takes_host"] = True
    g = goodput(data, 50 * HOUR)
    # Each failure takes the only host for 2 h: about 2 h of waiting per failure.
    per_failure = g.lost_s["waiting"] / g.interruptions["crash"]
    assert 1.6 * HOUR < per_failure <= 2 * HOUR + 1e-6
    spares = dict(data, reliability={**data["reliability"], "restart": {"initialization": "0 s"}})
    assert goodput(spares, 50 * HOUR).lost_s["waiting"] == 0.0


def test_weibull_arrivals_keep_the_mean_rate():
    # Renewal theorem: arrivals over a long window / window -> 1 / mean gap, whatever the shape.
    data = one_process(mtbf="1 h", window="2000 h", runs=10)
    data["reliability"]["failures"]["crash"]["weibull_shape"] = 0.7
    g = goodput(data, math.inf)
    assert g.interruptions["crash"] == pytest.approx(2000, rel=0.05)


def test_same_seed_same_runs_other_seed_other_runs():
    data = one_process(mtbf="2 h", runs=5)
    a, b = goodput(data, 50 * HOUR, seed=7), goodput(data, 50 * HOUR, seed=7)
    assert [r.wall_s for r in a.runs] == [r.wall_s for r in b.runs]
    assert [r.wall_s for r in goodput(data, 50 * HOUR, seed=8).runs] != [r.wall_s for r in a.runs]
    model = a.model
    assert [r.wall_s for r in run_monte_carlo(model).runs] == [r.wall_s for r in a.runs]


def test_no_failures_costs_only_the_checkpoints():
    data = one_process(mtbf="1 h", checkpoint={"interval": "1 h"}, runs=3)
    data["reliability"]["failure_rate_scale"] = 0.0
    g = goodput(data, 10 * HOUR)
    # 9 checkpoints of 60 s inside 10 h of work (none after the last step).
    assert g.wall_days[0] * 86400 == pytest.approx(10 * HOUR + 9 * 60.0)
    assert g.model.mtbf_s == math.inf and g.first_order_waste is None
