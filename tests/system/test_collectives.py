"""Collective cost model: hand formulas, conservation, properties, and published nccl-tests figures.

Hand formulas use IDEAL_CALIBRATION (line rate, link latency only) on research shapes
with round numbers: ring all-reduce 2(p-1)(a + S/(pB)); all-gather / reduce-scatter
(p-1)(a + S/(pB)).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.errors import UserError
from simulator.system.comm.algorithms.base import unique_ids
from simulator.system.comm.algorithms.tree import double_binary_tree
from simulator.system.comm.calibration import IDEAL_CALIBRATION, NCCL_CALIBRATION, OPS
from simulator.system.comm.cost import CommContext, collective_cost
from simulator.system.topology.loader import load_topology, topology_from_dict
from tests.reference.nccl import AZURE_A100_1KIB_TIME_S, AZURE_A100_ALLREDUCE_BUSBW_GBPS

# NVIDIA/nccl#583 (user log): 2x A100-SXM4-40GB NVLink, all_reduce of 32 B: 10.14 us.
NCCL583_2GPU_32B_TIME_S = 1.014e-05
# NVIDIA/nccl#412 (maintainer): ~24 GB/s busbw per HDR 200 Gb/s NIC inter-node.
NCCL412_HDR_NIC_BUSBW_GBPS = 24.0
# NVIDIA/nccl-tests#149 (maintainer): 8x A100 NVSwitch all-reduce ~230 GB/s at >= 8 GB.
NCCL_TESTS149_PEAK_GBPS = 230.0


def _shape(builder: str, bw="100 GB/s", lat="1 us", **extra):
    return topology_from_dict(
        {
            "name": builder,
            "gpu": "a100-80gb",
            "builder": builder,
            "link_bw": bw,
            "link_latency": lat,
            **extra,
        }
    )


# ---- hand formulas ---------------------------------------------------------------------


@pytest.mark.parametrize("p", [2, 4, 8])
@pytest.mark.parametrize("builder", ["ring", "fully-connected"])
def test_ring_all_reduce_hand_formula(p, builder):
    topo, b, a, s = _shape(builder, num_gpus=p), 100e9, 1e-6, 8_000_000_000
    cost = collective_cost(topo, "all_reduce", "all", s, "ring", IDEAL_CALIBRATION)
    assert cost.time_s == pytest.approx(2 * (p - 1) * (a + s / (p * b)), rel=1e-12)
    assert cost.bytes_per_rank_sent == pytest.approx(2 * (p - 1) / p * s)


@pytest.mark.parametrize("op", ["all_gather", "reduce_scatter"])
def test_all_gather_and_reduce_scatter_hand_formula(op):
    p, b, a, s = 4, 100e9, 1e-6, 4_000_000_000
    cost = collective_cost(_shape("ring", num_gpus=p), op, "all", s, "ring", IDEAL_CALIBRATION)
    assert cost.time_s == pytest.approx((p - 1) * (a + s / (p * b)), rel=1e-12)
    assert cost.busbw_Bps == pytest.approx(cost.algbw_Bps * (p - 1) / p)


def test_one_rank_or_no_bytes_costs_nothing():
    topo = load_topology("dgx-a100")
    for op in OPS:
        assert collective_cost(topo, op, ["h0.gpu3"], 1 << 30).time_s == 0.0
        assert collective_cost(topo, op, "all", 0).time_s == 0.0


def test_ring_crossing_one_link_twice_pays_for_it():
    # Two switches joined by one 10 GB/s cable, two GPUs on each (100 GB/s access links).
    v = [{"name": n, "kind": "gpu"} for n in ("a0", "a1", "b0", "b1")] + [
        {"name": "L", "kind": "nvswitch"},
        {"name": "R", "kind": "nvswitch"},
    ]
    e = [
        {"src": g, "dst": "L" if g[0] == "a" else "R", "bw": "100 GB/s"}
        for g in ("a0", "a1", "b0", "b1")
    ]
    e.append({"src": "L", "dst": "R", "bw": "10 GB/s"})
    topo = topology_from_dict(
        {"name": "x", "gpu": "a100-80gb", "builder": "explicit", "vertices": v, "edges": e}
    )
    s = 1_000_000_000
    once = collective_cost(
        topo, "all_reduce", ["a0", "a1", "b0", "b1"], s, "ring", IDEAL_CALIBRATION
    )
    twice = collective_cost(
        topo, "all_reduce", ["a0", "b0", "a1", "b1"], s, "ring", IDEAL_CALIBRATION
    )
    # Per direction the cable carries 6 steps x S/4 per crossing: 1.5 GB -> 0.15 s, twice -> 0.3 s.
    assert once.bandwidth_s == pytest.approx(0.15) and twice.bandwidth_s == pytest.approx(0.30)


def test_group_spread_over_hosts_pays_for_the_network():
    topo = load_topology("dgx-a100", num_hosts=2)
    inside = collective_cost(topo, "all_reduce", ["h0.gpu0", "h0.gpu1"], 1 << 28)
    across = collective_cost(topo, "all_reduce", ["h0.gpu0", "h1.gpu0"], 1 << 28)
    assert across.time_s > 5 * inside.time_s


# ---- conservation ----------------------------------------------------------------------

CASES = [
    ("all_reduce", "ring"),
    ("all_reduce", "tree"),
    ("all_reduce", "hierarchical"),
    ("all_gather", "ring"),
    ("reduce_scatter", "ring"),
    ("broadcast", "ring"),
    ("reduce", "ring"),
    ("all_to_all", "direct"),
]


@pytest.mark.parametrize("op,algorithm", CASES)
def test_bytes_are_conserved(op, algorithm):
    topo = load_topology("dgx-a100", num_hosts=3)
    group = tuple(range(topo.num_gpus))
    pl, _, _ = CommContext(topo).plan(op, algorithm, (group,))
    p = len(group)
    for ph in pl.phases:
        assert ph.sent_per_rank.sum() == pytest.approx(ph.recv_per_rank.sum())
        assert (ph.unit_load > 0).all()
    sent = sum(ph.sent_per_rank for ph in pl.phases)
    recv = sum(ph.recv_per_rank for ph in pl.phases)
    # Textbook volumes per rank, in units of S.
    if (op, algorithm) == ("all_reduce", "ring"):
        assert sent == pytest.approx(np.full(p, 2 * (p - 1) / p))
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        assert recv == pytest.approx(np.full(p, (p - 1) / p))
    if op == "broadcast":
        assert recv[1:] == pytest.approx(np.ones(p - 1)) and recv[0] == 0


def test_hierarchical_volume_matches_its_three_phases():
    topo = load_topology("dgx-a100", num_hosts=4)
    h, k = 4, 8
    c = collective_cost(topo, "all_reduce", "all", 1 << 30, "hierarchical")
    # RS (k-1)/k S + inter all-reduce of S/k over h hosts 2(h-1)/h S/k + AG (k-1)/k S.
    expected = (2 * (k - 1) / k + 2 * (h - 1) / (h * k)) * (1 << 30)
    assert c.bytes_per_rank_sent == pytest.approx(expected)
    assert [ph.name for ph in c.phases] == [
        "intra_reduce_scatter",
        "inter_all_reduce",
        "intra_all_gather",
    ]


def test_double_binary_tree_matches_nccl_shape():
    t0, t1 = double_binary_tree(8)
    assert t0.count(-1) == 1 and t1.count(-1) == 1
    # NCCL trees.cc: in tree 0 rank 0 is the root; tree 1 mirrors it for even n.
    assert t0[0] == -1 and t1[7] == -1 and t0[1] == 2 and t1[6] == 5


# ---- properties ------------------------------------------------------------------------

SMALL = [
    load_topology("dgx-a100"),
    load_topology("dgx-a100", num_hosts=2),
    load_topology("pcie-8gpu"),
]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(range(len(SMALL))),
    st.sampled_from(OPS),
    st.integers(1, 1 << 34),
    st.integers(1, 1 << 20),
)
def test_bigger_message_never_faster(ti, op, size, extra):
    topo = SMALL[ti]
    assert (
        collective_cost(topo, op, "all", size + extra).time_s
        >= collective_cost(topo, op, "all", size).time_s
    )


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["ring", "fully-connected"]),
    st.integers(2, 9),
    st.floats(1e9, 1e12),
    st.floats(1.0, 10.0),
    st.integers(1, 1 << 33),
    st.sampled_from(["all_reduce", "all_gather", "broadcast"]),
)
def test_more_bandwidth_never_slower(builder, p, bw, factor, size, op):
    slow = _shape(builder, bw=f"{bw!r} B/s", num_gpus=p)  # topology files need units
    fast = _shape(builder, bw=f"{bw * factor!r} B/s", num_gpus=p)
    assert (
        collective_cost(fast, op, "all", size).time_s
        <= collective_cost(slow, op, "all", size).time_s
    )


# ---- algorithm selection and errors ----------------------------------------------------


def test_auto_selection_follows_group_shape():
    assert (
        collective_cost(load_topology("dgx-a100"), "all_reduce", "all", 1 << 30).algorithm == "ring"
    )
    big = load_topology("h100-ndr-cluster", num_hosts=64)
    # A 512-GPU ring has 1,022 steps; the tree's log-depth latency wins at small sizes.
    assert collective_cost(big, "all_reduce", "all", 1 << 20).algorithm == "tree"
    assert collective_cost(big, "all_reduce", "all", 1 << 20, algorithm="ring").algorithm == "ring"


def test_unknown_or_unsupported_algorithm_is_a_clear_error():
    topo = load_topology("dgx-a100", num_hosts=2)
    with pytest.raises(UserError, match="did you mean 'ring'"):
        collective_cost(topo, "all_reduce", "all", 1024, "rign")
    with pytest.raises(UserError, match="tree does not implement all_gather"):
        collective_cost(topo, "all_gather", "all", 1024, "tree")
    with pytest.raises(UserError, match="did you mean 'all_reduce'"):
        collective_cost(topo, "allreduce", "all", 1024)


def test_sixteen_thousand_gpu_all_reduce_is_bounded_by_the_rails():
    # Its wall time is measured by benchmarks/bench_collectives.py, not asserted here.
    topo = load_topology("h100-ndr-cluster", num_hosts=2048)
    cost = collective_cost(topo, "all_reduce", "all", (1 << 30) + 12345)
    # Tree across 2,048 hosts, 8 NDR rails: bounded by 8 x 48 GB/s per host.
    assert 250e9 < cost.busbw_Bps < 8 * 48e9


# ---- published measurements -------------------------------------------------------------


def _a100_table():
    topo = load_topology("dgx-a100")
    rows = []
    for size, published in AZURE_A100_ALLREDUCE_BUSBW_GBPS.items():
        c = collective_cost(topo, "all_reduce", "all", size)
        rows.append((size, c.time_s, c.busbw_Bps / 1e9, published, f"{c.algorithm}/{c.protocol}"))
    return rows


def test_a100_nvswitch_all_reduce_matches_nccl_tests_table():
    print("\n8x A100 NVSwitch all_reduce busbw vs Azure ND A100 v4 nccl-tests (GB/s)")
    print(
        f"{'size (B)':>12s} {'time (us)':>10s} {'predicted':>10s} {'published':>10s} {'error':>8s}  algorithm"
    )
    for size, t, pred, pub, algo in _a100_table():
        print(f"{size:12d} {t * 1e6:10.1f} {pred:10.2f} {pub:10.2f} {pred / pub - 1:+8.1%}  {algo}")
        if size >= 1 << 20:
            assert pred == pytest.approx(pub, rel=0.15)
    small = collective_cost(load_topology("dgx-a100"), "all_reduce", "all", 1024).time_s
    assert 1 / 1.5 <= small / AZURE_A100_1KIB_TIME_S <= 1.5


def test_two_gpu_small_message_latency():
    c = collective_cost(load_topology("dgx-a100"), "all_reduce", ["h0.gpu0", "h0.gpu1"], 32)
    assert c.time_s == pytest.approx(NCCL583_2GPU_32B_TIME_S, rel=0.3)


def test_peak_nvlink_bus_bandwidth():
    c = collective_cost(load_topology("dgx-a100"), "all_reduce", "all", 8 << 30)
    assert c.busbw_Bps / 1e9 == pytest.approx(NCCL_TESTS149_PEAK_GBPS, rel=0.1)


def test_one_hdr_nic_per_host_gives_24_gbps():
    # One GPU per host (a rail): every byte crosses that GPU's HDR NIC.
    topo = load_topology("dgx-a100", num_hosts=8)
    c = collective_cost(topo, "all_reduce", "rail:0", 1 << 30)
    assert c.busbw_Bps / 1e9 == pytest.approx(NCCL412_HDR_NIC_BUSBW_GBPS, rel=0.1)


def test_protocol_efficiencies_follow_nccls_line_formats():
    # NCCL src/include/device.h: an LL line is 8 bytes, 4 of data and a 4-byte flag; an LL128
    # line is NCCL_LL128_LINEELEMS = 16 uint64 of which NCCL_LL128_DATAELEMS = 15 carry data;
    # Simple sends data only.
    by_name = {p.name: p.efficiency for p in NCCL_CALIBRATION.protocols}
    assert by_name == {"LL": 4 / 8, "LL128": 15 / 16, "Simple": 1.0}


def test_every_shipped_link_kind_has_an_efficiency():
    # A link kind without a calibrated efficiency would be costed at an unstated default.
    from simulator.core.resources import topology_dir

    kinds = set()
    for path in topology_dir().glob("*.yaml"):
        topo = load_topology(path)
        kinds |= {str(k) for k in np.unique(topo.link_kind)}
    assert kinds, "no link kinds read from the shipped topologies"
    assert kinds <= set(dict(NCCL_CALIBRATION.link_efficiency))


# ---- the `collective` command ----------------------------------------------------------


def _run_cli(argv):
    from simulator.cli.main import main

    return main(argv)


def test_collective_command_prints_an_nccl_tests_table(capsys):
    assert _run_cli(["collective", "--topology", "dgx-a100", "--sizes", "1K..8K"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert [int(r[0]) for r in rows] == [1024, 2048, 4096, 8192]
    assert rows[0][-1] == "ring/LL" and "busbw" in lines[1]


def test_collective_command_json_rows(capsys):
    import json

    argv = [
        "collective",
        "--topology",
        "dgx-a100",
        "--num-hosts",
        "2",
        "--group",
        "rail",
        "--sizes",
        "1024,1048576",
        "--json",
    ]
    assert _run_cli(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["size_bytes"] for r in rows] == [1024, 1048576]
    assert {"size_bytes", "time_s", "algbw_GBps", "busbw_GBps", "algorithm"} <= set(rows[0])
    # busbw = algbw x 2(n-1)/n with n = 2 ranks (one GPU per host).
    assert rows[1]["busbw_GBps"] == pytest.approx(rows[1]["algbw_GBps"])


def test_collective_command_rejects_bad_sizes(capsys):
    assert _run_cli(["collective", "--topology", "dgx-a100", "--sizes", "8G..1K"]) == 2
    assert "--sizes" in capsys.readouterr().err


# ---- planning shortcuts change nothing --------------------------------------------------------


def _plan_arrays(plan):
    return [
        (
            ph.name,
            ph.edge_ids.tolist(),
            ph.unit_load.tolist(),
            ph.n_steps,
            ph.path_latency_s,
            ph.net_steps,
            ph.sent_per_rank.tolist(),
            ph.recv_per_rank.tolist(),
        )
        for ph in plan.phases
    ]


def test_routing_repeated_blocks_once_gives_the_same_plan_bit_for_bit(monkeypatch):
    # A tree's chains appear in both trees; above BLOCKWISE_FLOWS flows they are routed once.
    from simulator.system.comm.algorithms import base

    topo = load_topology("a100-hdr-superpod", num_hosts=41)  # 41 hosts: two pods, odd tree
    group = tuple(range(3, topo.num_gpus - 5))  # hosts with unequal GPU counts at both ends
    plans = {}
    for threshold in (0, 1 << 40):
        monkeypatch.setattr(base, "BLOCKWISE_FLOWS", threshold)
        plans[threshold] = _plan_arrays(CommContext(topo).plan("all_reduce", "tree", (group,))[0])
    assert plans[0] == plans[1 << 40]


def test_ring_reduce_scatter_reuses_the_all_gather_plan_unchanged():
    from simulator.system.comm.algorithms import ALGORITHMS
    from simulator.system.comm.algorithms.base import Plan

    topo = load_topology("dgx-a100", num_hosts=4)
    ctx, group = CommContext(topo), tuple(range(topo.num_gpus))
    ag, _, _ = ctx.plan("all_gather", "ring", (group,))
    rs, _, _ = ctx.plan("reduce_scatter", "ring", (group,))
    assert rs.phases[0].name == "reduce_scatter" and rs.phases[0].edge_ids is ag.phases[0].edge_ids
    # What planning reduce-scatter on its own gives, bit for bit.
    alone = Plan(
        "reduce_scatter", "ring", group, ALGORITHMS["ring"].plan(topo, "reduce_scatter", group)
    )
    assert _plan_arrays(rs) == _plan_arrays(alone)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 200),
    st.lists(st.integers(0, 199), min_size=1, max_size=400),
    st.integers(0, 2**31),
)
def test_edge_loads_same_whether_counted_sparse_or_dense(num_edges, edges, seed):
    """Per-edge loads are one sum per edge, in flow order, whichever way they are gathered (sorting
    the used edges for few flows, one count over every edge for many)."""
    from simulator.system.comm.algorithms.base import _edge_loads

    edge_i = np.array([e % num_edges for e in edges], np.int64)
    weights = np.random.default_rng(seed).uniform(0.0, 2.0, len(edge_i))
    sparse_ids, sparse = _edge_loads(10**9, edge_i, weights)  # 4 x flows < edges: sorted path
    dense_ids, dense = _edge_loads(
        num_edges, edge_i, weights
    )  # counted over every edge when 4 x flows >= edges
    expected = {e: sum(w for i, w in zip(edge_i, weights) if i == e) for e in set(edge_i.tolist())}
    assert sparse_ids.tolist() == sorted(e for e, v in expected.items() if v > 0)
    assert np.array_equal(sparse_ids, dense_ids) and np.array_equal(sparse, dense)
    assert np.allclose(sparse, [expected[e] for e in sparse_ids.tolist()])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300),
    st.sampled_from([None, 5001, 100_000]),
)
def test_unique_ids_equals_numpy_unique(ids, bound):
    # The plans' link sums rely on it: the same ids in the same order, the same inverse, both
    # where it marks ids (a range within a few times the count) and where it sorts.
    arr = np.asarray(ids, np.int64)
    uniq, inverse = unique_ids(arr, bound)
    want_uniq, want_inverse = np.unique(arr, return_inverse=True)
    assert uniq.dtype == want_uniq.dtype and np.array_equal(uniq, want_uniq)
    assert np.array_equal(inverse, want_inverse)


def test_deepep_all_to_all_takes_a_sends_fill():
    # The same flows as the all-to-all ("direct"), with the p2p row: its fill is one network
    # chunk (128 KiB) where the ring row's is up to 7 x 4 MiB, so a 128 MiB all-to-all between
    # 4 hosts is faster by about the difference at the NIC's rate, and never slower.
    topo = load_topology("h800-ib-cluster", num_hosts=4)
    group = tuple(range(0, 32, 8))  # one GPU per host
    size = 128 * 2**20
    direct = collective_cost(topo, "all_to_all", group, size, algorithm="direct")
    deepep = collective_cost(topo, "all_to_all", group, size, algorithm="deepep")
    assert deepep.algorithm == "deepep" and deepep.protocol == "Simple"
    assert deepep.bytes_per_rank_sent == direct.bytes_per_rank_sent
    assert deepep.time_s < direct.time_s
