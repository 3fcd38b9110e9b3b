"""Interconnect topologies: the built graph as per-edge numpy arrays, and its routes.

A topology file names a builder and its parameters (builders.py); loading it (loader.py)
gives a `Topology`: vertices, directed edges and per-edge arrays (bandwidth, latency, link
kind) indexed by edge index, so collective costs and the fluid network never touch a graph
in their inner loops. `graph` builds a networkx DiGraph of it for inspection. Simulation
state never lives on the topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from simulator.system.topology.builders import FabricIndex


@dataclass(frozen=True, eq=False, kw_only=True)
class Topology:
    """A built interconnect (read-only; caches key on its identity)."""

    name: str
    description: str
    source: str
    gpu: str
    builder: str
    vertices: tuple[tuple[str, str, Any], ...]  # (name, kind, host index or -1)
    gpu_ids: tuple[str, ...]
    gpus_per_host: int
    num_hosts: int
    edges: tuple[tuple[str, str], ...]
    bw_bytes_per_s: np.ndarray
    latency_s: np.ndarray
    link_kind: np.ndarray
    hosts: np.ndarray  # host index of every GPU, by rank index
    router: Any = field(repr=False)
    fabric: FabricIndex | None = None
    _host: dict = field(default_factory=dict, repr=False)
    _index: dict = field(default_factory=dict, repr=False)

    @property
    def graph(self) -> nx.DiGraph:
        """A networkx DiGraph of the topology (vertex kind and host; edge bandwidth, latency,
        kind, index), built anew on each call: nothing in the simulation needs it."""
        g = nx.DiGraph()
        g.add_nodes_from((n, {"kind": k, "host": h}) for n, k, h in self.vertices)
        g.add_edges_from(
            (u, v, {"bw_bytes_per_s": float(bw), "latency_s": float(lat), "kind": kind, "index": i})
            for i, ((u, v), bw, lat, kind) in enumerate(
                zip(self.edges, self.bw_bytes_per_s, self.latency_s, self.link_kind)))
        return g

    @property
    def num_gpus(self) -> int:
        return len(self.gpu_ids)

    def host_of(self, gpu: str | int) -> int:
        """Host index of a GPU (vertex name or rank index)."""
        name = self.gpu_ids[gpu] if isinstance(gpu, (int, np.integer)) else gpu
        return self._host[name]

    def gpu_index(self, gpu: str) -> int:
        return self._index[gpu]

    def gpus_of_host(self, host: int) -> tuple[str, ...]:
        return tuple(g for g in self.gpu_ids if self._host[g] == host)

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Routes for flows src[i] -> dst[i] (GPU indices): parallel arrays (flow index, edge index)."""
        return self.router.routes(np.asarray(src, np.int64), np.asarray(dst, np.int64))

    def route(self, src: str, dst: str) -> list[tuple[str, str]]:
        """The directed edges one flow from GPU `src` to GPU `dst` takes, in order."""
        _, eids = self.routes(np.array([self._index[src]]), np.array([self._index[dst]]))
        return _order_path([self.edges[e] for e in eids], src)


def _order_path(edges: list[tuple[str, str]], src: str) -> list[tuple[str, str]]:
    nxt = {u: (u, v) for u, v in edges}
    out, at = [], src
    while at in nxt:
        out.append(nxt[at])
        at = nxt.pop(at)[1]
    return out

