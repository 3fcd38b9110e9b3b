"""What builders produce: a `Sketch` drawn vertex by vertex (small graphs), and the `Built`
arrays every topology ends as (large fat trees are tiled straight into arrays, see fabric.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.system.topology.names import ListedNames, VertexNames

VERTEX_KINDS = ("gpu", "nvswitch", "pcie_switch", "cpu", "nic", "leaf", "spine", "core")
# New kinds are appended (codes are positions). efa: AWS Elastic Fabric Adapter; xgmi: AMD
# Infinity Fabric between GPUs.
LINK_KINDS = ("nvlink", "pcie", "cpu_link", "ib", "ethernet", "ideal", "efa", "xgmi")
VERTEX_CODE = {k: i for i, k in enumerate(VERTEX_KINDS)}
LINK_CODE = {k: i for i, k in enumerate(LINK_KINDS)}


@dataclass
class Sketch:
    """A small graph drawn vertex by vertex: one host, a research shape or an explicit file."""

    vertices: list[tuple[str, str, int]] = field(default_factory=list)  # name, kind, host
    edges: list[tuple[str, str, float, float, str]] = field(
        default_factory=list
    )  # u, v, bw, lat, kind
    gpu_ids: list[str] = field(default_factory=list)
    gpus_per_host: int = 1
    num_hosts: int = 1
    nvls: bool = False  # the host's NVSwitch does NVLink SHARP (multicast and in-switch reduction)
    mesh: bool = False  # the host's GPUs are joined pairwise by direct links (no switch)

    def vertex(self, name: str, kind: str, host: int = -1) -> str:
        self.vertices.append((name, kind, host))
        return name

    def edge(self, a: str, b: str, bw_bytes_per_s: float, latency_s: float, kind: str) -> None:
        """One directed edge."""
        self.edges.append((a, b, bw_bytes_per_s, latency_s, kind))

    def cable(self, a: str, b: str, bw_bytes_per_s: float, latency_s: float, kind: str) -> None:
        """A full-duplex cable: one directed edge each way with the same per-direction figures."""
        self.edge(a, b, bw_bytes_per_s, latency_s, kind)
        self.edge(b, a, bw_bytes_per_s, latency_s, kind)

    def names(self) -> list[str]:
        return [n for n, _, _ in self.vertices]

    def edge_arrays(self) -> tuple[np.ndarray, ...]:
        """(src, dst, bw, latency, link code) per edge, vertices by their index in `vertices`."""
        vid = {n: i for i, (n, _, _) in enumerate(self.vertices)}
        n = len(self.edges)
        src = np.fromiter((vid[e[0]] for e in self.edges), np.int64, n)
        dst = np.fromiter((vid[e[1]] for e in self.edges), np.int64, n)
        bw = np.fromiter((e[2] for e in self.edges), float, n)
        lat = np.fromiter((e[3] for e in self.edges), float, n)
        link = np.fromiter((LINK_CODE[e[4]] for e in self.edges), np.int8, n)
        return src, dst, bw, lat, link

    def vertex_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(kind code, host) per vertex."""
        kinds = np.array([VERTEX_CODE[k] for _, k, _ in self.vertices], np.int8)
        return kinds, np.array([h for _, _, h in self.vertices], np.int64)

    def gpu_vertices(self) -> np.ndarray:
        vid = {n: i for i, (n, _, _) in enumerate(self.vertices)}
        return np.array([vid[g] for g in self.gpu_ids], np.int64)

    def built(self) -> Built:
        """The sketch as arrays, its names listed."""
        src, dst, bw, lat, link = self.edge_arrays()
        kinds, hosts = self.vertex_arrays()
        return Built(
            names=ListedNames(listed=tuple(self.names())),
            vertex_kind=kinds,
            vertex_host=hosts,
            src=src,
            dst=dst,
            bw=bw,
            latency=lat,
            link=link,
            gpu_vertex=self.gpu_vertices(),
            gpus_per_host=self.gpus_per_host,
            num_hosts=self.num_hosts,
            nvls=self.nvls,
            mesh=self.mesh,
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class Built:
    """A builder's output as arrays: vertices, directed edges (a duplex cable is two) and the
    GPUs in rank order (host-major); names are computed on demand from `names`."""

    names: VertexNames
    vertex_kind: np.ndarray  # code into VERTEX_KINDS, per vertex
    vertex_host: np.ndarray  # host index, or -1 for switches outside hosts
    src: np.ndarray  # vertex index, per edge
    dst: np.ndarray
    bw: np.ndarray  # bytes/s per direction
    latency: np.ndarray  # seconds
    link: np.ndarray  # code into LINK_KINDS
    gpu_vertex: np.ndarray  # vertex index of each GPU, in rank order
    gpus_per_host: int
    num_hosts: int
    fabric: FabricIndex | None = None
    nvls: bool = False
    mesh: bool = False

    @property
    def num_vertices(self) -> int:
        return len(self.vertex_kind)


@dataclass(frozen=True, eq=False, kw_only=True)
class FabricIndex:
    """Edge indices of a (rail-optimized) fat tree, for the closed-form router (routing.py)."""

    host_edge_count: int  # edges per host; host h's k-th edge has index h*count + k
    template: Sketch  # one host's vertices/edges with local names (gpu0, nic0, ...)
    rail_of_gpu: np.ndarray  # local GPU -> NIC (rail) index
    pxn: bool  # inter-host traffic enters the destination's rail over NVLink
    hosts_per_leaf: int
    hosts_per_pod: int
    rail_optimized: bool
    nic_up: np.ndarray  # [host, rail] nic -> leaf
    nic_down: np.ndarray  # [host, rail] leaf -> nic
    leaf_spine: np.ndarray  # [leaf, spine-in-pod]; no columns for one leaf block
    spine_leaf: np.ndarray
    spine_core: np.ndarray  # [pod, spine-in-pod, core-in-group]; empty below three levels
    core_spine: np.ndarray
    sharp: bool = False  # the switches reduce in the network (InfiniBand SHARP: NCCL's CollNet)

    def leaf_of(self, host: np.ndarray, rail: np.ndarray) -> np.ndarray:
        block = host // self.hosts_per_leaf
        rails = self.nic_up.shape[1]
        return block * rails + rail if self.rail_optimized else block
