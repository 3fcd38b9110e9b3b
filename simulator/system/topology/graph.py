"""Interconnect topologies as networkx directed graphs, plus routing.

A topology file (topologies/NAME.yaml) names a builder and its parameters; builders live in
topology_builders.py. The result is a `Topology`: the DiGraph (vertex attribute `kind`,
`host`; edge attributes `bw_bytes_per_s`, `latency_s`, `kind`, `index`) plus numpy arrays
indexed by edge index, so collective costs and the fluid network never touch the graph in
their inner loops. Simulation state never lives on the graph.

Routing. Routes are shortest paths in hops. Where several equal-cost next hops exist
(spines of a fat tree, the two ways round a ring of even length, torus dimensions) a
flow's next hop is picked by `ecmp_hash(src, dst, hop)` modulo the number of choices: a
fixed multiplicative hash, so runs are reproducible, all packets of one (src, dst) pair
follow one path (per-flow ECMP, as switches hash a flow's header), and different pairs
spread evenly. Multi-host fat trees use a closed-form router with the same rule, plus
NCCL's PXN (since NCCL 2.12): traffic to another host first crosses NVLink to the local
GPU on the destination GPU's rail, so the fabric path stays inside that rail.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from simulator.core.resources import topology_dir
from simulator.core.errors import Problem, ScenarioError, did_you_mean
from simulator.system.topology.builders import TOPOLOGY_BUILDERS, Built, FabricIndex, Params
from simulator.core.yamlio import read_yaml

_MASK32 = 0xFFFFFFFF


def ecmp_hash(src: Any, dst: Any, hop: Any) -> Any:
    """Deterministic 32-bit hash of a flow (ints or numpy uint64 arrays alike)."""
    # Knuth/Murmur-style odd multipliers; Python's hash() is salted per process, so not used.
    h = (src * 0x9E3779B1 + dst * 0x85EBCA77 + hop * 0xC2B2AE3D + 0x27D4EB2F) & _MASK32
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK32
    return h ^ (h >> 12)


@dataclass(frozen=True, eq=False)
class Topology:
    """A built interconnect; treat the graph as read-only (plans and caches key on identity)."""

    name: str
    description: str
    source: str
    gpu: str
    builder: str
    vertices: tuple[tuple[str, str, Any], ...]  # (name, kind, host index or None)
    gpu_ids: tuple[str, ...]
    gpus_per_host: int
    num_hosts: int
    edges: tuple[tuple[str, str], ...]
    bw_bytes_per_s: np.ndarray
    latency_s: np.ndarray
    link_kind: np.ndarray
    fabric: FabricIndex | None = None
    _host: dict = field(default_factory=dict, repr=False)
    _index: dict = field(default_factory=dict, repr=False)
    _router: Any = field(default=None, repr=False)

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """The networkx graph (vertex kind and host; edge bandwidth, latency, kind, index),
        built on first use: costing collectives only needs the per-edge arrays."""
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

    def host_array(self) -> np.ndarray:
        """Host index of every GPU, by rank index (cached)."""
        if "_host_array" not in self.__dict__:
            hosts = np.array([self._host[g] for g in self.gpu_ids], np.int64)
            self.__dict__["_host_array"] = hosts
        return self.__dict__["_host_array"]

    def gpu_index(self, gpu: str) -> int:
        return self._index[gpu]

    def gpus_of_host(self, host: int) -> tuple[str, ...]:
        return tuple(g for g in self.gpu_ids if self._host[g] == host)

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Routes for flows src[i] -> dst[i] (GPU indices): parallel arrays (flow index, edge index)."""
        return self._router.routes(np.asarray(src, np.int64), np.asarray(dst, np.int64))

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


# ---- routers ---------------------------------------------------------------------------


