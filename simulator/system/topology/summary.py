"""A topology's summary: GPUs, hosts, vertices and links by kind, bisection bandwidth."""

from __future__ import annotations

import networkx as nx

from simulator.system.topology.graph import Topology


def summary(topo: Topology) -> dict:
    """GPUs, hosts, vertices and links by kind, and bisection bandwidth per GPU (bytes/s)."""
    vertex_kinds: dict[str, int] = {}
    for _, kind in topo.graph.nodes(data="kind"):
        vertex_kinds[kind] = vertex_kinds.get(kind, 0) + 1
    links: dict[str, dict] = {}
    for kind, bw in zip(topo.link_kind, topo.bw_bytes_per_s):
        row = links.setdefault(
            kind, {"edges": 0, "min_bw_bytes_per_s": bw, "max_bw_bytes_per_s": bw}
        )
        row["edges"] += 1
        row["min_bw_bytes_per_s"] = min(row["min_bw_bytes_per_s"], bw)
        row["max_bw_bytes_per_s"] = max(row["max_bw_bytes_per_s"], bw)
    return {
        "name": topo.name,
        "gpu": topo.gpu,
        "gpus": topo.num_gpus,
        "hosts": topo.num_hosts,
        "gpus_per_host": topo.gpus_per_host,
        "vertices": vertex_kinds,
        "links": links,
        "bisection_bw_per_gpu_bytes_per_s": bisection_bw_per_gpu(topo),
        "source": topo.source,
    }


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
    if len(topo.edges) > 20000:
        return None
    g = nx.DiGraph()
    for (u, v), bw in zip(topo.edges, topo.bw_bytes_per_s):
        g.add_edge(u, v, capacity=float(bw))
    for x in topo.gpu_ids[: n // 2]:
        g.add_edge("__src", x)
    for x in topo.gpu_ids[n // 2 :]:
        g.add_edge(x, "__dst")
    return nx.maximum_flow_value(g, "__src", "__dst") / (n // 2)


def _fabric_bisection(topo: Topology) -> float:
    """Total capacity of each fabric layer a cut through the middle must cross, halved; the narrowest."""
    f, bw = topo.fabric, topo.bw_bytes_per_s
    layers = [bw[f.nic_up].sum()]
    if topo.num_hosts > f.hosts_per_leaf:
        layers.append(bw[f.leaf_spine].sum())
    if f.spine_core.size and topo.num_hosts > f.hosts_per_pod:
        layers.append(bw[f.spine_core].sum())
    return float(min(layers)) / 2

