"""Multi-host clusters: copies of one host tiled into arrays, joined by a fat tree.

Nothing here is per vertex or per edge in Python: a 16,384-host cluster has over a million
directed edges, so each layer (host copies, NIC-leaf, leaf-spine, spine-core cables) is one
block of numpy arrays. Vertex and edge order (hence every edge index) is host-major: all of
host 0's vertices and edges, then host 1's, ...; then leaves, spines and cores, and the
NIC-leaf, leaf-spine and spine-core cables, each cable as its up edge then its down edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.core.errors import Problem
from simulator.system.topology.builders.built import (
    LINK_CODE,
    VERTEX_CODE,
    Built,
    FabricIndex,
    Sketch,
)
from simulator.system.topology.builders.limits import (
    MAX_FABRIC_EDGES,
    MAX_FANOUT,
    MAX_GPUS,
    MAX_OVERSUBSCRIPTION,
)
from simulator.system.topology.builders.params import Params
from simulator.system.topology.names import ReplicatedNames


@dataclass
class _Tiled:
    """A graph assembled as array blocks: hosts tiled from a template, then switch levels."""

    template: Sketch
    hosts: int
    levels: list[tuple[str, int]] = field(default_factory=list)
    vertex_blocks: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # kind, host
    edge_blocks: list[tuple[np.ndarray, ...]] = field(
        default_factory=list
    )  # src, dst, bw, lat, link
    num_vertices: int = 0
    num_edges: int = 0

    def switches(self, kind: str, count: int) -> int:
        """`count` switch vertices named kind0, kind1, ...; the index of the first."""
        first = self.num_vertices
        self.levels.append((kind, count))
        self.vertex_blocks.append(
            (np.full(count, VERTEX_CODE[kind], np.int8), np.full(count, -1, np.int64))
        )
        self.num_vertices += count
        return first

    def cables(self, a: np.ndarray, b: np.ndarray, bw: float, lat: float, kind: str) -> np.ndarray:
        """Duplex cables a[i] <-> b[i], each as edge a->b then b->a; the a->b edge indices."""
        n = len(a)
        up = self.num_edges + 2 * np.arange(n, dtype=np.int64)
        src, dst = np.stack([a, b], axis=1).ravel(), np.stack([b, a], axis=1).ravel()
        self.edge_blocks.append(
            (
                src,
                dst,
                np.full(2 * n, bw, float),
                np.full(2 * n, lat, float),
                np.full(2 * n, LINK_CODE[kind], np.int8),
            )
        )
        self.num_edges += 2 * n
        return up

    def built(self, fabric: FabricIndex | None = None) -> Built:
        t, local_names = self.template, self.template.names()
        local = np.array([local_names.index(g) for g in t.gpu_ids], np.int64)
        kinds, hosts = (np.concatenate(parts) for parts in zip(*self.vertex_blocks))
        src, dst, bw, lat, link = (np.concatenate(parts) for parts in zip(*self.edge_blocks))
        gpu_vertex = (
            np.arange(self.hosts, dtype=np.int64)[:, None] * len(local_names) + local
        ).ravel()
        names = ReplicatedNames(
            local=tuple(local_names), hosts=self.hosts, levels=tuple(self.levels)
        )
        return Built(
            names=names,
            vertex_kind=kinds,
            vertex_host=hosts,
            src=src,
            dst=dst,
            bw=bw,
            latency=lat,
            link=link,
            gpu_vertex=gpu_vertex,
            gpus_per_host=t.gpus_per_host,
            num_hosts=self.hosts,
            fabric=fabric,
            nvls=t.nvls,
            mesh=t.mesh,
        )


def replicate(template: Sketch, hosts: int) -> _Tiled:
    """`hosts` copies of a host (names prefixed 'h{i}.'), vertices and edges laid out host-major."""
    src, dst, bw, lat, link = template.edge_arrays()
    kinds, _ = template.vertex_arrays()
    offset = np.arange(hosts, dtype=np.int64)[:, None] * len(template.vertices)
    out = _Tiled(
        template=template, hosts=hosts, num_vertices=hosts * len(kinds), num_edges=hosts * len(src)
    )
    host_of_vertex = np.repeat(np.arange(hosts, dtype=np.int64), len(kinds))
    out.vertex_blocks.append((np.tile(kinds, hosts), host_of_vertex))
    out.edge_blocks.append(
        (
            (offset + src).ravel(),
            (offset + dst).ravel(),
            np.tile(bw, hosts),
            np.tile(lat, hosts),
            np.tile(link, hosts),
        )
    )
    return out


def fabric_params(f: Params, hosts: int) -> dict:
    levels = f.choice("levels", (2, 3), 2)
    fanout = f"at most {MAX_FANOUT:,}: no switch has over 512 ports (Broadcom Tomahawk 5)"
    out = {
        "levels": levels,
        "rail_optimized": f.bool("rail_optimized", True),
        "hosts_per_leaf": f.int("hosts_per_leaf", 32, maximum=MAX_FANOUT, why=fanout),
        "link_latency_s": f.duration("link_latency", 0.6e-6),
        "link_kind": f.choice("link_kind", ("ib", "ethernet", "efa"), "ib"),
        # InfiniBand SHARP: the switches aggregate reductions (NCCL's CollNet algorithms).
        "sharp": f.bool("sharp", False),
    }
    out["spines"] = f.int("spines", out["hosts_per_leaf"], maximum=MAX_FANOUT, why=fanout)
    over = f.sub("oversubscription", required=False)
    out["over_leaf"] = (
        over.float("leaf", 1.0, minimum=1.0, maximum=MAX_OVERSUBSCRIPTION) if over else 1.0
    )
    out["over_spine"] = (
        over.float("spine", 1.0, minimum=1.0, maximum=MAX_OVERSUBSCRIPTION) if over else 1.0
    )
    if over:
        over.finish()
    out["hosts_per_pod"] = max(hosts, 1)
    if levels == 3:
        out["hosts_per_pod"] = f.int(
            "hosts_per_pod",
            max(hosts, 1),
            maximum=MAX_GPUS,
            why=f"clustersim builds up to {MAX_GPUS:,} GPUs",
        )
    out["cores_per_spine"] = (
        f.int("cores_per_spine", 8, maximum=MAX_FANOUT, why=fanout) if levels == 3 else 0
    )
    f.finish()
    if out["hosts_per_pod"] % out["hosts_per_leaf"] and levels == 3:
        f.problems.append(Problem(f.where("hosts_per_pod"), "must be a multiple of hosts_per_leaf"))
    return out


@dataclass(frozen=True, kw_only=True)
class _Shape:
    """The fat tree's counts, and the figures every level's cables share."""

    hosts: int
    rails: int
    hosts_per_leaf: int
    hosts_per_pod: int
    spines: int  # per pod
    cores: int  # per spine group
    rail_optimized: bool  # one leaf per rail in each block of hosts_per_leaf hosts
    lat: float
    kind: str

    @property
    def leaves_per_block(self) -> int:
        return self.rails if self.rail_optimized else 1

    @property
    def blocks(self) -> int:
        return -(-self.hosts // self.hosts_per_leaf)

    @property
    def pods(self) -> int:
        return -(-self.hosts // self.hosts_per_pod)

    @property
    def leaves(self) -> int:
        return self.blocks * self.leaves_per_block

    def edges(self, host_edges: int) -> int:
        """Directed edges of the whole fat tree as fat_tree() builds it, counted before building."""
        n = self.hosts * host_edges + 2 * self.hosts * self.rails
        if self.blocks > 1:
            n += 2 * self.leaves * self.spines
            n += 2 * self.pods * self.spines * self.cores if self.pods > 1 else 0
        return n


def _shape(fp: dict, hosts: int, rails: int) -> _Shape:
    hpl = fp["hosts_per_leaf"]
    return _Shape(
        hosts=hosts,
        rails=rails,
        hosts_per_leaf=hpl,
        hosts_per_pod=-(-min(fp["hosts_per_pod"], hosts) // hpl) * hpl,
        spines=fp["spines"],
        cores=fp["cores_per_spine"],
        rail_optimized=fp["rail_optimized"],
        lat=fp["link_latency_s"],
        kind=fp["link_kind"],
    )


def fabric_size_problem(
    host_edges: int, rails: int, hosts: int, fp: dict, where: str
) -> Problem | None:
    """Why `hosts` hosts of `host_edges` edges and `rails` NICs in this fabric are too large to
    build (over MAX_FABRIC_EDGES directed edges), or None."""
    edges = _shape(fp, hosts, rails).edges(host_edges)
    if edges <= MAX_FABRIC_EDGES:
        return None
    return Problem(
        where,
        f"{hosts:,} hosts ({host_edges:,} edges each, {rails} NICs) in this fabric make "
        f"{edges:,} directed edges; clustersim builds fat trees of up to {MAX_FABRIC_EDGES:,}",
        "fewer hosts, NICs or spines (cores_per_spine)",
    )


def fat_tree(template: Sketch, pxn: bool, hosts: int, nic: Params, f: Params) -> Built:
    """Rail-optimized leaf/spine(/core) fat tree; each level's uplinks are its downlinks / oversubscription."""
    nic_bw, nic_lat = nic.bw("bw"), nic.duration("latency", 0.0)
    nic.finish()
    fp = fabric_params(f, hosts)
    rails = sum(1 for _, k, _ in template.vertices if k == "nic")
    too_large = fabric_size_problem(len(template.edges), rails, hosts, fp, f.path)
    if too_large or f.problems:  # refused before building: nothing large is allocated
        f.problems.extend([too_large] if too_large else [])
        return replicate(template, 1).built()
    g, hpl = replicate(template, hosts), fp["hosts_per_leaf"]
    s = _shape(fp, hosts, rails)
    nic_up, leaf0 = _add_leaves(g, s, nic_bw, nic_lat)
    index = {
        "host_edge_count": len(template.edges),
        "template": template,
        "pxn": pxn,
        "hosts_per_leaf": hpl,
        "sharp": fp["sharp"],
        "hosts_per_pod": s.hosts_per_pod,
        "rail_optimized": s.rail_optimized,
        "nic_up": nic_up,
        "nic_down": nic_up + 1,
        "rail_of_gpu": np.arange(template.gpus_per_host) * rails // template.gpus_per_host,
    }
    no_cores = np.zeros((s.pods, 0 if s.blocks == 1 else s.spines, 0), np.int64)
    # Traffic never leaves its rail (see FabricRouter), so one leaf block needs no spines and
    # one pod no cores: those levels are only built when something can cross them.
    if s.blocks == 1:
        no_spines = np.zeros((s.leaves, 0), np.int64)
        return g.built(
            FabricIndex(
                **index,
                leaf_spine=no_spines,
                spine_leaf=no_spines,
                spine_core=no_cores,
                core_spine=no_cores,
            )
        )
    # Leaf down capacity = ports x NIC rate; up = down / oversubscription, spread over the spines.
    leaf_up_bw = hpl * (rails // s.leaves_per_block) * nic_bw / fp["over_leaf"] / s.spines
    leaf_spine, spine0 = _add_spines(g, s, leaf0, leaf_up_bw)
    index.update(leaf_spine=leaf_spine, spine_leaf=leaf_spine + 1)
    if s.pods == 1 or fp["levels"] == 2:
        return g.built(FabricIndex(**index, spine_core=no_cores, core_spine=no_cores))
    # Spine down capacity = its leaf links; up = down / oversubscription, spread over its cores.
    spine_up_bw = (
        (s.hosts_per_pod // hpl) * s.leaves_per_block * leaf_up_bw / fp["over_spine"] / s.cores
    )
    spine_core = _add_cores(g, s, spine0, spine_up_bw)
    return g.built(FabricIndex(**index, spine_core=spine_core, core_spine=spine_core + 1))


def _add_leaves(g: _Tiled, s: _Shape, nic_bw: float, nic_lat: float) -> tuple[np.ndarray, int]:
    """The leaves, and a cable from every host's NIC r to its block's leaf (rail r's, if
    rail-optimized); the NIC -> leaf edge indices [host, rail] and the first leaf's vertex."""
    leaf0 = g.switches("leaf", s.leaves)
    host, rail = np.divmod(np.arange(s.hosts * s.rails, dtype=np.int64), s.rails)
    names = g.template.names()
    nic_local = np.array([names.index(f"nic{r}") for r in range(s.rails)], np.int64)
    block = host // s.hosts_per_leaf
    leaf = block * s.rails + rail if s.rail_optimized else block
    up = g.cables(
        host * len(names) + nic_local[rail], leaf0 + leaf, nic_bw, nic_lat + s.lat, s.kind
    )
    return up.reshape(s.hosts, s.rails), leaf0


def _add_spines(g: _Tiled, s: _Shape, leaf0: int, bw: float) -> tuple[np.ndarray, int]:
    """`spines` spines per pod, each cabled to every leaf of its pod; the leaf -> spine edge
    indices [leaf, spine-in-pod] and the first spine's vertex index."""
    spine0 = g.switches("spine", s.pods * s.spines)
    leaf, sp = np.divmod(np.arange(s.leaves * s.spines, dtype=np.int64), s.spines)
    pod = (leaf // s.leaves_per_block) * s.hosts_per_leaf // s.hosts_per_pod
    up = g.cables(leaf0 + leaf, spine0 + pod * s.spines + sp, bw, s.lat, s.kind)
    return up.reshape(s.leaves, s.spines), spine0


def _add_cores(g: _Tiled, s: _Shape, spine0: int, bw: float) -> np.ndarray:
    """Core group s (cores_per_spine cores) joins spine s of every pod, as in a k-ary fat tree;
    the spine -> core edge indices [pod, spine-in-pod, core-in-group]."""
    core0 = g.switches("core", s.spines * s.cores)
    pod, sp, c = (x.ravel() for x in np.indices((s.pods, s.spines, s.cores), dtype=np.int64))
    up = g.cables(spine0 + pod * s.spines + sp, core0 + sp * s.cores + c, bw, s.lat, s.kind)
    return up.reshape(s.pods, s.spines, s.cores)
