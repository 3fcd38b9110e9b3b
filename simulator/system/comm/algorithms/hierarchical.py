"""Hierarchical all-reduce: intra-host reduce-scatter, inter-host all-reduce per rail, intra-host all-gather."""

from __future__ import annotations

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.system.comm.algorithms.base import PhasePlan, host_matrix, phase_plan
from simulator.system.topology.graph import Topology


def plan_hierarchical(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """Intra-host reduce-scatter, inter-host all-reduce of each shard along its rail, intra-host all-gather."""
    rows, uniform = host_matrix(topo, group)
    if not uniform or len(rows) < 2 or len(rows[0]) < 2:
        raise UserError(
            Problem(
                "algorithm",
                "hierarchical needs >= 2 hosts with the same number (>= 2) of GPUs",
                "use ring or tree for this group",
            )
        )
    mat = np.array(rows)
    h, k = mat.shape
    intra_src, intra_dst = mat.ravel(), np.roll(mat, -1, axis=1).ravel()
    # Ring reduce-scatter of S over k GPUs: k-1 steps of S/k per rank.
    rs = phase_plan(topo, group, "intra_reduce_scatter", intra_src, intra_dst, (k - 1) / k, k - 1)
    # k rings (one per rail) all-reduce S/k over h hosts: 2(h-1) steps of S/(k*h).
    inter_src, inter_dst = mat.T.ravel(), np.roll(mat, -1, axis=0).T.ravel()
    ar = phase_plan(
        topo, group, "inter_all_reduce", inter_src, inter_dst, 2 * (h - 1) / (k * h), 2 * (h - 1)
    )
    ag = phase_plan(topo, group, "intra_all_gather", intra_src, intra_dst, (k - 1) / k, k - 1)
    return rs, ar, ag
