"""Topology builders, shipped files, routing, groups, summaries and input errors.

Expected figures come from the data sheets each topology file cites (e.g. DGX A100:
12 NVLink3 links x 25 GB/s = 300 GB/s per GPU per direction) or from hand arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import UserError
from simulator.system.topology.groups import groups, resolve_group
from simulator.system.topology.loader import load_topology, topology_from_dict, topology_names
from simulator.system.topology.summary import bisection_bw_per_gpu, summary

SHIPPED = ["dgx-a100", "dgx-h100", "hgx-h200", "pcie-8gpu", "a100-hdr-superpod", "h100-ndr-cluster"]


def _edge_bw(topo, u, v):
    return topo.graph.edges[u, v]["bw_bytes_per_s"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_topologies_load_and_cite_a_source(name):
    topo = load_topology(name)
    assert name in topology_names()
    assert topo.name == name and topo.source and topo.gpu
    assert topo.num_gpus == topo.num_hosts * topo.gpus_per_host == len(topo.gpu_ids)
    assert (topo.bw_bytes_per_s > 0).all() and (topo.latency_s >= 0).all()


def test_single_host_link_rates_match_data_sheets():
    # DGX A100 whitepaper: 12 NVLink3 x 25 GB/s = 300 GB/s per direction per GPU.
    a100 = load_topology("dgx-a100")
    assert _edge_bw(a100, "h0.gpu0", "h0.nvswitch") == 300e9
    assert _edge_bw(a100, "h0.nvswitch", "h0.gpu0") == 300e9
    # H100/H200: NVLink4 900 GB/s bidirectional = 450 GB/s per direction.
    assert _edge_bw(load_topology("dgx-h100"), "h0.gpu3", "h0.nvswitch") == 450e9
    assert _edge_bw(load_topology("hgx-h200"), "h0.gpu3", "h0.nvswitch") == 450e9
    pcie = load_topology("pcie-8gpu")
    assert "nvlink" not in set(pcie.link_kind)
    assert summary(a100)["links"]["nvlink"]["edges"] == 16  # 8 duplex GPU<->NVSwitch cables


def test_num_hosts_scales_a_multi_host_topology_host_major():
    topo = load_topology("dgx-a100", num_hosts=4)
    assert (topo.num_gpus, topo.num_hosts) == (32, 4)
    assert topo.gpu_ids[8] == "h1.gpu0" and topo.host_of("h3.gpu7") == 3 and topo.host_of(9) == 1
    # HDR: 200 Gb/s = 25 GB/s per direction.
    assert _edge_bw(topo, "h2.nic5", "leaf5") == 25e9
    assert topo.gpus_of_host(2)[0] == "h2.gpu0"


def test_sixteen_thousand_gpu_cluster_is_a_few_lines():
    topo = load_topology("h100-ndr-cluster", num_hosts=2048)
    assert topo.num_gpus == 16384
    kinds = summary(topo)["vertices"]
    assert kinds["core"] > 0 and kinds["spine"] > 0 and kinds["leaf"] == 8 * 2048 // 32


def test_single_host_file_refuses_more_hosts():
    with pytest.raises(UserError, match="num_hosts"):
        load_topology("pcie-8gpu", num_hosts=2)


def test_unknown_topology_suggests_a_name():
    with pytest.raises(UserError, match="did you mean 'dgx-a100'"):
        load_topology("dgx-a10")


def test_intra_host_route_crosses_nvswitch_and_inter_host_route_uses_destination_rail():
    topo = load_topology("dgx-a100", num_hosts=2)
    assert topo.route("h0.gpu1", "h0.gpu2") == [
        ("h0.gpu1", "h0.nvswitch"),
        ("h0.nvswitch", "h0.gpu2"),
    ]
    path = topo.route("h0.gpu1", "h1.gpu2")
    # PXN: NVLink to the local GPU on rail 2, then NIC 2 -> rail-2 leaf -> NIC 2 of host 1.
    assert (
        ("h0.gpu2", "h0.nic2") in path
        and ("h0.nic2", "leaf2") in path
        and path[-1] == ("h1.nic2", "h1.gpu2")
    )


def test_ecmp_is_deterministic_and_spreads_flows_over_spines():
    topo = load_topology("h100-ndr-cluster", num_hosts=128)
    spines = set()
    for h in range(32, 64):
        path = topo.route("h0.gpu0", f"h{h}.gpu0")
        assert path == topo.route("h0.gpu0", f"h{h}.gpu0")
        spines |= {v for _, v in path if v.startswith("spine")}
    # 32 flows hashed over 32 spines: a fixed hash hits many of them (exactly 1 would be polarized).
    assert len(spines) >= 12


def test_equal_cost_paths_on_a_ring_use_both_directions():
    ring = topology_from_dict(
        {"name": "r", "gpu": "a100-80gb", "builder": "ring", "num_gpus": 8, "link_bw": "100 GB/s"}
    )
    clockwise = [
        ring.route(f"gpu{i}", f"gpu{(i + 4) % 8}")[0][1] == f"gpu{(i + 1) % 8}" for i in range(8)
    ]
    assert len(ring.route("gpu0", "gpu4")) == 4
    assert 0 < sum(clockwise) < 8


def test_bisection_bandwidth_by_hand():
    # A ring of 8 cut in half crosses 2 cables: 2 x 100 GB/s shared by 4 GPUs = 50 GB/s each.
    ring = topology_from_dict(
        {"name": "r", "gpu": "a100-80gb", "builder": "ring", "num_gpus": 8, "link_bw": "100 GB/s"}
    )
    assert bisection_bw_per_gpu(ring) == pytest.approx(50e9)
    assert bisection_bw_per_gpu(load_topology("dgx-a100")) == pytest.approx(300e9)
    # Non-blocking fat tree: the NIC rate per GPU (HDR 25 GB/s, NDR 50 GB/s).
    assert bisection_bw_per_gpu(load_topology("a100-hdr-superpod")) == pytest.approx(25e9)
    assert bisection_bw_per_gpu(load_topology("h100-ndr-cluster")) == pytest.approx(50e9)


def test_oversubscription_reduces_bisection():
    data = {
        "name": "o",
        "gpu": "a100-80gb",
        "builder": "nvswitch",
        "nvlink_bw": "300 GB/s",
        "num_hosts": 8,
        "nic": {"bw": "200 Gb/s", "pcie_bw": "32 GB/s"},
        "fabric": {"hosts_per_leaf": 4, "spines": 2, "oversubscription": {"leaf": 2}},
    }
    assert bisection_bw_per_gpu(topology_from_dict(data)) == pytest.approx(12.5e9)


def test_groups_and_descriptors():
    topo = load_topology("dgx-a100", num_hosts=3)
    assert len(groups(topo, "host")) == 3 and len(groups(topo, "rail")) == 8
    assert resolve_group(topo, "rail:2") == (2, 10, 18)
    assert resolve_group(topo, "host:1") == tuple(range(8, 16))
    assert resolve_group(topo, ["h0.gpu1", "h2.gpu0"]) == (1, 16)
    with pytest.raises(UserError, match="unknown GPU"):
        resolve_group(topo, ["h9.gpu0"])
    with pytest.raises(UserError):
        resolve_group(topo, "racks")


def _explicit(vertices, edges):
    return {
        "name": "x",
        "gpu": "a100-80gb",
        "builder": "explicit",
        "vertices": vertices,
        "edges": edges,
    }


def test_explicit_graph_builds_and_routes():
    topo = topology_from_dict(
        _explicit(
            [
                {"name": "a", "kind": "gpu"},
                {"name": "b", "kind": "gpu"},
                {"name": "s", "kind": "nvswitch"},
            ],
            [{"src": "a", "dst": "s", "bw": "10 GB/s"}, {"src": "b", "dst": "s", "bw": "10 GB/s"}],
        )
    )
    assert topo.route("a", "b") == [("a", "s"), ("s", "b")]


def test_bad_topology_reports_every_problem_with_its_path():
    data = _explicit(
        [
            {"name": "a", "kind": "gpu"},
            {"name": "a", "kind": "gpu"},
            {"name": "s", "kind": "switch"},
            {"name": "lonely", "kind": "gpu"},
        ],
        [
            {"src": "a", "dst": "s", "bw": "0 GB/s"},
            {"src": "a", "dst": "t", "bw": "1 GB/s"},
            {"src": "lonely", "dst": "a", "bw": "1 GB/s"},
            {"src": "a", "dst": "lonely", "bw": "1 GB/s"},
        ],
    )
    with pytest.raises(UserError) as err:
        topology_from_dict(data)
    text = str(err.value)
    assert "duplicate vertex name 'a'" in text
    assert "vertices[2].kind: unknown value 'switch'" in text and "nvswitch" in text
    assert "edges[0].bw" in text and "positive" in text
    assert "edges[1].dst: unknown vertex 't'" in text
    assert "duplicate edge lonely->a" in text


def test_disconnected_gpu_is_reported():
    data = _explicit(
        [{"name": "a", "kind": "gpu"}, {"name": "b", "kind": "gpu"}, {"name": "c", "kind": "gpu"}],
        [
            {"src": "a", "dst": "b", "bw": "1 GB/s"},
            {"src": "b", "dst": "c", "bw": "1 GB/s", "duplex": False},
        ],
    )
    with pytest.raises(UserError, match="without a route to and from a: c"):
        topology_from_dict(data)


def test_misspelt_parameter_and_bad_unit():
    data = {
        "name": "d",
        "gpu": "a100-80gb",
        "builder": "nvswitch",
        "nvlink_bw": "300 GB",
        "gpus_per_hots": 8,
    }
    with pytest.raises(UserError) as err:
        topology_from_dict(data)
    assert "gpus_per_hots: unknown field (did you mean 'gpus_per_host'" in str(err.value)
    assert "nvlink_bw" in str(err.value)
    with pytest.raises(UserError, match="builder: unknown value 'nvswich'"):
        topology_from_dict({"name": "d", "gpu": "x", "builder": "nvswich"})


def _run_cli(argv):
    from simulator.cli.main import main

    return main(argv)


def test_topology_show_prints_a_summary(capsys):
    assert _run_cli(["topology", "show", "dgx-a100", "--num-hosts", "2"]) == 0
    out = capsys.readouterr().out
    assert "16  on 2 host(s)" in out and "bisection  25.0 GB/s per GPU" in out and "nvlink" in out


def test_topology_picture_refuses_large_graphs(tmp_path, capsys):
    assert (
        _run_cli(["topology", "show", "h100-ndr-cluster", "--picture", str(tmp_path / "x.png")])
        == 2
    )
    assert "vertices" in capsys.readouterr().err


def test_topology_picture_small(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "dgx.svg"
    assert _run_cli(["topology", "show", "dgx-a100", "--picture", str(out)]) == 0
    assert out.read_text().lstrip().startswith("<?xml")


# ---- lazily named, array-built clusters ------------------------------------------------------


def test_replicated_names_round_trip_and_refuse_lookalikes():
    topo = load_topology("a100-hdr-superpod", num_hosts=50)
    names = topo.names.all()
    assert len(names) == len(set(names)) == len(topo.vertex_kind)
    assert all(topo.names.index(n) == i for i, n in enumerate(names))
    assert names[:2] == ["h0.nvswitch", "h0.gpu0"] and names[-1].startswith("core")
    for bogus in ("h01.gpu0", "h50.gpu0", "h0.gpu8", "leaf999", "spine", "gpu0", "h0.", "core-1"):
        assert topo.names.index(bogus) is None
    assert topo.host_of("h49.gpu7") == 49 and topo.find_gpu("h0.nic0") is None


def test_fat_tree_index_arrays_name_the_cables_they_stand_for():
    topo = load_topology("a100-hdr-superpod", num_hosts=50)  # 3 blocks of 20 per pod of 40: cores
    f, name = topo.fabric, topo.names.name
    pairs = [(name(u), name(v)) for u, v in zip(topo.edge_src.tolist(), topo.edge_dst.tolist())]
    assert pairs[f.nic_up[7, 3]] == ("h7.nic3", "leaf3") and pairs[f.nic_down[7, 3]] == (
        "leaf3",
        "h7.nic3",
    )
    assert pairs[f.nic_up[45, 1]] == (
        "h45.nic1",
        "leaf17",
    )  # block 2 of 20 hosts, rail 1: 2 * 8 + 1
    assert f.leaf_spine.shape == (24, 20) and f.spine_core.shape == (2, 20, 10)
    u, v = pairs[f.leaf_spine[17, 4]]  # leaf 17: host block 2 (hosts 40-59), so pod 1
    assert (u, v) == ("leaf17", "spine24") and pairs[f.spine_leaf[17, 4]] == (v, u)
    assert pairs[f.spine_core[1, 2, 3]] == ("spine22", "core23")  # pod 1's spine 2, core group 2
    assert pairs[f.core_spine[1, 2, 3]] == ("core23", "spine22")
    # Every fabric cable is two directed edges, up then down, with the same figures.
    first = 50 * f.host_edge_count
    up, down = np.arange(first, topo.num_edges, 2), np.arange(first + 1, topo.num_edges, 2)
    assert (topo.edge_src[up] == topo.edge_dst[down]).all()
    assert (topo.bw_bytes_per_s[up] == topo.bw_bytes_per_s[down]).all()
    assert len(set(pairs)) == len(pairs)


def test_largest_clusters_build_and_route_by_name():
    topo = load_topology("h100-ndr-cluster", num_hosts=16384)
    assert topo.num_gpus == 131072 and topo.hosts[-1] == 16383
    path = topo.route("h0.gpu0", "h16383.gpu7")
    assert path[0] == ("h0.gpu0", "h0.nvswitch") and path[-1] == ("h16383.nic7", "h16383.gpu7")
    assert any(v.startswith("core") for _, v in path)
    with pytest.raises(UserError, match="262,144 GPUs"):
        load_topology("h100-ndr-cluster", num_hosts=32769)
