"""NVLink SHARP (NCCL's NVLS and NVLSTree algorithms): the NVSwitch reduces and multicasts.

NVLS all-reduce inside one NVLink domain (src/device/all_reduce.h, NCCL_ALGO_NVLS): each GPU
is the head of 1/N of the buffer; it pulls that slice reduced from every GPU with
`multimem.ld_reduce` (the switch reads the slice from all N GPUs and sums it) and writes the
result back with `multimem.st` (the switch copies it to all N GPUs). Per GPU and per direction
(maintainer, NVIDIA/nccl#1083): the reduce-scatter half sends S and receives S/N, the
all-gather half sends S/N and receives S. NCCL pipelines the two halves (warps split into
scatter, reduce and gather groups), so both load the GPU's NVLink at once: one phase carrying
S (1 + 1/N) each way. NVLS reduce-scatter and all-gather are the halves alone.

NVLSTree (several nodes): NVLS inside each node, and each GPU's node-reduced slice (S/k of the
buffer, k GPUs per node) all-reduced across nodes along NCCL's double binary tree on its own
rail (each tree carries half), pipelined with the NVLink part.
"""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import (
    PhasePlan,
    host_matrix,
    loads_plan,
    phase_plan_blocks,
    switch_links,
)
from simulator.system.comm.algorithms.tree import _depth, double_binary_tree
from simulator.system.topology.graph import Topology

# Per byte of S: (sent to the switch, received from it) by each GPU of N.
_HALVES = {
    "reduce_scatter": lambda n: (1.0, 1.0 / n),
    "all_gather": lambda n: (1.0 / n, 1.0),
    "all_reduce": lambda n: (1.0 + 1.0 / n, 1.0 / n + 1.0),
}


def plan_nvls(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """One phase: every GPU's uplink to the switch and downlink from it, loaded as above."""
    ranks = np.asarray(group, np.int64)
    n = len(ranks)
    up, down = switch_links(topo, ranks)
    send, recv = _HALVES[op](n)
    path = float(topo.latency_s[up].mean() + topo.latency_s[down].mean())
    return (
        loads_plan(
            op, group, [up, down], [send, recv], 1, 0, path, np.full(n, send), np.full(n, recv)
        ),
    )


def plan_nvls_tree(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """NVLS inside each host plus, per rail, a double binary tree across hosts on S/k."""
    mat = np.array(host_matrix(topo, group)[0])
    h, k = mat.shape
    up, down = switch_links(topo, mat.ravel())
    intra = loads_plan(
        "intra",
        group,
        [up, down],
        [1.0 + 1.0 / k, 1.0 / k + 1.0],
        1,
        0,
        0.0,
        np.zeros(h * k),
        np.zeros(h * k),
    )
    trees = [np.array(t) for t in double_binary_tree(h)]
    blocks = []
    for par in trees:
        child = np.flatnonzero(par >= 0)
        for c in range(k):
            heads = mat[:, c]
            blocks += [(heads[child], heads[par[child]]), (heads[par[child]], heads[child])]
    depth = max(_depth(t) for t in trees)
    intra_lat = float(topo.latency_s[up].mean() + topo.latency_s[down].mean())

    def critical(lat, inter):
        return intra_lat + 2 * depth * float(lat.mean()), 2.0 * depth

    # Each tree carries half of each rail's S/k, up (reduce) and down (broadcast).
    inter = phase_plan_blocks(
        topo,
        group,
        "nvls_tree",
        blocks,
        1.0 / (2 * k),
        1 + 2 * depth,
        critical,
        members=mat.ravel(),
    )
    edges = np.concatenate([intra.edge_ids, inter.edge_ids])
    ids, inv = np.unique(edges, return_inverse=True)
    load = np.bincount(
        inv, weights=np.concatenate([intra.unit_load, inter.unit_load]), minlength=len(ids)
    )
    pos = _positions(group, mat.ravel())
    sent = inter.sent_per_rank[pos] + 1.0 + 1.0 / k
    recv = inter.recv_per_rank[pos] + 1.0 / k + 1.0
    return (
        PhasePlan(
            "nvls_tree", ids, load, inter.n_steps, inter.net_steps, inter.path_latency_s, sent, recv
        ),
    )


def _positions(group: tuple[int, ...], members: np.ndarray) -> np.ndarray:
    """For each rank of `group` (in group order), its index in `members`."""
    where = np.empty(int(max(max(group), members.max())) + 1, np.int64)
    where[members] = np.arange(len(members))
    return where[np.asarray(group, np.int64)]
