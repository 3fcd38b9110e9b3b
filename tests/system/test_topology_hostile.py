"""Topology files a user could get wrong: every numeric field is bounded, every bandwidth and
latency needs its unit, and a refusal comes before anything large is built (issue 18, items 4
and 8). Each refusal names the file and the field; guarded against hangs by a timeout and
against building first by the memory traced while refusing."""

from __future__ import annotations

import copy
import tracemalloc

import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.yamlio import dump_yaml
from simulator.system.topology.builders.limits import MAX_DRAWN_EDGES, MAX_GPUS, MAX_GPUS_PER_HOST
from simulator.system.topology.loader import load_topology, topology_from_dict, topology_info

pytestmark = pytest.mark.timeout(10)

# Refusing reads a few kB of YAML and draws at most one small host: far below this (the probes
# below, built, would take gigabytes).
REFUSAL_BYTES = 50 * 2**20

NVSWITCH = {
    "name": "n",
    "gpu": "h100-sxm-80gb",
    "builder": "nvswitch",
    "gpus_per_host": 8,
    "nvlink_bw": "450 GB/s",
    "nvlink_latency": "0.35 us",
    "pcie_latency": "0.5 us",
}
CLUSTER = {
    **NVSWITCH,
    "num_hosts": 4,
    "nic": {"per_host": 8, "bw": "400 Gb/s", "pcie_bw": "64 GB/s", "latency": "0.6 us"},
    "fabric": {
        "levels": 3,
        "hosts_per_leaf": 2,
        "hosts_per_pod": 2,
        "spines": 2,
        "cores_per_spine": 2,
        "link_latency": "0.15 us",
        "oversubscription": {"leaf": 1, "spine": 1},
    },
}
PCIE = {
    "name": "p",
    "gpu": "h100-pcie-80gb",
    "builder": "pcie",
    "gpus_per_host": 8,
    "gpus_per_switch": 2,
    "cpus": 2,
    "pcie_bw": "64 GB/s",
    "switch_uplink_bw": "64 GB/s",
    "pcie_latency": "0.5 us",
    "cpu_link_bw": "96 GB/s",
    "cpu_link_latency": "0.5 us",
}
PAIRS = {**PCIE, "builder": "nvlink-pairs", "nvlink_bw": "300 GB/s", "nvlink_latency": "0.35 us"}
XGMI = {
    "name": "x",
    "gpu": "mi300x-192gb",
    "builder": "xgmi",
    "gpus_per_host": 8,
    "link_bw": "64 GB/s",
    "link_latency": "0.35 us",
    "pcie_latency": "0.5 us",
}
RING = {
    "name": "r",
    "gpu": "a100-80gb",
    "builder": "ring",
    "num_gpus": 8,
    "link_bw": "100 GB/s",
    "link_latency": "1 us",
    "gpus_per_host": 4,
}
FULL = {**RING, "builder": "fully-connected"}
TORUS = {
    "name": "t",
    "gpu": "a100-80gb",
    "builder": "torus",
    "dims": [4, 4],
    "link_bw": "100 GB/s",
    "link_latency": "1 us",
}
EXPLICIT = {
    "name": "e",
    "gpu": "a100-80gb",
    "builder": "explicit",
    "vertices": [{"name": "a", "host": 0}, {"name": "b", "host": 1}],
    "edges": [{"src": "a", "dst": "b", "bw": "100 GB/s", "latency": "1 us"}],
}

BASES = {
    "nvswitch": NVSWITCH,
    "cluster": CLUSTER,
    "pcie": PCIE,
    "nvlink-pairs": PAIRS,
    "xgmi": XGMI,
    "ring": RING,
    "fully-connected": FULL,
    "torus": TORUS,
    "explicit": EXPLICIT,
}

COUNTS = [  # (base, field, the expected bound in the message)
    *[
        (b, "gpus_per_host", f"{MAX_GPUS_PER_HOST:,}")
        for b in ("nvswitch", "pcie", "nvlink-pairs", "xgmi")
    ],
    ("cluster", "num_hosts", f"{MAX_GPUS:,}"),
    ("pcie", "gpus_per_switch", "8"),
    ("pcie", "cpus", "32"),
    ("cluster", "nic.per_host", "1,024"),
    ("cluster", "fabric.hosts_per_leaf", "1,024"),
    ("cluster", "fabric.spines", "1,024"),
    ("cluster", "fabric.cores_per_spine", "1,024"),
    ("cluster", "fabric.hosts_per_pod", f"{MAX_GPUS:,}"),
    ("ring", "num_gpus", f"{MAX_GPUS:,}"),
    ("fully-connected", "num_gpus", f"{MAX_GPUS:,}"),
    ("ring", "gpus_per_host", "8 GPUs"),  # a host of a ring holds at most the ring's GPUs
    ("explicit", "vertices[0].host", f"{MAX_GPUS:,}"),
]
BANDWIDTHS = [
    ("nvswitch", "nvlink_bw"),
    ("cluster", "nic.bw"),
    ("cluster", "nic.pcie_bw"),
    ("pcie", "pcie_bw"),
    ("pcie", "switch_uplink_bw"),
    ("pcie", "cpu_link_bw"),
    ("nvlink-pairs", "nvlink_bw"),
    ("xgmi", "link_bw"),
    ("ring", "link_bw"),
    ("fully-connected", "link_bw"),
    ("torus", "link_bw"),
    ("explicit", "edges[0].bw"),
]
LATENCIES = [
    ("nvswitch", "nvlink_latency"),
    ("nvswitch", "pcie_latency"),
    ("cluster", "nic.latency"),
    ("cluster", "fabric.link_latency"),
    ("pcie", "pcie_latency"),
    ("pcie", "cpu_link_latency"),
    ("nvlink-pairs", "nvlink_latency"),
    ("xgmi", "link_latency"),
    ("xgmi", "pcie_latency"),
    ("ring", "link_latency"),
    ("torus", "link_latency"),
    ("explicit", "edges[0].latency"),
]


