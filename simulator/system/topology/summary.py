"""A topology's summary: GPUs, hosts, vertices and links by kind, bisection bandwidth."""

from __future__ import annotations

import numpy as np

from simulator.system.topology.builders import LINK_KINDS, VERTEX_KINDS
from simulator.system.topology.graph import Topology


def summary(topo: Topology) -> dict:
    """GPUs, hosts, vertices and links by kind, and bisection bandwidth per GPU (bytes/s)."""
    vertex_kinds = {VERTEX_KINDS[k]: int(n) for k, n in _by_first_seen(topo.vertex_kind)}
    links: dict[str, dict] = {}
    for code, n in _by_first_seen(topo.link_code):
        bw = topo.bw_bytes_per_s[topo.link_code == code]
        links[LINK_KINDS[code]] = {
            "edges": int(n),
            "min_bw_bytes_per_s": bw.min(),
            "max_bw_bytes_per_s": bw.max(),
        }
    return {
        "name": topo.name,
        "gpu": topo.gpu,
        "gpus": topo.num_gpus,
        "hosts": topo.num_hosts,
        "gpus_per_host": topo.gpus_per_host,
        "vertices": vertex_kinds,
        "links": links,
        "bisection_bw_per_gpu_bytes_per_s": bisection_bw_per_gpu(topo),
        # In-network reduction: NVLink SHARP in the hosts' NVSwitches, IB SHARP in the fabric.
        "nvls": topo.nvls,
        "sharp": topo.sharp,
        # How a transfer between hosts spreads over equal-cost paths (routing.py).
        "routing": {
            "policy": topo.router.routing.policy,
            "flows_per_pair": topo.router.routing.flows_per_pair,
        },
        "source": topo.source,
    }


def _by_first_seen(codes: np.ndarray) -> list[tuple[int, int]]:
    """(code, count) of each code present, in order of first appearance."""
    values, first, counts = np.unique(codes, return_index=True, return_counts=True)
    return [(int(values[i]), int(counts[i])) for i in np.argsort(first)]


def bisection_bw_per_gpu(topo: Topology) -> float | None:
    """Capacity of the cut between the first and second half of the GPUs (rank order), per GPU.

    Max-flow on the graph where it is small; for multi-host fat trees, half the capacity of
    the narrowest of the NIC, leaf-uplink and spine-uplink layers (the fabric is symmetric,
    so any balanced cut crosses half of each layer). None for one GPU.
    """
    n = topo.num_gpus
    if n < 2:
        return None
    if topo.fabric is not None and topo.num_hosts > 1:
        return _fabric_bisection(topo) / (n // 2)
    if topo.num_edges > 20000:
        return None
    import networkx as nx  # inspection only; keeps it out of every run's import time

    g = nx.DiGraph()
    for (u, v), bw in zip(topo.edges, topo.bw_bytes_per_s):
        g.add_edge(u, v, capacity=float(bw))
    gpus = topo.gpu_ids
    for x in gpus[: n // 2]:
        g.add_edge("__src", x)
    for x in gpus[n // 2 :]:
        g.add_edge(x, "__dst")
    return nx.maximum_flow_value(g, "__src", "__dst") / (n // 2)


def _fabric_bisection(topo: Topology) -> float:
    """Total capacity of each fabric layer a cut through the middle must cross, halved; the narrowest."""
    f, bw = topo.fabric, topo.bw_bytes_per_s
    assert f is not None, "called for fabric topologies only"
    layers = [bw[f.nic_up].sum()]
    if topo.num_hosts > f.hosts_per_leaf:
        layers.append(bw[f.leaf_spine].sum())
    if f.spine_core.size and topo.num_hosts > f.hosts_per_pod:
        layers.append(bw[f.spine_core].sum())
    return float(min(layers)) / 2
