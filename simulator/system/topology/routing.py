"""Routing: hop-count shortest paths, a transfer between hosts spread over several flows.

Routes are shortest paths in hops. A transfer between two hosts is not one flow: NCCL opens
NCCL_NCHANNELS_PER_NET_PEER channels to a network peer (default 2, src/graph/paths.cc), each
its own queue-pair connection (NCCL_IB_QPS_PER_CONNECTION, default 1), and Llama 3's
collective library opened 16 per pair (Dubey et al. 2024, Sec 3.3.1). The topology file's
`routing:` section says how many (`flows_per_pair`) and how the switches place them:

- `ecmp` (default): per-flow ECMP. Where several equal-cost next hops exist (spines of a fat
  tree, cores, torus dimensions) each flow's next hop is `ecmp_hash(src, dst, hop)` modulo the
  number of choices (flow j hashes hop + j * FLOW_SALT, as switches hash each QP's header
  apart): a fixed multiplicative hash, so runs are reproducible; each flow carries 1/k of the
  bytes, and flows of different pairs may collide on a link.
- `adaptive`: adaptive routing or packet spraying (InfiniBand AR, Spectrum-X): the switches
  spread a transfer's bytes evenly over every equal-cost next hop, so nothing collides.

Transfers inside one host take one path (NVLink and PCIe routes are fixed by the builder).
Multi-host fat trees use a closed-form router with the same rules, plus NCCL's PXN (since
NCCL 2.12): traffic to another host first crosses NVLink to the local GPU on the destination
GPU's rail, so the fabric path stays inside that rail.

A router returns parallel arrays (flow index, edge index, share): the share of the flow's
bytes on that edge (1 on a single path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.system.topology.builders import FabricIndex
from simulator.system.topology.builders.params import Params

_MASK32 = 0xFFFFFFFF
ROUTING_POLICIES = ("ecmp", "adaptive")
# NCCL_NCHANNELS_PER_NET_PEER's default (NCCL src/graph/paths.cc) x one QP per connection.
DEFAULT_FLOWS_PER_PAIR = 2
# NCCL's MAXCHANNELS is 32 (64 since 2.18's channel doubling); x a few QPs is plenty.
MAX_FLOWS_PER_PAIR = 256
# Added to the hop term per flow of a pair, so each flow of a transfer hashes apart.
FLOW_SALT = 256

Routed = tuple[np.ndarray, np.ndarray, np.ndarray]  # (flow index, edge index, share)


@dataclass(frozen=True, kw_only=True)
class Routing:
    """How a transfer between two hosts is spread over the network's equal-cost paths."""

    policy: str = "ecmp"
    flows_per_pair: int = DEFAULT_FLOWS_PER_PAIR


def routing_params(p: Params | None) -> Routing:
    """The topology file's `routing:` section (absent: per-flow ECMP over NCCL's 2 flows)."""
    if p is None:
        return Routing()
    out = Routing(
        policy=p.choice("policy", ROUTING_POLICIES, "ecmp"),
        flows_per_pair=p.int(
            "flows_per_pair",
            DEFAULT_FLOWS_PER_PAIR,
            maximum=MAX_FLOWS_PER_PAIR,
            why="NCCL opens at most 64 channels per peer, each a few queue pairs",
        ),
    )
    p.finish()
    return out


def ecmp_hash(src: Any, dst: Any, hop: Any) -> Any:
    """Deterministic 32-bit hash of a flow (ints or numpy uint64 arrays alike)."""
    # Knuth/Murmur-style odd multipliers; Python's hash() is salted per process, so not used.
    h = (src * 0x9E3779B1 + dst * 0x85EBCA77 + hop * 0xC2B2AE3D + 0x27D4EB2F) & _MASK32
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK32
    return h ^ (h >> 12)