def _with(base: str, field: str, value) -> dict:
    """BASES[base] with the dotted `field` (a list item as name[i]) set to `value`."""
    data = copy.deepcopy(BASES[base])
    node, parts = data, field.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return data


def _refused(data: dict, tmp_path) -> str:
    """The message of refusing `data` written as a file and loaded, checked to name the file
    and to have allocated little before refusing."""
    path = tmp_path / "topo.yaml"
    path.write_text(dump_yaml(data))
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as err:
            load_topology(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < REFUSAL_BYTES, f"{peak / 2**20:.0f} MiB allocated before refusing"
    text = str(err.value)
    assert str(path) in text, text
    return text


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_base_builds(base):
    # The probes below change one field of these; each must be valid as it stands.
    assert topology_from_dict(copy.deepcopy(BASES[base])).num_gpus >= 2


@pytest.mark.parametrize("base, field, bound", COUNTS)
def test_counts_above_their_bound_are_refused_at_their_field(tmp_path, base, field, bound):
    text = _refused(_with(base, field, 10**9), tmp_path)
    assert f"{field}: " in text and bound in text, text


@pytest.mark.parametrize(
    "base, field, bad",
    [
        (base, field, bad)
        for base, field, _ in COUNTS
        for bad in [0, -1, "8", 2.5, True]
        if not (field.endswith(".host") and bad == 0)  # a host index starts at 0
    ],
)
def test_counts_must_be_integers_of_at_least_one(tmp_path, base, field, bad):
    text = _refused(_with(base, field, bad), tmp_path)
    assert f"{field}: expected an integer >=" in text, text


@pytest.mark.parametrize("base, field", BANDWIDTHS)
@pytest.mark.parametrize("bare", [400, 400.0, "400", "1e9"])
def test_a_bandwidth_without_a_unit_is_refused(tmp_path, base, field, bare):
    text = _refused(_with(base, field, bare), tmp_path)
    assert f"{field}: " in text and "no unit" in text and "Gb/s" in text, text


@pytest.mark.parametrize("base, field", BANDWIDTHS)
@pytest.mark.parametrize(
    "slip, fragment",
    [
        ("400 B/s", "outside"),
        ("7 Mb/s", "outside"),
        ("2 PB/s", "outside"),
        ("400 GB", "expected a bandwidth"),
        ("400 Gb", "expected a bandwidth"),
    ],
)
def test_a_bandwidth_out_of_range_or_not_a_rate_is_refused(tmp_path, base, field, slip, fragment):
    # 7 Mb/s = 0.875 MB/s is below the 1 MB/s floor; 2 PB/s above the 1 PB/s ceiling.
    text = _refused(_with(base, field, slip), tmp_path)
    assert f"{field}: " in text and fragment in text, text


@pytest.mark.parametrize("edge", ["8 Mb/s", "1 PB/s"])
def test_the_bandwidth_bounds_are_inclusive(edge):
    # 8 Mb/s = 1e6 B/s (MIN_LINK_BW) and 1 PB/s = 1e15 B/s (MAX_LINK_BW) are still links.
    assert topology_from_dict(_with("ring", "link_bw", edge)).num_gpus == 8


@pytest.mark.parametrize("base, field", LATENCIES)
@pytest.mark.parametrize(
    "slip, fragment",
    [
        (5, "no unit"),
        ("0.35", "no unit"),
        ("2 s", "outside"),
        ("-1 us", "expected a duration"),
        ("0.35 uss", "expected"),
    ],
)
def test_a_latency_needs_a_unit_and_a_sane_size(tmp_path, base, field, slip, fragment):
    text = _refused(_with(base, field, slip), tmp_path)
    assert f"{field}: " in text and fragment in text, text


@pytest.mark.parametrize("bad", [0.5, 65, float("nan"), float("inf"), "2"])
def test_oversubscription_is_a_number_from_1_to_64(tmp_path, bad):
    text = _refused(_with("cluster", "fabric.oversubscription.leaf", bad), tmp_path)
    assert "fabric.oversubscription.leaf: expected a number from 1 to 64" in text, text


# ---- the probes ------------------------------------------------------------------


def test_a_torus_of_a_billion_gpus_is_refused_before_building(tmp_path):
    text = _refused(_with("torus", "dims", [1000, 1000, 1000]), tmp_path)
    assert "dims: " in text and "1,000,000,000 GPUs" in text and f"{MAX_GPUS:,}" in text


@pytest.mark.parametrize(
    "dims", [[2, 10**9], [4], [2, 2, 2, 2], [1, 4], [4, "4"], "4x4", [True, 4]]
)
def test_torus_dims_are_2_or_3_sizes_within_bounds(tmp_path, dims):
    assert "dims: " in _refused(_with("torus", "dims", dims), tmp_path)


def test_a_fully_connected_graph_is_bounded_by_its_edges(tmp_path):
    # n GPUs fully connected: n(n-1) directed edges. 1,025 GPUs: 1,049,600 > 2^20 = 1,048,576.
    assert 1025 * 1024 > MAX_DRAWN_EDGES >= 1024 * 1023
    text = _refused(_with("fully-connected", "num_gpus", 1025), tmp_path)
    assert "num_gpus: " in text and "1,049,600 directed edges" in text
    text = _refused(_with("fully-connected", "num_gpus", 100_000), tmp_path)
    assert "9,999,900,000 directed edges" in text


def test_a_torus_is_bounded_by_its_edges(tmp_path):
    # [128, 128, 64] = 1,048,576 GPUs > MAX_GPUS; [64, 64, 64] = 262,144 GPUs within it, but
    # 3 axes x 2 directed edges each = 1,572,864 edges > 2^20.
    assert "1,572,864 directed edges" in _refused(_with("torus", "dims", [64, 64, 64]), tmp_path)


def test_a_host_of_100000_gpus_is_refused(tmp_path):
    text = _refused(_with("nvswitch", "gpus_per_host", 100_000), tmp_path)
    assert "gpus_per_host: 100,000 is above the maximum 1,024" in text and "NVL576" in text


def test_a_nic_rate_without_a_unit_is_refused_with_an_example(tmp_path):
    text = _refused(_with("cluster", "nic.bw", 400), tmp_path)
    assert "nic.bw: 400 has no unit" in text and "'400 Gb/s'" in text


def test_hosts_times_gpus_above_max_gpus_is_refused(tmp_path):
    # 32,769 hosts x 8 GPUs = 262,152 GPUs > 262,144.
    text = _refused(_with("cluster", "num_hosts", MAX_GPUS // 8 + 1), tmp_path)
    assert "num_hosts: 32,769 hosts x 8 GPUs = 262,152 GPUs" in text


def test_a_fabric_too_large_to_build_is_refused_in_validate_as_in_run(tmp_path):
    # 32,768 hosts with 1,024 NICs each: 2 x 32,768 x 1,024 = 67,108,864 NIC-leaf edges alone.
    data = _with("cluster", "nic.per_host", 1024)
    data["num_hosts"] = 32_768
    text = _refused(data, tmp_path)
    assert "fabric: " in text and "directed edges" in text
    with pytest.raises(UserError, match="directed edges"):
        topology_info(tmp_path / "topo.yaml")
    # The same host count from the caller is the caller's field.
    data["num_hosts"] = 2
    (tmp_path / "topo.yaml").write_text(dump_yaml(data))
    with pytest.raises(UserError) as err:
        topology_info(tmp_path / "topo.yaml", 32_768)
    assert err.value.problems[0].path == "num_hosts" and "directed edges" in str(err.value)


def test_an_explicit_edge_bandwidth_needs_a_unit(tmp_path):
    assert "edges[0].bw: 400 has no unit" in _refused(
        _with("explicit", "edges[0].bw", 400), tmp_path
    )


# ---- the same refusals through the command line, exit 2 -----------------------------------

PROBES = {
    "torus": _with("torus", "dims", [1000, 1000, 1000]),
    "full": _with("fully-connected", "num_gpus", 100_000),
    "host": _with("nvswitch", "gpus_per_host", 100_000),
    "nic": _with("cluster", "nic.bw", 400),
}
FIELDS = {"torus": "dims", "full": "num_gpus", "host": "gpus_per_host", "nic": "nic.bw"}


@pytest.mark.parametrize("probe", sorted(PROBES))
@pytest.mark.parametrize("command", ["topology show", "validate", "run"])
def test_the_cli_refuses_each_probe_with_exit_2(tmp_path, capsys, probe, command):
    topo = tmp_path / f"{probe}.yaml"
    topo.write_text(dump_yaml(PROBES[probe]))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        dump_yaml(
            {
                "name": "s",
                "model": {"preset": "llama2-7b"},
                "training": {
                    "precision": "bf16-mixed",
                    "optimizer": "adamw",
                    "strategy": "zero3",
                    "micro_batch_size": 1,
                    "seq_len": 4096,
                },
                "cluster": {"topology": f"./{probe}.yaml"},
            }
        )
    )
    argv = (
        ["topology", "show", str(topo)] if command == "topology show" else [command, str(scenario)]
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{probe}.yaml: {FIELDS[probe]}: " in err, err
