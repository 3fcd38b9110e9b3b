"""Network backends: max-min fair sharing worked by hand, exact standalone times, event counts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.cache import Memo
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
from simulator.system.comm.sharing import ShapeGraph
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


def _fake_phase(shape: int, flow: list[tuple[int, float]], cap: np.ndarray) -> SimpleNamespace:
    """A phase putting k bytes per busiest-rank byte on each (edge, k), 1 byte at its bound."""
    edges, k = np.array([e for e, _ in flow], np.int64), np.array([k for _, k in flow])
    return SimpleNamespace(
        shape=(shape, 0),
        edge_ids=edges,
        wire_bytes=k,
        per_rank_wire_bytes=1.0,
        bandwidth_s=1.0 / float((cap[edges] / k).min()),
    )


def _fluid_rates(net: FluidNetwork, phases: list[SimpleNamespace]) -> list[float]:
    """The network's rates with `phases` active (the splitting path, memos and all)."""
    net.active = []
    for ph in phases:
        state = SimpleNamespace(transfer=SimpleNamespace(phases=[ph]), phase=0)
        state.record = net._record(ph)
        net.active.append(state)
    return net._rates()


def _bare_network(cap: np.ndarray) -> tuple[FluidNetwork, CommContext]:
    """A fluid network over bare links of capacities `cap` (no topology behind them)."""
    comm = CommContext.__new__(CommContext)
    comm.topology, comm.capacity = SimpleNamespace(link_code=np.zeros(len(cap), np.int64)), cap
    comm.rates, comm.demands, comm.fill_rates, comm.fill_pairs = Memo(), Memo(), Memo(), Memo()
    comm.sharing = ShapeGraph()
    return FluidNetwork(simpy.Environment(), comm), comm


def test_a_link_only_three_phases_fill_joins_them():
    # Phases 0-2 each have a private 4 GB/s link and all cross link 3 (10 GB/s): any two at their
    # bounds load it with 8 (no fill), all three with 12, so it joins them: 10/3 each. Phase 3
    # and 4 share link 4 (100 GB/s), which their bounds (1 each, links 5 and 6) cannot fill.
    cap = np.array([4.0, 4.0, 4.0, 10.0, 100.0, 1.0, 1.0])
    flows = [[(0, 1.0), (3, 1.0)], [(1, 1.0), (3, 1.0)], [(2, 1.0), (3, 1.0)]]
    flows += [[(4, 1.0), (5, 1.0)], [(4, 1.0), (6, 1.0)]]
    net, comm = _bare_network(cap)
    pool = [_fake_phase(i, f, cap) for i, f in enumerate(flows)]
    assert _fluid_rates(net, pool[:2] + pool[3:]) == pytest.approx([4.0, 4.0, 1.0, 1.0])
    assert len(comm.fill_rates) == 0  # no sub-group of two or more: each phase at its bound
    assert _fluid_rates(net, pool) == pytest.approx([10 / 3] * 3 + [1.0, 1.0], rel=1e-12)
    assert list(comm.fill_rates._data) == [((0, 0), (1, 0), (2, 0))]  # 3 and 4 stay apart


FLOWS = st.lists(
    st.lists(
        st.tuples(st.integers(0, 7), st.floats(0.1, 4.0) | st.just(1.0)),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    FLOWS,
    # Many equal capacities: links that two phases at their bounds cannot fill but three can.
    st.lists(st.sampled_from([4.0, 10.0]) | st.floats(1.0, 100.0), min_size=8, max_size=8),
    st.lists(st.lists(st.integers(0, 7), min_size=1, max_size=10), min_size=1, max_size=4),
)
def test_split_filling_matches_max_min_rates(flows, caps, picks):
    # Active sets drawn (with repeats: the same shape twice) from a pool of shapes, one after
    # another on one network (loads kept across sets, memos hit): each set's rates must be
    # max_min_rates's on all of its phases at once.
    cap = np.array(caps)
    net, _ = _bare_network(cap)
    pool = [_fake_phase(i, f, cap) for i, f in enumerate(flows)]
    for chosen in picks + picks[:1]:
        phases = [pool[k % len(pool)] for k in chosen]
        got = _fluid_rates(net, phases)
        want = max_min_rates(cap, [(ph.edge_ids, ph.wire_bytes) for ph in phases])
        assert got == pytest.approx(list(want), rel=1e-9)
        if len(phases) < 2:
            continue  # a lone phase: its standalone rate, nothing shared
        # The splitting path itself, on the whole set (groups of two skip it in _rates).
        assert net._split_filled(phases) == pytest.approx(list(want), rel=1e-9)
        # The fixed-point loads count exactly the active phases.
        fresh = -net._split.limit
        for ph in phases:
            edges, loads = net._record(ph).fixed()
            fresh[edges] += loads
        assert (net._split.excess == fresh).all()


@pytest.mark.parametrize("seed", range(20))
def test_split_filling_matches_max_min_rates_on_crowded_links(seed):
    # Phases bounded by private links (3-5 GB/s) crossing 1-2 of four shared 10 GB/s links: two
    # of them at their bounds seldom fill a shared link, three or more often do.
    rng = np.random.default_rng(seed)
    cap = np.concatenate([[10.0] * 4, rng.choice([3.0, 4.0, 5.0], 12)])
    flows = [
        [(4 + i, 1.0)] + [(int(e), 1.0) for e in rng.choice(4, rng.integers(1, 3), False)]
        for i in range(12)
    ]
    net, _ = _bare_network(cap)
    pool = [_fake_phase(i, f, cap) for i, f in enumerate(flows)]
    for _ in range(15):
        phases = [pool[k] for k in rng.choice(12, rng.integers(2, 9), replace=False)]
        want = max_min_rates(cap, [(ph.edge_ids, ph.wire_bytes) for ph in phases])
        assert _fluid_rates(net, phases) == pytest.approx(list(want), rel=1e-9)
        assert net._split_filled(phases) == pytest.approx(list(want), rel=1e-9)
