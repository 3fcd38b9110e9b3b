"""Ring algorithms (NCCL's ring): all-reduce in 2(p-1) steps, all-gather and reduce-scatter in
p-1, broadcast and reduce as a pipelined chain; one ring per channel."""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, host_matrix, phase_plan
from simulator.system.topology.graph import Topology


def _ring_channels(topo: Topology, group: tuple[int, ...]) -> list[np.ndarray]:
    """Ring orders, one per channel. Hosts stay contiguous; on k GPUs per host, k channels
    enter each host at a different GPU so each uses its own NIC/rail (as NCCL's rings do)."""
    rows, uniform = host_matrix(topo, group)
    if len(rows) > 1 and uniform and len(rows[0]) > 1:
        mat, k = np.array(rows), len(rows[0])
        return [mat[:, (c + np.arange(k)) % k].ravel() for c in range(k)]
    return [np.concatenate(rows)]


def plan_ring(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    p, chans = len(group), _ring_channels(topo, group)
    c = len(chans)
    if op in ("broadcast", "reduce"):
        return (_chain_phase(topo, group, op, chans),)
    steps = 2 * (p - 1) if op == "all_reduce" else p - 1
    src = np.concatenate(chans)
    dst = np.concatenate([np.roll(o, -1) for o in chans])
    # Each step every rank passes S/p (split over c channels) to its successor.
    return (phase_plan(topo, group, op, src, dst, steps / (p * c), steps),)


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

