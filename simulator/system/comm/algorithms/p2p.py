"""Point-to-point: one send of S bytes from group[0] to group[1] (a pipeline-stage transfer)."""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, phase_plan
from simulator.system.topology.graph import Topology


def plan_p2p(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    assert len(group) == 2, group
    return (phase_plan(topo, group, "send", np.array([group[0]]), np.array([group[1]]), 1.0, 1),)
