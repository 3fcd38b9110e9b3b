"""Ring algorithms (NCCL's ring): all-reduce in 2(p-1) steps, all-gather and reduce-scatter in
p-1, broadcast and reduce as a pipelined chain; one ring per channel."""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import (
    PhasePlan,
    host_matrix,
    merge_phases,
    phase_plan,
    phase_plans_routed_together,
)
from simulator.system.topology.graph import Topology

# Seven rings on eight GPUs joined pairwise (an AMD MI300X platform: 7 xGMI links per GPU)
# that together use every directed link exactly once (a directed Hamiltonian decomposition
# of the complete digraph on 8 vertices, which exists for every n but 4 and 6 by Tillson's
# theorem; this one was found by search). RCCL's rings use all seven links: its 8-GPU
# all-reduce reaches 312.9 GB/s busbw, above what four or six links could carry.
MESH_RINGS_8 = (
    (0, 4, 2, 7, 6, 5, 3, 1),
    (0, 2, 4, 1, 6, 7, 3, 5),
    (0, 7, 1, 5, 2, 6, 3, 4),
    (0, 1, 3, 7, 2, 5, 4, 6),
    (0, 3, 6, 2, 1, 4, 5, 7),
    (0, 5, 6, 1, 7, 4, 3, 2),
    (0, 6, 4, 7, 5, 1, 2, 3),
)


def mesh_rings(n: int) -> list[tuple[int, ...]]:
    """Ring orders over positions 0..n-1 of GPUs joined pairwise: the decomposition above for
    8, else the strides coprime with n (each a Hamiltonian cycle on its own links)."""
    if n == 8:
        return list(MESH_RINGS_8)
    strides = [s for s in range(1, n) if np.gcd(s, n) == 1] or [1]
    return [tuple((np.arange(n) * s) % n) for s in strides]


def _ring_channels(topo: Topology, group: tuple[int, ...]) -> list[np.ndarray]:
    """Ring orders, one per channel. Hosts stay contiguous; on k GPUs per host, k channels
    enter each host at a different GPU so each uses its own NIC/rail (as NCCL's rings do).
    Inside one host of pairwise-linked GPUs the channels spread over the links (mesh_rings)."""
    rows, uniform = host_matrix(topo, group)
    if topo.mesh and len(rows) == 1 and len(group) > 2:
        g = np.asarray(group, np.int64)
        return [g[list(order)] for order in mesh_rings(len(g))]
    if len(rows) > 1 and uniform and len(rows[0]) > 1:
        mat, k = np.array(rows), len(rows[0])
        return [mat[:, (c + np.arange(k)) % k].ravel() for c in range(k)]
    return [np.concatenate(rows)]


def plan_ring(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    if op in ("broadcast", "reduce"):
        return (_chain_phase(topo, group, op, _ring_channels(topo, group)),)
    src, dst, w, steps = _ring_flows(topo, op, group)
    return (phase_plan(topo, group, op, src, dst, w, steps),)


def plan_ring_together(
    topo: Topology, op: str, groups: tuple[tuple[int, ...], ...]
) -> tuple[PhasePlan, ...]:
    """Rings on disjoint groups of one shape at once: routed in one call, the same merged plan
    as `plan_ring` per group and `merge_phases` (broadcast / reduce chains are planned per
    group)."""
    if op in ("broadcast", "reduce"):
        return tuple(merge_phases(same) for same in zip(*(plan_ring(topo, op, g) for g in groups)))

    def phases(group):
        src, dst, w, steps = _ring_flows(topo, op, group)
        # phase_plan's path and NIC crossings: `steps` times the mean flow's.
        return [
            (
                src,
                dst,
                w,
                steps,
                lambda lat, inter: (steps * float(lat.mean()), steps * float(inter.mean())),
            )
        ]

    return phase_plans_routed_together(topo, op, groups, phases)


def _ring_flows(topo: Topology, op: str, group: tuple[int, ...]):
    """Every channel's ring: each of the `steps` steps, every rank passes S/p (split over the c
    channels) to its successor."""
    p, chans = len(group), _ring_channels(topo, group)
    steps = 2 * (p - 1) if op == "all_reduce" else p - 1
    src = np.concatenate(chans)
    dst = np.concatenate([np.roll(o, -1) for o in chans])
    return src, dst, steps / (p * len(chans)), steps


def _chain_phase(topo, group, op, chans) -> PhasePlan:
    """Pipelined broadcast/reduce along each channel's ring, cut open at the root (group[0])."""
    root, p, c = group[0], len(group), len(chans)
    srcs, dsts = [], []
    for order in chans:
        order = np.roll(order, -int(np.flatnonzero(order == root)[0]))
        a, b = (order[:-1], order[1:]) if op == "broadcast" else (order[1:], order[:-1])
        srcs.append(a)
        dsts.append(b)
    return phase_plan(topo, group, op, np.concatenate(srcs), np.concatenate(dsts), 1.0 / c, p - 1)
