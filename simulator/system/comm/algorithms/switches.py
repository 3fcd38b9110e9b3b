"""All-to-all loads above the leaves of a fat tree (all_to_all.py does the hosts and NICs).

A GPU pair's transfer crosses the spines when its hosts are in different leaf blocks, the
cores when they are in different pods (routing.FabricRouter._fabric):
- `adaptive`: each spine carries 1/spines of every transfer between leaves, a count by
  (leaf block, rail) like the NICs'. Across pods the part on spine s takes core
  (h2 + t) mod cores where s = (h1 + t) mod spines, h1 and h2 being the pair's hashes at hops
  1 and 2: the (spine, core) pairs depend on (h1 mod spines, h2 mod cores), so every pair
  crossing pods is hashed once and counted by (pod, h1, h2).
- `ecmp`: each of a pair's flows_per_pair flows hashes its own spine (and core), from the two
  GPU indices. Nothing coarser than the GPU pair fixes those choices, so every pair crossing
  leaves is hashed, flow by flow, in blocks of rows (numpy, uint32 arithmetic identical to
  routing.ecmp_hash mod 2^32, pair_hash.py): about 2.5 ns per hashed flow between leaves
  and 5 ns across pods, on one core.
Above MAX_HASHED_FLOWS hashed flows the planner refuses (UserError) rather than approximate.
"""

from __future__ import annotations

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.system.comm.algorithms.pair_hash import hashed_counts
from simulator.system.topology.graph import Topology

# Hashed flows one all-to-all plan may take (pairs crossing leaves x flows per pair): one
# 16,384-GPU group under NCCL's two flows per pair (2^29: about 3 s on three levels).
MAX_HASHED_FLOWS = 1 << 29


class Members:
    """The GPUs of disjoint equal-size groups (rows of `gm`, sorted), with where they sit."""

    def __init__(self, topo: Topology, gm: np.ndarray):
        f = topo.fabric
        assert f is not None
        self.gm = gm
        n, self.p = gm.shape
        self.rails = f.nic_up.shape[1]
        self.gpus_per_host = topo.gpus_per_host
        self.gpu = gm.ravel()
        self.gid = np.repeat(np.arange(n, dtype=np.int64), self.p)
        self.host, self.loc = np.divmod(self.gpu, topo.gpus_per_host)
        self.rail = f.rail_of_gpu[self.loc]
        self.blk = self.host // f.hosts_per_leaf
        self.pod = self.host // f.hosts_per_pod
        self.host_key = self.gid * topo.num_hosts + self.host
        self.blk_key = self.gid * (self.blk.max() + 1) + self.blk
        r = self.rails
        self.rail_total = np.bincount(self.gid * r + self.rail, minlength=n * r).reshape(n, r)

    def other_counts(self, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per member, the GPUs of its group outside its unit (members sharing `key`): [member,
        rail] those on each rail, and [member] all of them."""
        _, inv = np.unique(key, return_inverse=True)
        r = self.rails
        per = np.bincount(inv * r + self.rail, minlength=(inv.max() + 1) * r).reshape(-1, r)
        by_rail = (self.rail_total[self.gid] - per[inv]).astype(float)
        return by_rail, self.p - per.sum(axis=1)[inv]


def switch_loads(topo: Topology, m: Members) -> list[tuple[np.ndarray, np.ndarray]]:
    """(edge ids, load per byte of S) on leaf-spine and spine-core links."""
    f = topo.fabric
    assert f is not None
    n_sp, n_c = f.leaf_spine.shape[1], f.spine_core.shape[2]
    groups = m.gm.shape[0]
    if n_sp == 0 or len(np.unique(m.blk_key)) == groups:  # no pair crosses leaves
        return []
    routing = topo.router.routing
    ecmp = routing.policy != "adaptive"
    across_pods = n_c > 0 and len(np.unique(m.gid * (m.pod.max() + 1) + m.pod)) > groups
    if ecmp or across_pods:
        flows = groups * m.p * m.p * (routing.flows_per_pair if ecmp else 1)
        if flows > MAX_HASHED_FLOWS:
            why = "ECMP flows between leaves" if ecmp else "GPU pairs between pods"
            raise UserError(
                Problem(
                    "group",
                    f"all_to_all over {groups:,} group(s) of {m.p:,} GPUs: its {why} are "
                    f"hashed one by one ({flows:,}; clustersim hashes up to "
                    f"{MAX_HASHED_FLOWS:,} per all-to-all)",
                    "smaller or fewer groups, fewer flows_per_pair, or routing policy "
                    "adaptive (spine loads in closed form within a pod)",
                )
            )
    out = [] if ecmp else _adaptive_spines(f, m)
    ls, sl, sc, cs = hashed_counts(topo, m, ecmp, across_pods)
    k = routing.flows_per_pair if ecmp else n_sp
    for edges, counts in ((f.leaf_spine, ls), (f.spine_leaf, sl)):
        if counts is not None:
            used = np.flatnonzero(counts)
            out.append((edges.ravel()[used], counts[used] / (m.p * k)))
    if across_pods:
        pods = f.spine_core.shape[0]
        if not ecmp:  # (pod, h1, h2) -> the pair's n_sp parts' (spine, core)
            sc, cs = (_adaptive_cores(x.reshape(pods, n_sp, n_c)) for x in (sc, cs))
        for edges, counts in ((f.spine_core, sc), (f.core_spine, cs)):
            used = np.flatnonzero(counts)
            out.append((edges.ravel()[used], counts[used] / (m.p * k)))
    return out


def _adaptive_spines(f, m: Members) -> list[tuple[np.ndarray, np.ndarray]]:
    """Adaptive routing: every leaf -> spine link of a leaf carries 1/spines of what leaves the
    leaf for another block (and spine -> leaf of what enters it), counted per member as the
    NICs' loads are per host."""
    leaves, n_sp = f.leaf_spine.shape
    by_rail, others = m.other_counts(m.blk_key)
    r = m.rails
    spread = (np.repeat(m.host, r), np.tile(np.arange(r), len(m.host)), by_rail.ravel())
    own = (m.host, m.rail, others.astype(float))
    out = []
    for edges, (host, rail, w) in zip(
        (f.leaf_spine, f.spine_leaf), (spread, own) if f.pxn else (own, spread)
    ):
        per_leaf = np.bincount(f.leaf_of(host, rail), weights=w, minlength=leaves)
        used = np.flatnonzero(per_leaf)
        out.append((edges[used].ravel(), np.repeat(per_leaf[used] / (m.p * n_sp), n_sp)))
    return out


def _adaptive_cores(counts: np.ndarray) -> np.ndarray:
    """counts[pod, h1, h2] of pairs -> flows on [pod, spine, core]: a pair's part t takes spine
    (h1 + t) mod spines and core (h2 + t) mod cores, t < spines."""
    pods, n_sp, n_c = counts.shape
    out = np.zeros(pods * n_sp * n_c)
    pod, h1, h2 = np.nonzero(counts)
    w = counts[pod, h1, h2]
    for t in range(n_sp):
        s, c = (h1 + t) % n_sp, (h2 + t) % n_c
        out += np.bincount((pod * n_sp + s) * n_c + c, weights=w, minlength=len(out))
    return out