class GraphRouter:
    """Hop-count shortest paths on any graph; paths and spreads are cached. A flow between GPUs
    of different hosts (`gpu_host`) is spread by the routing policy; others take one path."""

    def __init__(
        self,
        num_vertices: int,
        src: Sequence[int] | np.ndarray,
        dst: Sequence[int] | np.ndarray,
        gpu_vertex: Sequence[int] | np.ndarray,
        gpu_host: Sequence[int] | np.ndarray | None = None,
        routing: Routing = Routing(),
    ):
        self.succ: list[list[tuple[int, int]]] = [[] for _ in range(num_vertices)]
        self.pred: list[list[int]] = [[] for _ in range(num_vertices)]
        self.direct: dict[tuple[int, int], int] = {}
        for e, (a, b) in enumerate(zip(np.asarray(src).tolist(), np.asarray(dst).tolist())):
            self.succ[a].append((b, e))
            self.pred[b].append(a)
            self.direct.setdefault((a, b), e)
        self.gpu_vertex = np.asarray(gpu_vertex).tolist()
        self.gpu_host = None if gpu_host is None else np.asarray(gpu_host).tolist()
        self.routing = routing
        self._dist: dict[int, dict[int, int]] = {}
        self._paths: dict[tuple[int, int, int], tuple[int, ...]] = {}
        self._spreads: dict[tuple[int, int], tuple[list[int], list[float]]] = {}

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

    def _next_hops(self, at: int, dist: dict[int, int]) -> list[tuple[int, int]]:
        """(vertex, edge) of every next hop on a shortest path, in a fixed order."""
        return sorted((v, e) for v, e in self.succ[at] if dist.get(v, -1) == dist[at] - 1)

    def _reachable(self, a: int, b: int) -> dict[int, int]:
        dist = self._dist_to(b)
        if a not in dist:
            raise UserError(Problem("", f"no route between vertices {a} and {b}"))
        return dist

    def vertex_path(self, a: int, b: int, flow: int = 0) -> tuple[int, ...]:
        """Edge indices from vertex a to vertex b of one flow (its ECMP hash salted by `flow`)."""
        key = (a, b, flow)
        if key not in self._paths:
            if (a, b) in self.direct:
                self._paths[key] = (self.direct[a, b],)
            else:
                dist, path, at, hop = self._reachable(a, b), [], a, 0
                while at != b:
                    options = self._next_hops(at, dist)
                    v, e = options[ecmp_hash(a, b, hop + FLOW_SALT * flow) % len(options)]
                    path.append(e)
                    at, hop = v, hop + 1
                self._paths[key] = tuple(path)
        return self._paths[key]

    def spread(self, a: int, b: int) -> tuple[list[int], list[float]]:
        """Edges from vertex a to vertex b and the share of a transfer's bytes on each, under
        the routing policy: `flows_per_pair` hashed flows (ecmp), or an even split at every
        equal-cost branch (adaptive)."""
        key = (a, b)
        if key not in self._spreads:
            shares: dict[int, float] = {}
            if (a, b) in self.direct:
                shares[self.direct[a, b]] = 1.0
            elif self.routing.policy == "adaptive":
                dist, level = self._reachable(a, b), {a: 1.0}
                while level:
                    nxt: dict[int, float] = {}
                    for at, mass in level.items():
                        if at == b:
                            continue
                        options = self._next_hops(at, dist)
                        for v, e in options:
                            shares[e] = shares.get(e, 0.0) + mass / len(options)
                            nxt[v] = nxt.get(v, 0.0) + mass / len(options)
                    level = nxt
            else:
                k = self.routing.flows_per_pair
                for flow in range(k):
                    for e in self.vertex_path(a, b, flow):
                        shares[e] = shares.get(e, 0.0) + 1.0 / k
            self._spreads[key] = (list(shares), list(shares.values()))
        return self._spreads[key]

    def routes(self, src: np.ndarray, dst: np.ndarray, spread: bool = True) -> Routed:
        """Each flow src[i] -> dst[i]'s edges and shares; `spread=False`: one flow's path."""
        flows: list[int] = []
        eids: list[int] = []
        shares: list[float] = []
        host = self.gpu_host
        for i, (s, d) in enumerate(zip(src.tolist(), dst.tolist())):
            a, b = self.gpu_vertex[s], self.gpu_vertex[d]
            if spread and host is not None and host[s] != host[d]:
                edges, share = self.spread(a, b)
                shares.extend(share)
            else:
                edges = list(self.vertex_path(a, b))
                shares.extend([1.0] * len(edges))
            flows.extend([i] * len(edges))
            eids.extend(edges)
        return np.asarray(flows, np.int64), np.asarray(eids, np.int64), np.asarray(shares, float)


