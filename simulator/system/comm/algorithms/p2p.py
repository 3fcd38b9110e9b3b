"""Point-to-point: one send of S bytes from group[0] to group[1] (a pipeline-stage transfer)."""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, phase_plan
from simulator.system.topology.graph import Topology


def plan_p2p(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    return plan_p2p_together(topo, op, (group,))


def plan_p2p_together(
    topo: Topology, op: str, groups: tuple[tuple[int, ...], ...]
) -> tuple[PhasePlan, ...]:
    """Every pair's send at once (e.g. all pipelines crossing one stage boundary), routed in one pass."""
    assert all(len(g) == 2 for g in groups), groups
    pairs = np.asarray(groups, np.int64)
    return (
        phase_plan(
            topo, groups[0], "send", pairs[:, 0], pairs[:, 1], 1.0, 1, members=pairs.ravel()
        ),
    )
