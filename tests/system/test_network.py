"""Network backends: max-min fair sharing worked by hand, exact standalone times, event counts."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.errors import UserError
from simulator.system.comm.calibration import IDEAL_CALIBRATION
from simulator.system.comm.cost import CommContext, collective_cost
from simulator.system.comm.network import (
    BACKENDS,
    AnalyticNetwork,
    FluidNetwork,
    make_network,
    max_min_rates,
)
from simulator.system.topology.loader import load_topology, topology_from_dict


def test_max_min_textbook_example():
    # Link 0 (cap 10) carries flows 0 and 1; link 1 (cap 4) carries flows 1 and 2.
    # Link 1 fills first at 2 each; flow 0 then takes the rest of link 0: 10 - 2 = 8.
    rates = max_min_rates(
        np.array([10.0, 4.0]),
        [
            (np.array([0]), np.array([1.0])),
            (np.array([0, 1]), np.array([1.0, 1.0])),
            (np.array([1]), np.array([1.0])),
        ],
    )
    assert rates == pytest.approx([8.0, 2.0, 2.0])


def test_a_flow_crossing_a_link_twice_counts_twice():
    # k = 2 for flow 0 on the shared link: 2 f0 + f1 <= 9 with f0 = f1 -> 3 each.
    rates = max_min_rates(
        np.array([9.0]), [(np.array([0]), np.array([2.0])), (np.array([0]), np.array([1.0]))]
    )
    assert rates == pytest.approx([3.0, 3.0])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 5), st.floats(0.1, 4.0)),
            min_size=1,
            max_size=4,
            unique_by=lambda t: t[0],
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.floats(1.0, 100.0), min_size=6, max_size=6),
)
def test_max_min_is_feasible_and_every_flow_is_bottlenecked(flows, caps):
    cap = np.array(caps)
    demands = [(np.array([e for e, _ in f]), np.array([k for _, k in f])) for f in flows]
    rates = max_min_rates(cap, demands)
    load = np.zeros(6)
    for (edges, coef), r in zip(demands, rates):
        load[edges] += coef * r
    assert (load <= cap * (1 + 1e-9)).all()
    full = load >= cap * (1 - 1e-9)
    for (edges, _), r in zip(demands, rates):
        # Max-min: each flow crosses a full link on which no other flow has a higher rate.
        assert any(
            full[e] and all(r2 <= r * (1 + 1e-9) for (e2, _), r2 in zip(demands, rates) if e in e2)
            for e in edges
        )


def _two_pairs_over_one_cable():
    """x0, y0 on switch L; x1, y1 on switch R; L-R is one 10 GB/s cable, access links 100 GB/s, 1 us each."""
    v = [{"name": n, "kind": "gpu"} for n in ("x0", "y0", "x1", "y1")] + [
        {"name": "L", "kind": "nvswitch"},
        {"name": "R", "kind": "nvswitch"},
    ]
    e = [
        {"src": g, "dst": "L" if g.endswith("0") else "R", "bw": "100 GB/s", "latency": "1 us"}
        for g in ("x0", "y0", "x1", "y1")
    ]
    e.append({"src": "L", "dst": "R", "bw": "10 GB/s", "latency": "1 us"})
    return topology_from_dict(
        {"name": "pairs", "gpu": "a100-80gb", "builder": "explicit", "vertices": v, "edges": e}
    )


def _pair_costs(topo):
    s = 1_000_000_000
    # 2-rank ring all-reduce: 2 steps of S/2 each way -> 1 GB per direction on the cable = 0.1 s;
    # latency 2 steps x 3 links x 1 us = 6 us.
    x = collective_cost(topo, "all_reduce", ["x0", "x1"], s, "ring", IDEAL_CALIBRATION)
    y = collective_cost(topo, "all_reduce", ["y0", "y1"], s, "ring", IDEAL_CALIBRATION)
    assert x.time_s == pytest.approx(0.1 + 6e-6)
    return x, y


def test_two_all_reduces_sharing_one_cable_each_get_half():
    topo = _two_pairs_over_one_cable()
    x, y = _pair_costs(topo)
    env = simpy.Environment()
    net = FluidNetwork(env, CommContext(topo, IDEAL_CALIBRATION))
    done = {}
    for name, c in (("x", x), ("y", y)):
        net.start(c).callbacks.append(lambda _e, n=name: done.setdefault(n, env.now))
    env.run()
    # Both at 5 GB/s on the cable: 1 GB each takes 0.2 s after the 6 us latency.
    assert done["x"] == pytest.approx(0.2 + 6e-6) and done["y"] == pytest.approx(0.2 + 6e-6)


def test_late_arrival_shares_then_runs_alone():
    topo = _two_pairs_over_one_cable()
    x, y = _pair_costs(topo)
    env = simpy.Environment()
    net = FluidNetwork(env, CommContext(topo, IDEAL_CALIBRATION))
    done = {}

    def late():
        yield env.timeout(0.05)
        yield net.start(y)
        done["y"] = env.now

    net.start(x).callbacks.append(lambda _e: done.setdefault("x", env.now))
    env.process(late())
    env.run()
    # x's bandwidth stage runs alone from 6 us; y's starts at 50.006 ms, when x is half done.
    # Both then at half rate: x's other half takes 0.1 s (ends 150.006 ms); y has done half by
    # then and moves its last half alone in 0.05 s (ends 200.006 ms).
    assert done["x"] == pytest.approx(0.150006, rel=1e-9)
    assert done["y"] == pytest.approx(0.200006, rel=1e-9)


def test_analytic_backend_ignores_sharing():
    topo = _two_pairs_over_one_cable()
    x, y = _pair_costs(topo)
    env = simpy.Environment()
    net = AnalyticNetwork(env, CommContext(topo))
    net.start(x), net.start(y)
    env.run()
    assert env.now == pytest.approx(0.1 + 6e-6)


@pytest.mark.parametrize("hosts,algorithm", [(1, "auto"), (4, "hierarchical"), (4, "tree")])
def test_single_transfer_takes_exactly_its_cost(hosts, algorithm):
    topo = load_topology("dgx-a100", num_hosts=hosts)
    cost = collective_cost(topo, "all_reduce", "all", 3 << 27, algorithm)
    env = simpy.Environment()
    net = FluidNetwork(env, CommContext(topo))
    net.start(cost)
    env.run()
    assert env.now == pytest.approx(cost.time_s, rel=1e-12)


def test_events_grow_with_collectives_not_gpus():
    topo = load_topology("h100-ndr-cluster", num_hosts=64)
    env = simpy.Environment()
    net = FluidNetwork(env, CommContext(topo))
    costs = [
        collective_cost(topo, "all_reduce", "all", 1 << 28),
        collective_cost(topo, "all_gather", "all", 1 << 28),
    ]
    for c in costs:
        net.start(c)
    env.run()
    # One rate update per bandwidth stage start and one per end, at most.
    assert net.rate_updates <= 2 * sum(len(c.phases) for c in costs)
    assert env.now > max(c.time_s for c in costs)


def test_stages_entering_at_one_instant_share_one_rate_update():
    # Eight identical single-host all-reduces started together: their first bandwidth stages enter
    # at the same instant (after the same latency), and one max-min update covers them all.
    topo = load_topology("dgx-a100")
    cost = collective_cost(topo, "all_reduce", "all", 1 << 26)
    env = simpy.Environment()
    net = FluidNetwork(env, CommContext(topo))
    done = [net.start(cost) for _ in range(8)]
    env.run(until=cost.phases[0].latency_s * (1 + 1e-9))
    assert net.rate_updates == 1 and len(net.active) == 8
    env.run()
    assert all(d.triggered for d in done)
    # Equal shares of the same links: all eight end together, 8x a lone one's bandwidth time.
    assert env.now == pytest.approx(
        sum(ph.latency_s + 8 * ph.bandwidth_s for ph in cost.phases), rel=1e-9
    )


def test_backends_registry():
    assert set(BACKENDS) == {"fluid", "analytic"}
    env = simpy.Environment()
    assert isinstance(
        make_network("fluid", env, CommContext(load_topology("dgx-a100"))), FluidNetwork
    )
    with pytest.raises(UserError, match="did you mean 'fluid'"):
        make_network("fluidd", env, CommContext(load_topology("dgx-a100")))