class FabricRouter:
    """Closed-form routes on a fat tree of identical hosts, vectorized over all flows at once."""

    def __init__(self, fab: FabricIndex, routing: Routing = Routing()):
        self.f = fab
        self.routing = routing
        t = fab.template
        names = t.names()
        src, dst, *_ = t.edge_arrays()
        self.gpu_v = [names.index(g) for g in t.gpu_ids]
        self.nic_v = [names.index(f"nic{r}") for r in range(fab.nic_up.shape[1])]
        self.local = GraphRouter(len(names), src, dst, self.gpu_v)
        self.n_local = len(names)
        self.g = t.gpus_per_host

    def _segment(self, flows, hosts, a_vertices, b_vertices, out) -> None:
        """Append host-local segments a -> b: each flow's template route shifted to its host.
        Flows are grouped by (a, b) in ascending order, each flow's edges in path order."""
        if len(flows) == 0:
            return
        n = self.n_local
        keys = a_vertices * n + b_vertices
        # A stable sort on a small key is a radix sort; each (a, b) group is then one slice.
        order = np.argsort(keys.astype(np.int16) if n * n < 2**15 else keys, kind="stable")
        sizes = np.bincount(keys, minlength=n * n)
        offset = hosts[order] * self.f.host_edge_count
        flows, start = flows[order], 0
        for key in np.flatnonzero(sizes).tolist():
            stop = start + int(sizes[key])
            path = np.asarray(self.local.vertex_path(*divmod(key, n)), np.int64)
            if len(path):
                out.append(
                    (
                        np.repeat(flows[start:stop], len(path)),
                        (offset[start:stop, None] + path).ravel(),
                        1.0,
                    )
                )
            start = stop

    def routes(self, src: np.ndarray, dst: np.ndarray, spread: bool = True) -> Routed:
        f = self.f
        out: list[tuple[np.ndarray, np.ndarray, Any]] = []
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
        self._fabric(fl, a, b, rail, src[x], dst[x], out, spread)
        if not out:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, float)
        return (
            np.concatenate([o[0] for o in out]),
            np.concatenate([o[1] for o in out]),
            np.concatenate([np.broadcast_to(np.asarray(o[2], float), len(o[0])) for o in out]),
        )

    def _ways(self, spread: bool, choices: int) -> int:
        """How many parts each inter-leaf transfer is split into."""
        if not spread:
            return 1
        return choices if self.routing.policy == "adaptive" else self.routing.flows_per_pair

    def _pick(self, src, dst, part, hop: int, choices: int) -> np.ndarray:
        """Each part's next hop among `choices`: its own hash (ecmp), or the transfer's hash
        plus the part's index, so the parts take every choice once (adaptive; a transfer has
        as many parts as spines, so where a spine plane has more cores than that, each
        transfer uses as many of them, which over many transfers evens out)."""
        u64 = np.uint64
        if self.routing.policy == "adaptive":
            pick = ecmp_hash(src, dst, u64(hop)) + part
        else:
            pick = ecmp_hash(src, dst, u64(hop) + u64(FLOW_SALT) * part)
        return (pick % u64(choices)).astype(np.int64)

    def _fabric(self, fl, a, b, rail, src, dst, out, spread: bool) -> None:
        """NIC -> leaf [-> spine [-> core -> spine] -> leaf] -> NIC, spines and cores picked
        per part of each transfer by the routing policy."""
        f = self.f
        out.append((fl, f.nic_up[a, rail], 1.0))
        out.append((fl, f.nic_down[b, rail], 1.0))
        leaf_a, leaf_b = f.leaf_of(a, rail), f.leaf_of(b, rail)
        up = np.flatnonzero(leaf_a != leaf_b)
        n_sp = f.leaf_spine.shape[1]
        if not len(up):
            return
        k = self._ways(spread, n_sp)
        up = np.repeat(up, k)  # each transfer's parts
        part = np.tile(np.arange(k, dtype=np.uint64), len(up) // k)
        s_src, s_dst = src[up].astype(np.uint64), dst[up].astype(np.uint64)
        s = self._pick(s_src, s_dst, part, 1, n_sp)
        out.append((fl[up], f.leaf_spine[leaf_a[up], s], 1.0 / k))
        out.append((fl[up], f.spine_leaf[leaf_b[up], s], 1.0 / k))
        pod_a, pod_b = a[up] // f.hosts_per_pod, b[up] // f.hosts_per_pod
        cross = np.flatnonzero(pod_a != pod_b)
        if len(cross):
            c = self._pick(s_src[cross], s_dst[cross], part[cross], 2, f.spine_core.shape[2])
            pa, pb, sc = pod_a[cross], pod_b[cross], s[cross]
            out.append((fl[up][cross], f.spine_core[pa, sc, c], 1.0 / k))
            out.append((fl[up][cross], f.core_spine[pb, sc, c], 1.0 / k))
