"""NCCL's double binary tree (all-reduce): a tree across hosts, a chain inside each host."""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, host_matrix, phase_plan_blocks
from simulator.system.topology.graph import Topology


def _btree_parents(n: int, ranks: np.ndarray) -> np.ndarray:
    """NCCL src/graph/trees.cc ncclGetBtree: parent of each rank in the in-order binary tree
    (-1 for rank 0), for all ranks at once. NCCL's loop finds the lowest set bit of the rank."""
    bit = ranks & -ranks
    up = (ranks ^ bit) | (bit << 1)
    return np.where(ranks == 0, -1, np.where(up >= n, ranks ^ bit, up))


def double_binary_tree(n: int) -> tuple[list[int], list[int]]:
    """NCCL ncclGetDtree: the second tree mirrors the first (n even) or shifts it by one (n odd)."""
    r = np.arange(n, dtype=np.int64)
    t0 = _btree_parents(n, r)
    if n % 2:
        u = _btree_parents(n, (r - 1) % n)
        t1 = np.where(u == -1, -1, (u + 1) % n)
    else:
        u = _btree_parents(n, n - 1 - r)
        t1 = np.where(u == -1, -1, n - 1 - u)
    return t0.tolist(), t1.tolist()


def _depth(parent: np.ndarray) -> int:
    """The deepest rank's number of hops to the root, walking every rank up at once."""
    at, depth = np.arange(len(parent)), 0
    while True:
        live = parent[at] != -1
        if not live.any():
            return depth
        at, depth = np.where(live, parent[at], at), depth + 1


def plan_tree(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """Double binary tree across hosts, a chain inside each host; reduce up, broadcast down,
    pipelined, each tree carrying half the buffer; one channel per local GPU (NIC)."""
    rows, uniform = host_matrix(topo, group)
    trees = [np.array(t) for t in double_binary_tree(len(rows))]
    if uniform:
        mat, k = np.array(rows), len(rows[0])
        chains = [mat[:, (c + np.arange(k)) % k] for c in range(k)]
    else:
        width = max(len(r) for r in rows)
        chains = [np.array([np.pad(r, (0, width - len(r)), constant_values=-1) for r in rows])]
    # Each chain's flows (the same arrays in both trees) are routed once: see phase_plan_blocks.
    links = [_chain_links(chain) for chain in chains]
    blocks = []
    for par in trees:
        child = np.flatnonzero(par >= 0)
        for chain, (down, up) in zip(chains, links):
            heads = chain[:, 0]
            blocks += [
                (heads[child], heads[par[child]]),
                (heads[par[child]], heads[child]),
                down,
                up,
            ]
    depth = max(_depth(t) for t in trees)
    chain_len = (len(rows[0]) if uniform else max(len(r) for r in rows)) - 1

    def critical(lat, inter):
        intra = float(lat[~inter].mean()) if (~inter).any() else 0.0
        net = float(lat[inter].mean()) if inter.any() else 0.0
        return 2 * (chain_len * intra + depth * net), 2.0 * depth

    steps = 2 * (chain_len + depth)
    return (
        phase_plan_blocks(topo, group, "tree", blocks, 1.0 / (2 * len(chains)), steps, critical),
    )


def _chain_links(chain: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Flows along every host's chain (rows of `chain`, -1 padding skipped): towards the
    head (reduce) and away from it (broadcast)."""
    a, b = chain[:, 1:].ravel(), chain[:, :-1].ravel()
    real = (a >= 0) & (b >= 0)
    return (a[real], b[real]), (b[real], a[real])
