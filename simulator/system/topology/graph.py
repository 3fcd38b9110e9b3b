"""Interconnect topologies: the built graph as per-edge numpy arrays, and its routes.

A topology file names a builder and its parameters (builders/); loading it (loader.py)
gives a `Topology`: vertex and directed-edge arrays (endpoints, bandwidth, latency, link
kind) indexed by number, so collective costs and the fluid network never touch a graph or a
name in their inner loops. Names (`vertices`, `edges`, `gpu_ids`, `route()`, `graph`) are
computed on each call from the topology's naming scheme (names.py): only inspection asks for
them, and a 131,072-GPU cluster has over a million edges. Simulation state never lives on
the topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.system.topology.builders import LINK_KINDS, VERTEX_KINDS, FabricIndex
from simulator.system.topology.names import VertexNames

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True, eq=False, kw_only=True)
class Topology:
    """A built interconnect (read-only; caches key on its identity)."""

    name: str
    description: str
    source: str
    gpu: str
    builder: str
    names: VertexNames = field(repr=False)  # vertex index <-> name, computed on demand
    vertex_kind: np.ndarray = field(repr=False)  # code into VERTEX_KINDS, per vertex
    vertex_host: np.ndarray = field(repr=False)  # host index per vertex, -1 outside hosts
    edge_src: np.ndarray = field(repr=False)  # vertex index per directed edge
    edge_dst: np.ndarray = field(repr=False)
    bw_bytes_per_s: np.ndarray = field(repr=False)
    latency_s: np.ndarray = field(repr=False)
    link_code: np.ndarray = field(repr=False)  # code into LINK_KINDS, per edge
    gpu_vertex: np.ndarray = field(repr=False)  # vertex index of each GPU, by rank index
    gpus_per_host: int
    num_hosts: int
    hosts: np.ndarray = field(repr=False)  # host index of every GPU, by rank index
    router: Any = field(repr=False)
    fabric: FabricIndex | None = field(default=None, repr=False)
    nvls: bool = False  # each host's NVSwitch does NVLink SHARP (builders: nvswitch `nvls`)
    mesh: bool = False  # each host's GPUs are joined pairwise by direct links (builder xgmi)

    @property
    def sharp(self) -> bool:
        """The fabric's switches reduce in the network (InfiniBand SHARP)."""
        return self.fabric is not None and self.fabric.sharp

    @property
    def num_gpus(self) -> int:
        return len(self.hosts)

    @property
    def num_edges(self) -> int:
        return len(self.bw_bytes_per_s)

    @property
    def link_kind(self) -> np.ndarray:
        """The link kind (a string) of every edge."""
        return np.array(LINK_KINDS, dtype=object)[self.link_code]

    @property
    def vertices(self) -> tuple[tuple[str, str, int], ...]:
        """(name, kind, host or -1) of every vertex, in vertex order."""
        kinds = [VERTEX_KINDS[k] for k in self.vertex_kind.tolist()]
        return tuple(zip(self.names.all(), kinds, self.vertex_host.tolist()))

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """(source name, target name) of every directed edge, by edge index."""
        names = self.names.all()
        return tuple(
            (names[u], names[v]) for u, v in zip(self.edge_src.tolist(), self.edge_dst.tolist())
        )

    @property
    def gpu_ids(self) -> tuple[str, ...]:
        """GPU vertex names in rank order."""
        return tuple(self.names.name(v) for v in self.gpu_vertex.tolist())

    @property
    def graph(self) -> nx.DiGraph:
        """A networkx DiGraph of the topology (vertex kind and host; edge bandwidth, latency,
        kind, index), built anew on each call: nothing in the simulation needs it."""
        import networkx as nx  # inspection only; keeps it out of every run's import time

        g = nx.DiGraph()
        g.add_nodes_from((n, {"kind": k, "host": h}) for n, k, h in self.vertices)
        g.add_edges_from(
            (u, v, {"bw_bytes_per_s": float(bw), "latency_s": float(lat), "kind": kind, "index": i})
            for i, ((u, v), bw, lat, kind) in enumerate(
                zip(self.edges, self.bw_bytes_per_s, self.latency_s, self.link_kind)
            )
        )
        return g

    def find_gpu(self, name: str) -> int | None:
        """The rank index of the GPU called `name`, or None."""
        vertex = self.names.index(name)
        if vertex is None:
            return None
        ranks = np.flatnonzero(self.gpu_vertex == vertex)
        return int(ranks[0]) if len(ranks) else None

    def gpu_index(self, gpu: str) -> int:
        index = self.find_gpu(gpu)
        if index is None:
            raise KeyError(gpu)
        return index

    def host_of(self, gpu: str | int) -> int:
        """Host index of a GPU (vertex name or rank index)."""
        if isinstance(gpu, (int, np.integer)):
            return int(self.hosts[gpu])
        vertex = self.names.index(gpu)
        if vertex is None:
            raise KeyError(gpu)
        return int(self.vertex_host[vertex])

    def gpus_of_host(self, host: int) -> tuple[str, ...]:
        return tuple(self.names.name(v) for v in self.gpu_vertex[self.hosts == host].tolist())

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Routes for transfers src[i] -> dst[i] (GPU indices): parallel arrays (transfer index,
        edge index, share of the transfer's bytes on that edge), spread by the routing policy."""
        return self.router.routes(np.asarray(src, np.int64), np.asarray(dst, np.int64))

    def route(self, src: str, dst: str) -> list[tuple[str, str]]:
        """The directed edges one flow from GPU `src` to GPU `dst` takes, in order (the first of
        a transfer's flows, where the routing policy spreads it)."""
        one = (np.array([self.gpu_index(src)]), np.array([self.gpu_index(dst)]))
        _, eids, _ = self.router.routes(*one, spread=False)
        name = self.names.name
        edges = [(name(self.edge_src[e]), name(self.edge_dst[e])) for e in eids.tolist()]
        return _order_path(edges, src)


def _order_path(edges: list[tuple[str, str]], src: str) -> list[tuple[str, str]]:
    nxt = {u: (u, v) for u, v in edges}
    out, at = [], src
    while at in nxt:
        out.append(nxt[at])
        at = nxt.pop(at)[1]
    return out
