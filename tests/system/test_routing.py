"""Routing policies: a transfer between hosts spread over flows (ECMP) or over every equal-cost
path (adaptive), on fat trees and explicit graphs; the topology file's `routing:` section.

Expected shares are hand arithmetic: k flows carry 1/k of a transfer each; an even split over
n spines puts 1/n on each; a single path carries all of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import UserError
from simulator.system.comm.cost import CommContext
from simulator.system.topology.loader import topology_from_dict


def _cluster(hosts=4, spines=4, routing=None, hosts_per_leaf=1):
    data = {
        "name": "t",
        "gpu": "h100-sxm-80gb",
        "builder": "nvswitch",
        "gpus_per_host": 2,
        "nvlink_bw": "450 GB/s",
        "num_hosts": hosts,
        "nic": {"per_host": 2, "bw": "400 Gb/s", "pcie_bw": "64 GB/s"},
        "fabric": {"levels": 2, "hosts_per_leaf": hosts_per_leaf, "spines": spines},
    }
    if routing is not None:
        data["routing"] = routing
    return topology_from_dict(data)


def _spine_shares(topo, src, dst):
    """(edge, share) of the transfer's leaf -> spine edges."""
    _, edges, share = topo.routes(np.array([src]), np.array([dst]))
    return [
        (e, s)
        for e, s in zip(edges.tolist(), share.tolist())
        if topo.names.name(topo.edge_dst[e]).startswith("spine")
    ]


def test_ecmp_splits_a_transfer_into_equal_flows_whose_shares_sum_to_one_per_hop():
    topo = _cluster(routing={"policy": "ecmp", "flows_per_pair": 8}, spines=16)
    up = _spine_shares(topo, 0, 2)  # host 0 -> host 1: different leaves
    assert sum(s for _, s in up) == pytest.approx(1.0)
    # eight flows of 1/8 each; flows hashed onto the same spine add up
    assert all(round(s * 8) == pytest.approx(s * 8) for _, s in up)
    assert 1 < len(up) <= 8


def test_one_flow_per_pair_is_one_path():
    topo = _cluster(routing={"flows_per_pair": 1})
    up = _spine_shares(topo, 0, 2)
    assert [s for _, s in up] == [1.0]


def test_adaptive_puts_an_equal_share_on_every_spine():
    topo = _cluster(routing={"policy": "adaptive"}, spines=4)
    up = _spine_shares(topo, 0, 2)
    assert len(up) == 4 and all(s == pytest.approx(0.25) for _, s in up)


def test_the_default_is_nccls_two_flows_per_pair():
    topo = _cluster(spines=16)
    up = _spine_shares(topo, 0, 2)
    assert sum(s for _, s in up) == pytest.approx(1.0)
    assert all(s in (0.5, 1.0) for _, s in up)


def test_transfers_inside_a_host_take_one_path_whatever_the_policy():
    topo = _cluster(routing={"policy": "adaptive"})
    _, _, share = topo.routes(np.array([0]), np.array([1]))
    assert (share == 1.0).all()


def test_more_flows_per_pair_spread_colliding_transfers():
    # Four hosts on four leaves each send to the next leaf at once (a shift permutation):
    # 4 transfers over 4 spines. Adaptive routing is perfectly even (each spine uplink carries
    # 1/4 of each leaf's transfer); ECMP with one flow may stack several on one uplink, and
    # 16 flows per pair come closer to even.
    def worst_uplink(routing):
        topo = _cluster(hosts=4, spines=4, routing=routing)
        src = np.array([0, 2, 4, 6])
        dst = np.array([2, 4, 6, 0])
        _, edges, share = topo.routes(src, dst)
        load = np.bincount(edges, weights=share, minlength=len(topo.edge_src))
        ups = [
            e
            for e in range(len(topo.edge_src))
            if topo.names.name(topo.edge_dst[e]).startswith("spine")
        ]
        return float(load[ups].max())

    assert worst_uplink({"policy": "adaptive"}) == pytest.approx(0.25)
    assert worst_uplink({"policy": "ecmp", "flows_per_pair": 16}) <= worst_uplink(
        {"policy": "ecmp", "flows_per_pair": 1}
    )


def _diamond(routing):
    """Two hosts' GPUs joined through two equal-cost switches."""
    vertices = [
        {"name": "a", "kind": "gpu", "host": 0},
        {"name": "b", "kind": "gpu", "host": 1},
        {"name": "s1", "kind": "spine"},
        {"name": "s2", "kind": "spine"},
    ]
    edges = [
        {"src": x, "dst": y, "bw": "10 GB/s"}
        for x, y in (("a", "s1"), ("a", "s2"), ("b", "s1"), ("b", "s2"))
    ]
    data = {
        "name": "d",
        "gpu": "a100-80gb",
        "builder": "explicit",
        "vertices": vertices,
        "edges": edges,
    }
    data["routing"] = routing
    return topology_from_dict(data)


def test_explicit_graph_adaptive_halves_a_transfer_over_two_switches():
    topo = _diamond({"policy": "adaptive"})
    _, _, share = topo.routes(np.array([0]), np.array([1]))
    assert sorted(share.tolist()) == [0.5, 0.5, 0.5, 0.5]
    # one flow's path is still a path: a -> switch -> b
    path = topo.route("a", "b")
    assert len(path) == 2 and path[0][0] == "a" and path[1][1] == "b"


def test_explicit_graph_ecmp_shares_sum_to_one_per_hop():
    topo = _diamond({"policy": "ecmp", "flows_per_pair": 4})
    _, _, share = topo.routes(np.array([0]), np.array([1]))
    assert share.sum() == pytest.approx(2.0)  # two hops, all of the transfer on each
    assert all(round(s * 4) == pytest.approx(s * 4) for s in share.tolist())


def test_two_sends_over_two_spines_take_one_sends_time_under_adaptive_routing():
    # Hosts 0 and 1 (leaf 0) send to hosts 2 and 3 (leaf 1) at once, GPU 0 of each, on rail 0.
    # The leaf's uplinks: 2 hosts x 1 rail x 50 GB/s over 2 spines = 50 GB/s each, the NIC's
    # rate. Adaptive routing puts half of each send on each uplink: 50 GB/s of demand on each,
    # so together they take exactly what one send takes alone. ECMP with one flow per pair
    # takes that long or, where both hash onto one spine, twice the bandwidth time.
    def time_s(routing, groups):
        topo = _cluster(hosts=4, spines=2, routing=routing, hosts_per_leaf=2)
        return CommContext(topo).cost_together("send", groups, 1 << 28, "p2p").time_s

    alone = time_s({"policy": "adaptive"}, ((0, 4),))
    assert time_s({"policy": "adaptive"}, ((0, 4), (2, 6))) == pytest.approx(alone, rel=1e-12)
    assert time_s({"policy": "ecmp", "flows_per_pair": 1}, ((0, 4), (2, 6))) >= alone * (1 - 1e-12)


@pytest.mark.parametrize(
    ("routing", "field", "message"),
    [
        ({"policy": "spray"}, "routing.policy", "unknown value"),
        ({"flows_per_pair": 0}, "routing.flows_per_pair", "expected an integer >= 1"),
        ({"flows_per_pair": 10_000}, "routing.flows_per_pair", "above the maximum"),
        ({"flows": 4}, "routing.flows", "unknown field"),
    ],
)
def test_bad_routing_is_reported_at_its_field(routing, field, message):
    with pytest.raises(UserError) as err:
        _cluster(routing=routing)
    text = str(err.value)
    assert field in text and message in text