class GraphRouter:
    """Hop-count shortest paths with per-flow ECMP over equal-cost next hops; paths are cached."""

    def __init__(
        self, vertices: list[str], edges: Sequence[tuple[str, str]], gpu_vertex: Sequence[int]
    ):
        self.vid = {v: i for i, v in enumerate(vertices)}
        self.succ: list[list[tuple[int, int]]] = [[] for _ in vertices]
        self.pred: list[list[int]] = [[] for _ in vertices]
        self.direct: dict[tuple[int, int], int] = {}
        for e, (u, v) in enumerate(edges):
            a, b = self.vid[u], self.vid[v]
            self.succ[a].append((b, e))
            self.pred[b].append(a)
            self.direct.setdefault((a, b), e)
        self.gpu_vertex = list(gpu_vertex)
        self._dist: dict[int, dict[int, int]] = {}
        self._paths: dict[tuple[int, int], tuple[int, ...]] = {}

    def _dist_to(self, dst: int) -> dict[int, int]:
        if dst not in self._dist:
            dist, frontier = {dst: 0}, [dst]
            while frontier:
                nxt = []
                for v in frontier:
                    for u in self.pred[v]:
                        if u not in dist:
                            dist[u] = dist[v] + 1
                            nxt.append(u)
                frontier = nxt
            self._dist[dst] = dist
        return self._dist[dst]

    def vertex_path(self, a: int, b: int) -> tuple[int, ...]:
        """Edge indices from vertex a to vertex b."""
        key = (a, b)
        if key not in self._paths:
            if key in self.direct:
                self._paths[key] = (self.direct[key],)
            else:
                dist, path, at, hop = self._dist_to(b), [], a, 0
                if a not in dist:
                    raise ScenarioError(Problem("", f"no route between vertices {a} and {b}"))
                while at != b:
                    options = sorted(
                        (v, e) for v, e in self.succ[at] if dist.get(v, -1) == dist[at] - 1
                    )
                    v, e = options[ecmp_hash(a, b, hop) % len(options)]
                    path.append(e)
                    at, hop = v, hop + 1
                self._paths[key] = tuple(path)
        return self._paths[key]

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flows, eids = [], []
        for i, (s, d) in enumerate(zip(src.tolist(), dst.tolist())):
            path = self.vertex_path(self.gpu_vertex[s], self.gpu_vertex[d])
            flows.extend([i] * len(path))
            eids.extend(path)
        return np.asarray(flows, np.int64), np.asarray(eids, np.int64)


class FabricRouter:
    """Closed-form routes on a fat tree of identical hosts, vectorized over all flows at once."""

    def __init__(self, fab: FabricIndex):
        self.f = fab
        t = fab.template
        names = [n for n, _, _ in t.vertices]
        self.local = GraphRouter(
            names, [(u, v) for u, v, *_ in t.edges], [names.index(g) for g in t.gpu_ids]
        )
        self.gpu_v = [names.index(g) for g in t.gpu_ids]
        self.nic_v = [names.index(f"nic{r}") for r in range(fab.nic_up.shape[1])]
        self.g = t.gpus_per_host

    def _segment(self, flows, hosts, a_vertices, b_vertices, out) -> None:
        """Append host-local segments a -> b (template routes shifted to each flow's host)."""
        if len(flows) == 0:
            return
        keys = a_vertices * 1_000_003 + b_vertices
        for key in np.unique(keys):
            sel = keys == key
            a, b = divmod(int(key), 1_000_003)
            path = np.asarray(self.local.vertex_path(a, b), np.int64)
            if len(path):
                f = flows[sel]
                out.append(
                    (
                        np.repeat(f, len(path)),
                        (path[None, :] + (hosts[sel] * self.f.host_edge_count)[:, None]).ravel(),
                    )
                )

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, out = self.f, []
        h1, l1 = np.divmod(src, self.g)
        h2, l2 = np.divmod(dst, self.g)
        ids = np.arange(len(src), dtype=np.int64)
        gpu_v, nic_v = np.asarray(self.gpu_v), np.asarray(self.nic_v)
        same = h1 == h2
        self._segment(ids[same], h1[same], gpu_v[l1[same]], gpu_v[l2[same]], out)
        x = ~same
        fl, a, b, la, lb = ids[x], h1[x], h2[x], l1[x], l2[x]
        rail = f.rail_of_gpu[lb] if f.pxn else f.rail_of_gpu[la]
        self._segment(fl, a, gpu_v[la], nic_v[rail], out)
        self._segment(fl, b, nic_v[rail], gpu_v[lb], out)
        self._fabric(fl, a, b, rail, src[x], dst[x], out)
        if not out:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    def _fabric(self, fl, a, b, rail, src, dst, out) -> None:
        """NIC -> leaf [-> spine [-> core -> spine] -> leaf] -> NIC, spine and core picked by ECMP."""
        f = self.f
        out.append((fl, f.nic_up[a, rail]))
        out.append((fl, f.nic_down[b, rail]))
        leaf_a, leaf_b = f.leaf_of(a, rail), f.leaf_of(b, rail)
        up = leaf_a != leaf_b
        n_sp = f.leaf_spine.shape[1]
        if not up.any():
            return
        s = ecmp_hash(src.astype(np.uint64), dst.astype(np.uint64), np.uint64(1)) % np.uint64(n_sp)
        s = s.astype(np.int64)
        out.append((fl[up], f.leaf_spine[leaf_a[up], s[up]]))
        out.append((fl[up], f.spine_leaf[leaf_b[up], s[up]]))
        pod_a, pod_b = a // f.hosts_per_pod, b // f.hosts_per_pod
        cross = up & (pod_a != pod_b)
        if cross.any():
            n_core = f.spine_core.shape[2]
            c = ecmp_hash(src.astype(np.uint64), dst.astype(np.uint64), np.uint64(2)) % np.uint64(
                n_core
            )
            c = c.astype(np.int64)[cross]
            out.append((fl[cross], f.spine_core[pod_a[cross], s[cross], c]))
            out.append((fl[cross], f.core_spine[pod_b[cross], s[cross], c]))


