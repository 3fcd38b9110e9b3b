"""Routing: hop-count shortest paths with deterministic per-flow ECMP.

Routes are shortest paths in hops. Where several equal-cost next hops exist (spines of a fat
tree, the two ways round a ring of even length, torus dimensions) a flow's next hop is picked
by `ecmp_hash(src, dst, hop)` modulo the number of choices: a fixed multiplicative hash, so
runs are reproducible, all packets of one (src, dst) pair follow one path (per-flow ECMP, as
switches hash a flow's header), and different pairs spread evenly. Multi-host fat trees use
a closed-form router with the same rule, plus NCCL's PXN (since NCCL 2.12): traffic to
another host first crosses NVLink to the local GPU on the destination GPU's rail, so the
fabric path stays inside that rail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.system.topology.builders import FabricIndex

_MASK32 = 0xFFFFFFFF


def ecmp_hash(src: Any, dst: Any, hop: Any) -> Any:
    """Deterministic 32-bit hash of a flow (ints or numpy uint64 arrays alike)."""
    # Knuth/Murmur-style odd multipliers; Python's hash() is salted per process, so not used.
    h = (src * 0x9E3779B1 + dst * 0x85EBCA77 + hop * 0xC2B2AE3D + 0x27D4EB2F) & _MASK32
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK32
    return h ^ (h >> 12)


class GraphRouter:
    """Hop-count shortest paths with per-flow ECMP over equal-cost next hops; paths are cached."""

    def __init__(
        self,
        num_vertices: int,
        src: Sequence[int] | np.ndarray,
        dst: Sequence[int] | np.ndarray,
        gpu_vertex: Sequence[int] | np.ndarray,
    ):
        self.succ: list[list[tuple[int, int]]] = [[] for _ in range(num_vertices)]
        self.pred: list[list[int]] = [[] for _ in range(num_vertices)]
        self.direct: dict[tuple[int, int], int] = {}
        for e, (a, b) in enumerate(zip(np.asarray(src).tolist(), np.asarray(dst).tolist())):
            self.succ[a].append((b, e))
            self.pred[b].append(a)
            self.direct.setdefault((a, b), e)
        self.gpu_vertex = np.asarray(gpu_vertex).tolist()
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
                    raise UserError(Problem("", f"no route between vertices {a} and {b}"))
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
        flows: list[int] = []
        eids: list[int] = []
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
                    )
                )
            start = stop

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = self.f
        out: list[tuple[np.ndarray, np.ndarray]] = []
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
