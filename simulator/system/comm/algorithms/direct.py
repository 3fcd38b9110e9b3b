"""All-to-all as simultaneous point-to-point sends."""

from __future__ import annotations

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.system.comm.algorithms.base import PhasePlan, phase_plan
from simulator.system.topology.graph import Topology

# Largest all-to-all group: its p*(p-1) flows are enumerated.
MAX_ALL_TO_ALL_RANKS = 1024


def plan_direct(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """All-to-all as simultaneous point-to-point sends of S/p to every other rank."""
    p = len(group)
    if p > MAX_ALL_TO_ALL_RANKS:
        raise UserError(
            Problem(
                "group", f"all_to_all over {p} GPUs is not modelled (limit {MAX_ALL_TO_ALL_RANKS})"
            )
        )
    g = np.array(group)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    keep = a != b

    def critical(lat, inter):
        return float(lat.max()), float(inter.any())

    return (phase_plan(topo, group, op, g[a[keep]], g[b[keep]], 1.0 / p, 1, critical),)