# ---- building and loading --------------------------------------------------------------


def topology_names() -> list[str]:
    """Names of the shipped topology files (topologies/*.yaml)."""
    return sorted(p.stem for p in topology_dir().glob("*.yaml"))


def load_topology(name_or_path: str | Path, num_hosts: int | None = None) -> Topology:
    """A shipped topology by name, or a YAML file by path; `num_hosts` scales a multi-host one."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or "/" in text):
        path = topology_dir() / f"{text}.yaml"
        if not path.is_file():
            raise ScenarioError(
                Problem(
                    "topology", f"unknown topology {text!r}", did_you_mean(text, topology_names())
                )
            )
    if num_hosts is not None and (
        isinstance(num_hosts, bool) or not isinstance(num_hosts, int) or num_hosts < 1
    ):
        raise ScenarioError(Problem("num_hosts", f"expected an integer >= 1, got {num_hosts!r}"))
    resolved = path.resolve() if path.exists() else path
    mtime = resolved.stat().st_mtime_ns if resolved.exists() else 0
    return _load_cached(str(resolved), mtime, num_hosts)


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, mtime_ns: int, num_hosts: int | None) -> Topology:
    return topology_from_dict(read_yaml(path), source=path, num_hosts=num_hosts)


def topology_from_dict(
    data: dict, source: str = "<dict>", num_hosts: int | None = None
) -> Topology:
    """Validate a topology mapping (the YAML schema) and build it; all problems are reported at once."""
    problems: list[Problem] = []
    p = Params(data, "", problems)
    meta = {k: p.raw(k, "") for k in ("name", "description", "source")}
    meta["gpu"] = p.raw("gpu")
    for key in ("name", "gpu", "source"):
        if key in data and not isinstance(data[key], str):
            problems.append(Problem(key, f"expected a string, got {data[key]!r}"))
    builder = p.choice("builder", tuple(TOPOLOGY_BUILDERS))
    built = None
    if isinstance(data, dict) and data.get("builder") == builder:
        built = TOPOLOGY_BUILDERS[builder](p, num_hosts)
        p.finish()
        if num_hosts not in (None, built.num_hosts):
            problems.append(
                Problem(
                    "num_hosts",
                    f"{builder} topologies do not scale by host count",
                    "num_hosts applies to host builders with nic: and fabric: sections",
                )
            )
    if built is not None:
        problems.extend(_check_graph(built, reachability=not problems))
    if problems:
        raise ScenarioError(problems, source)
    return _assemble(built, builder, {k: str(v) for k, v in meta.items()})


def _check_graph(b: Built, reachability: bool = True) -> list[Problem]:
    """Duplicate names, bad bandwidths and GPUs that cannot reach every other GPU."""
    problems, names = [], set()
    for name, _, _ in b.vertices:
        if name in names:
            problems.append(Problem("vertices", f"duplicate vertex name {name!r}"))
        names.add(name)
    pairs = set()
    for u, v, bw, lat, _ in b.edges:
        if (u, v) in pairs:
            problems.append(Problem("edges", f"duplicate edge {u}->{v}", "list each cable once"))
        pairs.add((u, v))
        if not bw > 0 or lat < 0:
            problems.append(
                Problem("edges", f"edge {u}->{v}: bandwidth must be > 0 and latency >= 0")
            )
    if not b.gpu_ids:
        problems.append(Problem("", "the topology has no GPU vertices"))
        return problems
    if b.fabric is not None or not reachability:
        return problems  # the fat-tree builder connects every GPU by construction
    g = nx.DiGraph()
    g.add_nodes_from(names)
    g.add_edges_from((u, v) for u, v, *_ in b.edges)
    root = b.gpu_ids[0]
    down, up = nx.descendants(g, root) | {root}, nx.ancestors(g, root) | {root}
    stranded = [x for x in b.gpu_ids if x not in down or x not in up]
    if stranded:
        shown = ", ".join(stranded[:8]) + (" ..." if len(stranded) > 8 else "")
        problems.append(
            Problem(
                "edges",
                f"GPUs without a route to and from {root}: {shown}",
                "connect every GPU (directed edges need both directions)",
            )
        )
    return problems


def _assemble(b: Built, builder: str, meta: dict) -> Topology:
    edges = tuple((u, v) for u, v, *_ in b.edges)
    hosts = {n: h for n, _, h in b.vertices}
    index = {gid: i for i, gid in enumerate(b.gpu_ids)}
    if b.fabric is not None:
        router: Any = FabricRouter(b.fabric)
    else:
        names = [n for n, _, _ in b.vertices]
        vid = {n: i for i, n in enumerate(names)}
        router = GraphRouter(names, edges, [vid[x] for x in b.gpu_ids])
    return Topology(
        name=meta["name"],
        description=meta["description"],
        source=meta["source"],
        gpu=meta["gpu"],
        builder=builder,
        vertices=tuple(b.vertices),
        gpu_ids=tuple(b.gpu_ids),
        gpus_per_host=b.gpus_per_host,
        num_hosts=b.num_hosts,
        edges=edges,
        bw_bytes_per_s=np.array([e[2] for e in b.edges], float),
        latency_s=np.array([e[3] for e in b.edges], float),
        link_kind=np.array([e[4] for e in b.edges], dtype=object),
        fabric=b.fabric,
        _host=hosts,
        _index=index,
        _router=router,
    )


# ---- groups ----------------------------------------------------------------------------


def resolve_group(topo: Topology, group: Any) -> tuple[int, ...]:
    """GPU indices (rank order) for 'all', 'host[:N]', 'rail[:N]', or a list of GPU names/indices."""
    if isinstance(group, str):
        kind, _, num = group.partition(":")
        if kind not in ("all", "host", "rail") or (num and not num.isdigit()):
            raise ScenarioError(
                Problem(
                    "group",
                    f"unknown group {group!r}",
                    "use all, host, host:N, rail, rail:N or a list of GPUs",
                )
            )
        options = groups(topo, kind)
        i = int(num or 0)
        if i >= len(options):
            raise ScenarioError(
                Problem("group", f"{group!r}: there are only {len(options)} {kind} groups")
            )
        return options[i]
    out, problems = [], []
    for item in group:
        if isinstance(item, (int, np.integer)) and 0 <= item < topo.num_gpus:
            out.append(int(item))
        elif isinstance(item, str) and item in topo._index:
            out.append(topo._index[item])
        else:
            problems.append(
                Problem(
                    "group", f"unknown GPU {item!r}", did_you_mean(str(item), topo.gpu_ids[:64])
                )
            )
    if len(set(out)) != len(out):
        problems.append(Problem("group", "a GPU appears twice in the group"))
    if problems or not out:
        raise ScenarioError(problems or [Problem("group", "the group is empty")])
    return tuple(out)


def groups(topo: Topology, kind: str) -> list[tuple[int, ...]]:
    """Every group of a kind: 'all' (one), 'host' (one per host), 'rail' (one per local GPU index)."""
    if kind == "all":
        return [tuple(range(topo.num_gpus))]
    hosts = topo.host_array()
    order = np.argsort(hosts, kind="stable")
    bounds = np.flatnonzero(np.diff(hosts[order])) + 1
    per_host = [tuple(chunk.tolist()) for chunk in np.split(order, bounds)]
    if kind == "host":
        return per_host
    if kind == "rail":
        width = max(len(h) for h in per_host)
        return [tuple(h[i] for h in per_host if i < len(h)) for i in range(width)]
    raise ScenarioError(
        Problem(
            "group", f"unknown group kind {kind!r}", did_you_mean(kind, ["all", "host", "rail"])
        )
    )


# ---- summary ---------------------------------------------------------------------------


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
