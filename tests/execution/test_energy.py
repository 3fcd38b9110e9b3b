"""Power and energy from the step's timeline (execution/energy.py): hand-worked timelines, the
integral property on random interval sets, the cluster sum over rank classes with hosts and
PUE, and a simulated step."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.execution.breakdown import step_breakdown
from simulator.execution.energy import (
    Level,
    PowerTimeline,
    cluster_energy,
    compute_bound_share,
    low_phases,
    power_timeline,
    run_energy,
    step_energy,
    transfer_starts,
)
from simulator.execution.step import simulate_step
from simulator.spec.specs import PowerSpec
from tests.helpers import cluster_of, make_scenario, power_cluster

COMPUTE = (1.0, 0.0, 0.0, 0.0)
COMM = (0.0, 0.0, 1.0, 0.0)


def test_no_overlap_no_waits_draws_the_activity_powers():
    # 1 GPU: 2 s of compute-bound kernels at 600 W, then 1 s waiting at 80 W.
    # 2 x 600 + 1 x 80 = 1,280 J.
    p = power_timeline([Level(watts=600.0, shares=COMPUTE, spans=((0.0, 2.0),))], 80.0, 3.0)
    assert p.energy_j() == pytest.approx(1280.0)
    assert p.edges == (0.0, 2.0, 3.0)
    assert p.watts == (600.0, 80.0)
    assert p.seconds == pytest.approx({"compute": 2.0, "memory": 0.0, "comm": 0.0, "idle": 1.0})


def test_overlap_draws_the_larger_and_blends_split_by_share():
    # Kernels 0-2 s at a 75/25 blend of 700 W compute-bound and 420 W memory-bound:
    # 0.75 x 700 + 0.25 x 420 = 630 W; a collective 1-2.5 s at 210 W; waiting 70 W to 3 s.
    # 0-2 s: 630 W (larger than 210); 2-2.5 s: 210 W; 2.5-3 s: 70 W.
    # Energy = 2 x 630 + 0.5 x 210 + 0.5 x 70 = 1,260 + 105 + 35 = 1,400 J.
    blend = Level(watts=630.0, shares=(0.75, 0.25, 0.0, 0.0), spans=((0.0, 2.0),))
    comm = Level(watts=210.0, shares=COMM, spans=((1.0, 2.5),))
    p = power_timeline([blend, comm], 70.0, 3.0)
    assert p.energy_j() == pytest.approx(1400.0)
    assert p.seconds == pytest.approx({"compute": 1.5, "memory": 0.5, "comm": 0.5, "idle": 0.5})


spans = st.lists(
    st.tuples(st.floats(0, 10), st.floats(0, 3)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=8,
)
levels = st.lists(st.tuples(st.floats(0, 1000), spans), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(levels=levels, idle=st.floats(0, 200), end=st.floats(0.5, 12))
def test_energy_is_the_integral_of_the_power_timeline(levels, idle, end):
    made = [Level(watts=w, shares=COMM, spans=tuple(s)) for w, s in levels]
    p = power_timeline(made, idle, end)
    # Independently: at the midpoint of every piece between the spans' ends (clipped to the
    # step), the draw is the largest level covering it, else idle; energy is their sum.
    cuts = sorted(
        {0.0, end} | {min(max(x, 0.0), end) for _, s in levels for span in s for x in span}
    )
    expected = 0.0
    for a, b in pairwise(cuts):
        m = (a + b) / 2
        covering = [w for w, s in levels if any(lo <= m < hi for lo, hi in s)]
        expected += (b - a) * (max(covering) if covering else idle)
    assert p.energy_j() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # The activity seconds tile the step, and their powers give the same energy.
    assert sum(p.seconds.values()) == pytest.approx(end)
    assert p.edges[0] == 0.0 and p.edges[-1] == pytest.approx(end)


def test_cluster_sums_rank_classes_by_count_with_hosts_and_pue():
    # 8 GPUs on one host of 8 drawing 1,000 W besides them, PUE 1.5.
    # Class A, 3 GPUs: 600 W for 0-1 s, 100 W for 1-2 s. Class B, 5 GPUs: 200 W for 0-2 s.
    # GPUs: 0-1 s 3 x 600 + 5 x 200 = 2,800 W; 1-2 s 3 x 100 + 5 x 200 = 1,300 W.
    # Site: 1.5 x (2,800 + 1,000) = 5,700 W, then 1.5 x (1,300 + 1,000) = 3,450 W.
    # Step: 5,700 + 3,450 = 9,150 J; swing 2,250 W; per GPU (2,800 + 1,300) / 8 / 2 = 256.25 W.
    a = PowerTimeline(edges=(0.0, 1.0, 2.0), watts=(600.0, 100.0), seconds={"compute": 1.0})
    b = PowerTimeline(edges=(0.0, 2.0), watts=(200.0,), seconds={"comm": 2.0})
    cluster = power_cluster(8, 8, PowerSpec(host_w=1000.0, pue=1.5))
    e = cluster_energy(cluster, [("a", 3, a), ("b", 5, b)], 2.0)
    assert e.gpus == 8 and e.hosts == 1
    assert e.gpu_energy_j == pytest.approx(3 * 700 + 5 * 400)  # 4,100 J
    assert e.host_energy_j == pytest.approx(2000.0)
    assert e.step_j == pytest.approx(9150.0)
    assert e.cluster_peak_w == pytest.approx(5700.0)
    assert e.cluster_min_w == pytest.approx(3450.0)
    assert e.swing_w == pytest.approx(2250.0)
    assert e.cluster_avg_w == pytest.approx(4575.0)
    assert e.gpu_avg_w == pytest.approx(256.25)
    assert e.gpu_peak_w == 600.0
    assert (e.peak_time_s, e.min_time_s) == (0.0, 1.0)
    # one GPU's step by activity, averaged: compute 3 x 1 / 8, comm 5 x 2 / 8
    assert e.activity_s["compute"] == pytest.approx(0.375)
    assert e.activity_s["comm"] == pytest.approx(1.25)


def test_default_host_draw_is_per_gpu_slot_and_run_figures():
    # 16 GPUs on hosts of 8: 2 hosts at 350 W x 8 = 2,800 W each (power.py, Latif et al.).
    cluster = power_cluster(
        16, 8, PowerSpec(pue=1.0, electricity_usd_per_kwh=0.1, grid_kg_co2_per_kwh=0.4)
    )
    flat = PowerTimeline(edges=(0.0, 1.0), watts=(700.0,), seconds={"compute": 1.0})
    e = cluster_energy(cluster, [("all", 16, flat)], 1.0)
    assert (e.hosts, e.host_w) == (2, 2800.0)
    assert e.cluster_avg_w == pytest.approx(16 * 700 + 2 * 2800)  # 16,800 W
    # A 10-hour run at 16.8 kW: 168 kWh = 0.168 MWh, $16.80 at $0.10/kWh, 67.2 kg CO2 at 0.4.
    r = run_energy(cluster, e, 36000.0, "test")
    assert r.run_mwh == pytest.approx(0.168)
    assert r.cost_usd == pytest.approx(16.8) and r.electricity_usd == pytest.approx(16.8)
    assert r.co2_t == pytest.approx(0.0672)


def test_gpu_hour_price_is_the_cost_where_given():
    # $2 per GPU-hour x 16 GPUs x 10 h = $320; the electricity is reported beside it.
    import dataclasses

    cluster = dataclasses.replace(
        power_cluster(16, 8, PowerSpec(electricity_usd_per_kwh=0.1)), price_per_gpu_hour=2.0
    )
    flat = PowerTimeline(edges=(0.0, 1.0), watts=(700.0,), seconds={})
    r = run_energy(cluster, cluster_energy(cluster, [("all", 16, flat)], 1.0), 36000.0, "t")
    assert r.cost_usd == pytest.approx(320.0)
    assert r.electricity_usd is not None and r.co2_t is None


@pytest.fixture(scope="module")
def small_step():
    scenario = make_scenario(
        training={"strategy": "fsdp", "micro_batch_size": 1, "seq_len": 1024},
        cluster=cluster_of(16),
    )
    return scenario, simulate_step(scenario)


def test_simulated_step_energy_is_its_classes_integral(small_step):
    scenario, step = small_step
    power = scenario.cluster.gpu.power
    share = compute_bound_share(step_breakdown(scenario, step))
    assert 0 < share < 1
    e = step_energy(scenario.cluster, step, share, power)
    # every collective task found its transfer in the engine's times
    for rc in step.classes:
        colls = [i for i, t in enumerate(rc.schedule.tasks) if t.collective is not None]
        assert set(transfer_starts(rc, step.engine.collective_times)) == set(colls)
    gpu_j = sum(ranks * p.energy_j() for _, ranks, p in e.classes)
    assert e.gpus == scenario.num_gpus
    assert e.gpu_energy_j == pytest.approx(gpu_j)
    hosts_j = e.hosts * e.host_w * step.time_s
    assert e.step_j == pytest.approx(scenario.cluster.power.pue * (gpu_j + hosts_j))
    for _, _, p in e.classes:
        assert sum(p.seconds.values()) == pytest.approx(step.time_s)
        assert power.idle_w <= min(p.watts) and max(p.watts) <= power.compute_w
        assert p.energy_j() == pytest.approx(
            p.seconds["compute"] * power.compute_w
            + p.seconds["memory"] * power.memory_w
            + p.seconds["comm"] * power.comm_w
            + p.seconds["idle"] * power.idle_w
        )


def test_low_phases_are_counted_once_each_and_across_the_step_boundary():
    # two dips inside the step: the swing recurs every half step
    assert low_phases(np.array([10.0, 1.0, 10.0, 1.0, 10.0])) == 2
    # within 10% of the swing above the minimum counts as low: 1.5 <= 1 + 0.1 x 9
    assert low_phases(np.array([10.0, 1.5, 1.0, 10.0, 1.0, 10.0])) == 2
    # a dip at the step's end runs into the next step's start: one wait
    assert low_phases(np.array([1.0, 10.0, 1.0])) == 1
    assert low_phases(np.array([1.0, 10.0, 1.0, 10.0])) == 2
    # a flat draw is all low phase: one per step
    assert low_phases(np.array([5.0, 5.0])) == 1
