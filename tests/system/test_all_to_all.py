"""All-to-all from per-host counts (algorithms/all_to_all.py) against plan_direct's routed flows:
the same loads on every link, per-rank bytes, path latency and steps on fat trees of two and
three levels, with and without PXN and rail optimization, under ECMP and adaptive routing,
for groups of whole hosts and not; closed forms by hand; the registry and the bound.

Hand figures: each rank sends S/p to each of its p - 1 peers, (p - 1)/p x S in all; with
PXN the NIC of rail r on host a carries S/p from each of a's group GPUs to each group GPU of
rail r on another host.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator.core.errors import UserError
from simulator.system.comm.algorithms import ALGORITHMS, pair_hash, switches
from simulator.system.comm.algorithms.all_to_all import plan_all_to_all_together
from simulator.system.comm.algorithms.base import merge_phases
from simulator.system.comm.algorithms.direct import MAX_ALL_TO_ALL_RANKS, plan_direct
from simulator.system.comm.calibration import NCCL_CALIBRATION
from simulator.system.comm.cost import CommContext
from simulator.system.topology.loader import load_topology, topology_from_dict
from simulator.system.topology.routing import ecmp_hash


def _cluster(
    builder="nvswitch",
    hosts=8,
    g=4,
    nics=4,
    hpl=2,
    spines=3,
    levels=2,
    hpp=4,
    cores=2,
    routing=None,
    ro=True,
):
    d = {
        "name": "t",
        "gpu": "h100-sxm-80gb",
        "builder": builder,
        "gpus_per_host": g,
        "num_hosts": hosts,
        "nic": {"per_host": nics, "bw": "400 Gb/s", "pcie_bw": "64 GB/s"},
        "fabric": {"levels": levels, "hosts_per_leaf": hpl, "spines": spines, "rail_optimized": ro},
    }
    if builder == "pcie":  # no PXN: traffic leaves on the sender's rail
        d.update(pcie_bw="64 GB/s", cpu_link_bw="96 GB/s", gpus_per_switch=2, cpus=2)
    else:
        d["nvlink_bw"] = "450 GB/s"
    if levels == 3:
        d["fabric"].update(hosts_per_pod=hpp, cores_per_spine=cores)
    if routing:
        d["routing"] = routing
    return topology_from_dict(d)


FABRICS = {
    "2-level ecmp": {},
    "2-level ecmp 3 flows": {"routing": {"flows_per_pair": 3}},
    "2-level adaptive": {"routing": {"policy": "adaptive"}},
    "2-level not rail-optimized": {"ro": False},
    "8 gpus on 4 rails": {"g": 8, "nics": 4, "hosts": 6},
    "3-level ecmp": {"levels": 3, "hosts": 12},
    "3-level adaptive": {"levels": 3, "hosts": 12, "routing": {"policy": "adaptive"}},
    "3-level adaptive 4 spines 3 cores": {
        "levels": 3,
        "hosts": 12,
        "spines": 4,
        "cores": 3,
        "routing": {"policy": "adaptive"},
    },
    "3-level not rail-optimized": {"levels": 3, "hosts": 12, "ro": False},
    "pcie no pxn": {"builder": "pcie", "nics": 2},
    "pcie no pxn adaptive 3-level": {
        "builder": "pcie",
        "nics": 2,
        "levels": 3,
        "hosts": 12,
        "routing": {"policy": "adaptive"},
    },
}


def _shapes(topo):
    """Group sets: the whole cluster; two random halves (not whole hosts); every third GPU;
    one group per local GPU index (one GPU per host, as rail groups)."""
    n, g = topo.num_gpus, topo.gpus_per_host
    perm = np.random.default_rng(n).permutation(n).tolist()
    return {
        "all": (tuple(range(n)),),
        "random halves": (tuple(perm[: n // 2]), tuple(perm[n // 2 :])),
        "every third": (tuple(range(0, n, 3)),),
        "one per host": tuple(tuple(range(i, n, g)) for i in range(g)),
    }


def _assert_same(a, b):
    np.testing.assert_array_equal(a.edge_ids, b.edge_ids)
    np.testing.assert_allclose(a.unit_load, b.unit_load, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.sent_per_rank, b.sent_per_rank, rtol=1e-12)
    np.testing.assert_allclose(a.recv_per_rank, b.recv_per_rank, rtol=1e-12)
    assert a.path_latency_s == pytest.approx(b.path_latency_s, rel=1e-12)
    assert (a.n_steps, a.net_steps) == (b.n_steps, b.net_steps)


@pytest.mark.parametrize("tiles", [False, True], ids=["rows", "tiles"])
@pytest.mark.parametrize("fabric", FABRICS)
def test_counts_equal_the_routed_flows_of_plan_direct(fabric, tiles, monkeypatch):
    if tiles:  # every group hashed block by block, as groups of >= TILE_MIN GPUs are
        monkeypatch.setattr(pair_hash, "TILE_MIN", 2)
    topo = _cluster(**FABRICS[fabric])
    for groups in _shapes(topo).values():
        got = plan_all_to_all_together(topo, "all_to_all", groups)[0]
        want = merge_phases([plan_direct(topo, "all_to_all", g)[0] for g in groups])
        _assert_same(got, want)


def test_a_512_gpu_group_on_h100_ndr_cluster_equals_plan_direct():
    topo = load_topology("h100-ndr-cluster", 64)  # 64 hosts: one pod, two leaf blocks
    group = tuple(range(512))  # hashed block by block (TILE_MIN)
    _assert_same(
        plan_all_to_all_together(topo, "all_to_all", (group,))[0],
        plan_direct(topo, "all_to_all", group)[0],
    )


def test_pod_crossing_groups_on_h100_ndr_cluster_equal_plan_direct():
    topo = load_topology("h100-ndr-cluster", 256)  # two pods of 128 hosts
    groups = tuple(tuple(range(i, 2048, 64)) for i in range(64))  # 32 GPUs over 32 hosts
    _assert_same(
        plan_all_to_all_together(topo, "all_to_all", groups)[0],
        merge_phases([plan_direct(topo, "all_to_all", g)[0] for g in groups]),
    )


def test_a_1024_gpu_group_across_pods_equals_plan_direct():
    topo = load_topology("h100-ndr-cluster", 256)  # two pods, 32 spines x 16 cores
    group = tuple(range(0, 2048, 2))  # half of every host, in both pods
    _assert_same(
        plan_all_to_all_together(topo, "all_to_all", (group,))[0],
        plan_direct(topo, "all_to_all", group)[0],
    )


def test_uint32_hash_is_routings_hash():
    rng = np.random.default_rng(1)
    src, dst = rng.integers(0, 1 << 17, 1000), rng.integers(0, 1 << 17, 1000)
    for hop in (1, 2, 1 + 256 * 5, 2 + 256 * 15):
        want = ecmp_hash(src.astype(np.uint64), dst.astype(np.uint64), np.uint64(hop))
        x = src.astype(np.uint32) * np.uint32(0x9E3779B1)
        y = dst.astype(np.uint32) * np.uint32(0x85EBCA77)
        np.testing.assert_array_equal(pair_hash._hash(x, y, hop), want)


def test_bytes_per_rank_and_nic_loads_by_hand():
    topo = _cluster(hosts=4, g=4, nics=4, hpl=4)  # one leaf block: no spines
    p = 16
    (ph,) = plan_all_to_all_together(topo, "all_to_all", (tuple(range(p)),))
    np.testing.assert_allclose(ph.sent_per_rank, (p - 1) / p)
    np.testing.assert_allclose(ph.recv_per_rank, (p - 1) / p)
    f = topo.fabric
    load = dict(zip(ph.edge_ids.tolist(), ph.unit_load.tolist()))
    # NIC r of host a: its 4 GPUs' S/p to the 3 GPUs of rail r on the 3 other hosts.
    for edge in np.concatenate([f.nic_up.ravel(), f.nic_down.ravel()]).tolist():
        assert load[edge] == pytest.approx(4 * 3 / p)


def test_nic_loads_of_a_group_that_is_not_whole_hosts_by_hand():
    topo = _cluster(hosts=2, g=4, nics=4, hpl=4)
    group = (0, 1, 4, 5, 6)  # host 0: GPUs 0, 1 (rails 0, 1); host 1: GPUs 0, 1, 2
    (ph,) = plan_all_to_all_together(topo, "all_to_all", (group,))
    f, p = topo.fabric, len(group)
    load = dict(zip(ph.edge_ids.tolist(), ph.unit_load.tolist()))
    # PXN: host 0's NIC r sends its 2 GPUs' bytes to host 1's GPU on rail r (rails 0-2).
    assert [load.get(int(f.nic_up[0, r]), 0.0) for r in range(4)] == pytest.approx(
        [2 / p, 2 / p, 2 / p, 0.0]
    )
    # host 1's 3 GPUs send to host 0's GPUs of rails 0 and 1.
    assert [load.get(int(f.nic_up[1, r]), 0.0) for r in range(4)] == pytest.approx(
        [3 / p, 3 / p, 0.0, 0.0]
    )
    # Receiving: host 1's GPU of rail r gets S/p from each of host 0's 2 GPUs.
    assert [load.get(int(f.nic_down[1, r]), 0.0) for r in range(4)] == pytest.approx(
        [2 / p, 2 / p, 2 / p, 0.0]
    )


def test_direct_keeps_its_name_and_the_rings_calibration_row():
    """All-to-all keeps the ring's row and fill (algorithms/__init__.py); a lone send has the p2p
    row (LL or Simple, never LL128)."""
    algo = ALGORITHMS["direct"]
    assert (algo.family, algo.ops, algo.auto) == ("ring", ("all_to_all",), True)
    assert algo.plan_together is plan_all_to_all_together
    assert (ALGORITHMS["p2p"].family, ALGORITHMS["p2p"].protocols) == ("p2p", ("LL", "Simple"))


@pytest.mark.parametrize(
    ("group", "chunk"),
    [
        ((0, 4), 128 * 2**10),  # host 0 -> host 1: NCCL_P2P_NET_CHUNKSIZE
        ((0, 1), 512 * 2**10),  # inside host 0: NCCL_P2P_NVL_CHUNKSIZE
    ],
)
def test_a_send_fills_one_nccl_chunk(group, chunk):
    """By hand: a send pays its latency and one p2p chunk at its rate R (bytes sent / bandwidth
    seconds) beyond its bytes, at every size of a chunk or more. The ring's fitted fill (7 units
    of up to 4 MiB) would add 28 MiB / R at 64 MiB and 7 x 1 MiB / R at 1 MiB."""
    ctx = CommContext(_cluster(hosts=4))
    phases = {}
    for size in (1 << 20, 1 << 26):
        cost = ctx.cost_together("send", (group,), size, "p2p")
        assert cost.protocol == "Simple"
        (ph,) = cost.phases
        phases[size] = ph
    small, big = phases[1 << 20], phases[1 << 26]
    rate = big.per_rank_wire_bytes / big.bandwidth_s
    assert small.per_rank_wire_bytes / small.bandwidth_s == pytest.approx(rate, rel=1e-12)
    # the same fill at 1 MiB and 64 MiB (one chunk <= 1 MiB): equal latencies
    assert big.latency_s == pytest.approx(small.latency_s, rel=1e-12)
    # and it is one chunk at R: the same send without the fill is chunk / R shorter
    row = NCCL_CALIBRATION.step("p2p", "Simple")
    no_fill = dataclasses.replace(
        NCCL_CALIBRATION,
        steps=tuple(
            (k, dataclasses.replace(v, fill_steps=0.0) if v is row else v)
            for k, v in NCCL_CALIBRATION.steps
        ),
    )
    bare = CommContext(_cluster(hosts=4), no_fill).cost_together("send", (group,), 1 << 26, "p2p")
    assert big.latency_s - bare.phases[0].latency_s == pytest.approx(chunk / rate, rel=1e-9)


def test_nccl_sends_small_p2p_transfers_in_ll_and_larger_in_simple():
    """NCCL_P2P_LL_THRESHOLD: a send of 16 KiB is LL, of 32 KiB and more Simple."""
    ctx = CommContext(_cluster(hosts=4))
    protocol = {
        size: ctx.cost_together("send", ((0, 4),), size, "p2p").protocol
        for size in (16 << 10, 32 << 10, 128 << 10)
    }
    assert protocol == {16 << 10: "LL", 32 << 10: "Simple", 128 << 10: "Simple"}


def test_many_groups_cost_together_as_their_merged_plans():
    topo = _cluster(hosts=8, g=4, nics=4)
    groups = tuple(tuple(range(i, 32, 4)) for i in range(4))
    ctx = CommContext(topo)
    cost = ctx.cost_together("all_to_all", groups, 1 << 26)
    assert cost.algorithm == "direct"
    (ph,) = ctx.plan("all_to_all", "direct", groups)[0].phases
    _assert_same(ph, merge_phases([plan_direct(topo, "all_to_all", g)[0] for g in groups]))


def test_above_the_hashing_bound_is_a_user_error(monkeypatch):
    monkeypatch.setattr(switches, "MAX_HASHED_FLOWS", 100)
    topo = _cluster()
    with pytest.raises(UserError, match="hashed one by one"):
        plan_all_to_all_together(topo, "all_to_all", (tuple(range(32)),))
    # adaptive routing on two levels hashes nothing: no bound
    topo = _cluster(routing={"policy": "adaptive"})
    plan_all_to_all_together(topo, "all_to_all", (tuple(range(32)),))


def test_groups_over_the_old_limit_plan_on_a_fat_tree():
    topo = load_topology("h100-ndr-cluster", 256)  # 2,048 GPUs, two pods
    (ph,) = plan_all_to_all_together(topo, "all_to_all", (tuple(range(2048)),))
    np.testing.assert_allclose(ph.sent_per_rank, 2047 / 2048)
    f = topo.fabric
    load = dict(zip(ph.edge_ids.tolist(), ph.unit_load.tolist()))
    # every NIC: 8 local GPUs x 255 same-rail GPUs elsewhere, S/p each
    assert load[int(f.nic_up[17, 3])] == pytest.approx(8 * 255 / 2048)


def test_plan_direct_still_refuses_past_its_limit_off_fat_trees():
    topo = _cluster()
    with pytest.raises(UserError, match="planned from counts instead"):
        plan_direct(topo, "all_to_all", tuple(range(MAX_ALL_TO_ALL_RANKS + 1)))
