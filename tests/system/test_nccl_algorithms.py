"""NCCL's algorithm set: data each GPU moves (closed forms), hand-worked times under the ideal
calibration, where each algorithm applies, and how latency grows with scale."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import UserError
from simulator.system.comm.algorithms.base import merge_phases
from simulator.system.comm.algorithms.pat import plan_pat, plan_pat_together
from simulator.system.comm.algorithms.ring import MESH_RINGS_8, plan_ring, plan_ring_together
from simulator.system.comm.calibration import IDEAL_CALIBRATION
from simulator.system.comm.cost import CommContext, collective_cost
from simulator.system.topology.builders import LINK_KINDS
from simulator.system.topology.loader import load_topology, topology_from_dict

GiB = 2**30


def _box(n=8, bw="100 GB/s", gpu="h100-sxm-80gb", nvls=True, hosts=1, sharp=False):
    """One NVSwitch box of n GPUs (1 us per GPU-switch cable), or `hosts` of them on NDR rails."""
    d = {
        "name": "box",
        "gpu": gpu,
        "builder": "nvswitch",
        "gpus_per_host": n,
        "nvlink_bw": bw,
        "nvlink_latency": "1 us",
        "nvls": nvls,
        "num_hosts": hosts,
    }
    if hosts > 1:
        d["nic"] = {"per_host": n, "bw": "400 Gb/s", "pcie_bw": "64 GB/s"}
        d["fabric"] = {"levels": 2, "hosts_per_leaf": 32, "sharp": sharp}
    return topology_from_dict(d)


def _plan(topo, op, algorithm, group=None, calibration=IDEAL_CALIBRATION):
    group = tuple(range(topo.num_gpus)) if group is None else group
    return CommContext(topo, calibration).plan(op, algorithm, (group,))[0].phases


# ---- NVLS: data per GPU (maintainer, NVIDIA/nccl#1083) -----------------------------------


@pytest.mark.parametrize(
    "op, sent, recv",
    [
        ("reduce_scatter", 1.0, 1 / 8),  # RS half: send S, receive S/N
        ("all_gather", 1 / 8, 1.0),  # AG half: send S/N, receive S
        ("all_reduce", 1 + 1 / 8, 1 / 8 + 1),  # both halves, pipelined
    ],
)
def test_nvls_moves_s_and_s_over_n_per_half(op, sent, recv):
    (ph,) = _plan(_box(), op, "nvls")
    assert ph.sent_per_rank == pytest.approx(np.full(8, sent))
    assert ph.recv_per_rank == pytest.approx(np.full(8, recv))
    # Every GPU's uplink to the switch carries what it sends, its downlink what it receives.
    assert sorted(ph.unit_load) == pytest.approx(sorted([sent] * 8 + [recv] * 8))


def test_nvls_all_reduce_time_by_hand():
    # Ideal: 1 us up + 1 us down, then S (1 + 1/N) over each GPU's 100 GB/s link.
    s = 8 * GiB
    c = collective_cost(_box(), "all_reduce", "all", s, "nvls", IDEAL_CALIBRATION)
    assert c.time_s == pytest.approx(2e-6 + s * 9 / 8 / 100e9, rel=1e-12)


def test_nvls_beats_ring_by_2_n_minus_1_over_n_plus_1_on_bandwidth():
    # Ring: 2(N-1)/N S per link; NVLS: (N+1)/N S: ratio 2(N-1)/(N+1) = 14/9 on 8 GPUs.
    topo, s = _box(), 8 * GiB
    ring = collective_cost(topo, "all_reduce", "all", s, "ring", IDEAL_CALIBRATION)
    nvls = collective_cost(topo, "all_reduce", "all", s, "nvls", IDEAL_CALIBRATION)
    assert ring.bandwidth_s / nvls.bandwidth_s == pytest.approx(14 / 9)


def test_nvls_needs_hopper_an_nvls_switch_and_nccl_nvls_enable():
    assert collective_cost(load_topology("dgx-h100"), "all_reduce", "all", GiB).algorithm == "nvls"
    assert (
        collective_cost(load_topology("dgx-h100"), "all_reduce", "all", GiB, nvls=False).algorithm
        == "ring"
    )
    assert collective_cost(load_topology("dgx-a100"), "all_reduce", "all", GiB).algorithm == "ring"
    with pytest.raises(UserError, match="NVLink SHARP"):
        collective_cost(load_topology("dgx-a100"), "all_reduce", "all", GiB, "nvls")
    with pytest.raises(UserError, match="NVLink SHARP"):
        collective_cost(_box(nvls=False), "all_reduce", "all", GiB, "nvls")


def test_nvls_all_gather_takes_at_most_32_gpus_per_domain():
    topo = load_topology("gb200-nvl72")
    assert collective_cost(topo, "all_reduce", "all", GiB).algorithm == "nvls"
    assert collective_cost(topo, "all_gather", "all", GiB).algorithm != "nvls"
    with pytest.raises(UserError, match="at most 32"):
        collective_cost(topo, "all_gather", "all", GiB, "nvls")


def test_nvls_efficiency_applies_to_nvlink_only():
    # NCCL tuning.cc: intraBw x nvlsEfficiency; the network part of NVLSTree is not scaled.
    topo = _box(hosts=2)
    ideal = {e: w for e, w in zip(*_plan_arrays(topo, IDEAL_CALIBRATION))}
    from simulator.system.comm.calibration import NCCL_CALIBRATION

    real = {e: w for e, w in zip(*_plan_arrays(topo, NCCL_CALIBRATION))}
    nvlink = LINK_KINDS.index("nvlink")
    for e, w in ideal.items():
        expected = w / 0.85 if topo.link_code[e] == nvlink else w  # Hopper nvlsEfficiency 0.85
        assert real[e] == pytest.approx(expected)


def _plan_arrays(topo, calibration):
    (ph,) = (
        CommContext(topo, calibration)
        .plan("all_reduce", "nvls_tree", (tuple(range(topo.num_gpus)),))[0]
        .phases
    )
    return ph.edge_ids.tolist(), ph.unit_load.tolist()


# ---- NVLSTree: each rail's S/k across hosts on NCCL's double binary tree ----------------------


@pytest.mark.parametrize("hosts, busiest", [(2, 1 / 8), (4, 2 / 8)])
def test_nvls_tree_nic_load(hosts, busiest):
    # Each GPU's slice is S/8; two trees carry half each. With 2 hosts every NIC sends S/16 in
    # each tree (S/8); with 4 the interior host of a tree also sends down to two children:
    # 1/16 up + 2/16 down + 1/16 as a leaf of the other tree = S/4.
    topo = _box(hosts=hosts)
    (ph,) = _plan(topo, "all_reduce", "nvls_tree")
    nic_up = ph.unit_load[np.isin(ph.edge_ids, topo.fabric.nic_up.ravel())]
    assert nic_up.max() == pytest.approx(busiest)
    assert ph.net_steps == 2 * {2: 1, 4: 2}[hosts]  # 2 x tree depth, NCCL's 2 log2(nNodes)


# ---- PAT: log2(n) doubling steps, one GPU per host ----------------------------------------------


def test_pat_all_gather_by_hand():
    # 8 hosts of one GPU, fully connected by 100 GB/s, 1 us links: steps send 1, 2, 4 blocks of
    # S/8 over one link each: 3 x 1 us + 7/8 S / 100 GB/s.
    topo = topology_from_dict(
        {
            "name": "mesh",
            "gpu": "a100-80gb",
            "builder": "fully-connected",
            "num_gpus": 8,
            "gpus_per_host": 1,
            "link_bw": "100 GB/s",
            "link_latency": "1 us",
        }
    )
    s = GiB
    c = collective_cost(topo, "all_gather", "all", s, "pat", IDEAL_CALIBRATION)
    assert c.time_s == pytest.approx(3e-6 + 7 / 8 * s / 100e9, rel=1e-12)
    assert c.bytes_per_rank_sent == pytest.approx(7 / 8 * s)


def test_pat_needs_one_gpu_per_host_and_wins_small_messages_on_rails():
    with pytest.raises(UserError, match="one GPU per host"):
        collective_cost(load_topology("dgx-a100", num_hosts=2), "all_gather", "all", GiB, "pat")
    big = load_topology("h100-ndr-cluster", num_hosts=64)
    # 6 doubling steps vs a 63-step ring: PAT at 64 KiB; at 1 GiB its 0.75 bandwidth factor loses.
    assert collective_cost(big, "all_gather", "rail:0", 1 << 16).algorithm == "pat"
    assert collective_cost(big, "all_gather", "rail:0", GiB).algorithm == "ring"


# ---- CollNet (IB SHARP) -------------------------------------------------------------------------


def test_collnet_sends_each_shard_once_over_the_network():
    topo = _box(hosts=4, sharp=True)
    (ph,) = _plan(topo, "all_reduce", "collnet")
    nic_up = ph.unit_load[np.isin(ph.edge_ids, topo.fabric.nic_up.ravel())]
    assert nic_up == pytest.approx(np.full(32, 1 / 8))  # S/k per GPU, reduced in the switches
    with pytest.raises(UserError, match="sharp"):
        collective_cost(_box(hosts=4), "all_reduce", "all", GiB, "collnet")


def test_collnet_wins_large_all_reduce_where_the_fabric_reduces():
    topo = _box(hosts=16, sharp=True, bw="450 GB/s")
    assert collective_cost(topo, "all_reduce", "all", 4 * GiB, nvls=False).algorithm == "collnet"
    plain = _box(hosts=16, bw="450 GB/s")
    assert collective_cost(plain, "all_reduce", "all", 4 * GiB, nvls=False).algorithm != "collnet"


# ---- scale: ring latency ~ ranks, tree ~ log2(nodes) ----------------------------------------------


def test_ring_latency_grows_with_ranks_and_tree_with_log_nodes():
    lat = {}
    for hosts in (32, 64, 128):
        topo = load_topology("h100-ndr-cluster", num_hosts=hosts)
        ctx = CommContext(topo)
        lat[hosts] = {
            a: ctx.cost("all_reduce", tuple(range(topo.num_gpus)), 1024, a).latency_s
            for a in ("ring", "tree")
        }
    assert 1.8 < lat[128]["ring"] / lat[64]["ring"] < 2.2
    step32, step64 = lat[64]["tree"] - lat[32]["tree"], lat[128]["tree"] - lat[64]["tree"]
    assert step64 == pytest.approx(step32, rel=0.2) and lat[128]["tree"] / lat[64]["tree"] < 1.3


def test_selection_by_size_and_scale():
    one = load_topology("dgx-h100")
    many = load_topology("h100-ndr-cluster", num_hosts=512)
    assert collective_cost(one, "all_reduce", "all", 1 << 20).algorithm == "ring"
    assert collective_cost(one, "all_reduce", "all", 1 << 30).algorithm == "nvls"
    assert collective_cost(many, "all_reduce", "all", 1 << 20).algorithm in ("tree", "nvls_tree")


# ---- xGMI rings use every link once --------------------------------------------------------------


def test_mesh_rings_cover_every_directed_link_once():
    arcs = [(r[i], r[(i + 1) % 8]) for r in MESH_RINGS_8 for i in range(8)]
    assert len(arcs) == len(set(arcs)) == 8 * 7


def test_mi300x_ring_uses_all_seven_xgmi_links():
    # 7 rings x 64 GB/s per link per direction: busbw -> 448 GB/s at line rate.
    c = collective_cost(
        load_topology("mi300x-8gpu"), "all_reduce", "all", 64 * GiB, "ring", IDEAL_CALIBRATION
    )
    assert c.busbw_Bps / 1e9 == pytest.approx(448, rel=1e-3)


# ---- concurrent instances (the step engine's cost_together) ----------------------------------------


def test_concurrent_nvls_groups_on_their_own_links_take_the_standalone_time():
    # Two tensor-parallel groups of 4 in one H100 box: each GPU's NVLink is its own.
    ctx = CommContext(load_topology("dgx-h100"))
    alone = ctx.cost("all_reduce", (0, 1, 2, 3), 64 << 20, "nvls")
    both = ctx.cost_together("all_reduce", ((0, 1, 2, 3), (4, 5, 6, 7)), 64 << 20, "nvls")
    assert both.algorithm == "nvls" and both.time_s == pytest.approx(alone.time_s)


def test_concurrent_pat_rails_share_the_fabric():
    # The 8 rails' all-gathers of a 64-host cluster run together; each rail has its own leaves
    # and NICs (spines are shared, and the slowest rail's route sets the latency), so merging
    # them costs at most a little more than one rail alone; the merged plan carries every rail.
    topo = load_topology("h100-ndr-cluster", num_hosts=64)
    ctx = CommContext(topo)
    rails = tuple(tuple(range(r, topo.num_gpus, 8)) for r in range(8))
    one = ctx.cost("all_gather", rails[0], 1 << 16, "pat")
    all8 = ctx.cost_together("all_gather", rails, 1 << 16, "pat")
    assert one.time_s <= all8.time_s <= 1.05 * one.time_s
    assert sum(len(ph.edge_ids) for ph in all8.phases) > 7 * sum(
        len(ph.edge_ids) for ph in one.phases
    )


def _assert_identical(together, merged) -> None:
    """The same phases to the bit: links and loads, per-rank bytes, steps and path."""
    for a, b in zip(together, merged, strict=True):
        assert np.array_equal(a.edge_ids, b.edge_ids)
        assert np.array_equal(a.unit_load, b.unit_load)
        assert np.array_equal(a.sent_per_rank, b.sent_per_rank)
        assert np.array_equal(a.recv_per_rank, b.recv_per_rank)
        assert (a.n_steps, a.net_steps, a.path_latency_s) == (
            b.n_steps,
            b.net_steps,
            b.path_latency_s,
        )


@pytest.mark.parametrize("op", ["all_gather", "reduce_scatter"])
def test_pat_groups_routed_together_are_their_merged_plans_to_the_bit(op):
    # Routing disjoint groups in one call (plan_pat_together) must give what planning each group
    # and merging them gives (merge_phases): each group's loads summed over its own flows, then
    # over the groups in order; the slowest group's path; the first group's per-rank bytes.
    topo = load_topology("h100-ndr-cluster", num_hosts=64)
    rails = tuple(tuple(range(r, topo.num_gpus, 8)) for r in range(8))
    shifted = tuple(tuple(h * 8 + (h + r) % 8 for h in range(64)) for r in range(8))
    for groups in (rails, shifted, rails[:1]):
        together = plan_pat_together(topo, op, groups)
        merged = [merge_phases(same) for same in zip(*(plan_pat(topo, op, g) for g in groups))]
        assert len(together) == len(merged) == 6  # log2(64) steps
        _assert_identical(together, merged)


@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "broadcast"])
@pytest.mark.parametrize(
    ("topology", "hosts", "shape"),
    [("h100-ndr-cluster", 64, "rails"), ("h100-ndr-cluster", 16, "hosts"), ("dgx-h100", 1, "tp")],
)
def test_ring_groups_routed_together_are_their_merged_plans_to_the_bit(op, topology, hosts, shape):
    topo = load_topology(topology, num_hosts=hosts)
    n = topo.num_gpus
    groups = {
        "rails": tuple(tuple(range(r, n, 8)) for r in range(8)),  # one GPU per host
        "hosts": tuple(tuple(range(h * 32, h * 32 + 32)) for h in range(n // 32)),  # 4 hosts each
        "tp": ((0, 1, 2, 3), (4, 5, 6, 7)),  # inside one NVSwitch box
    }[shape]
    together = plan_ring_together(topo, op, groups)
    merged = [merge_phases(same) for same in zip(*(plan_ring(topo, op, g) for g in groups))]
    assert len(together) == len(merged) == 1
    _assert_identical(together, merged)
