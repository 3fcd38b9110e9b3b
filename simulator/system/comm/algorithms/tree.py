"""NCCL's double binary tree (all-reduce): a tree across hosts, a chain inside each host."""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, host_matrix, phase_plan
from simulator.system.topology.graph import Topology


def _btree_parent(n: int, rank: int) -> int:
    """NCCL src/graph/trees.cc ncclGetBtree: parent of `rank` in the in-order binary tree."""
    if rank == 0:
        return -1
    bit = 1
    while bit < n and not bit & rank:
        bit <<= 1
    up = (rank ^ bit) | (bit << 1)
    return rank ^ bit if up >= n else up


def double_binary_tree(n: int) -> tuple[list[int], list[int]]:
    """NCCL ncclGetDtree: the second tree mirrors the first (n even) or shifts it by one (n odd)."""
    t0 = [_btree_parent(n, r) for r in range(n)]
    if n % 2:
        t1 = [-1 if (u := _btree_parent(n, (r - 1) % n)) == -1 else (u + 1) % n for r in range(n)]
    else:
        t1 = [-1 if (u := _btree_parent(n, n - 1 - r)) == -1 else n - 1 - u for r in range(n)]
    return t0, t1


def _depth(parent: list[int]) -> int:
    best = 0
    for r in range(len(parent)):
        d, at = 0, r
        while parent[at] != -1:
            at, d = parent[at], d + 1
        best = max(best, d)
    return best


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
    src, dst = [], []
    for par in trees:
        child = np.flatnonzero(par >= 0)
        for chain in chains:
            heads = chain[:, 0]
            src += [heads[child], heads[par[child]]]
            dst += [heads[par[child]], heads[child]]
            a, b = chain[:, 1:].ravel(), chain[:, :-1].ravel()
            real = (a >= 0) & (b >= 0)
            src += [a[real], b[real]]
            dst += [b[real], a[real]]
    depth = max(_depth(list(t)) for t in trees)
    chain_len = max(len(r) for r in rows) - 1

    def critical(lat, inter):
        intra = float(lat[~inter].mean()) if (~inter).any() else 0.0
        net = float(lat[inter].mean()) if inter.any() else 0.0
        return 2 * (chain_len * intra + depth * net), 2.0 * depth

    steps = 2 * (chain_len + depth)
    return (
        phase_plan(
            topo,
            group,
            "tree",
            np.concatenate(src),
            np.concatenate(dst),
            1.0 / (2 * len(chains)),
            steps,
            critical,
        ),
    )

