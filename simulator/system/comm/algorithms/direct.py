"""All-to-all as simultaneous point-to-point sends, every pair's flow routed: the reference
plan, and the one for graphs that are not fat trees (explicit graphs, tori) and for groups on
one host; all_to_all.py plans multi-host fat trees from counts and is checked against it."""

from __future__ import annotations

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.system.comm.algorithms.base import PhasePlan, phase_plan
from simulator.system.topology.graph import Topology

# Largest group planned here: its p*(p-1) flows are enumerated (and, off fat trees, routed
# one by one in Python). Fat trees take all_to_all.py, bounded by switches.MAX_HASHED_FLOWS.
MAX_ALL_TO_ALL_RANKS = 1024


def plan_direct(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """All-to-all as simultaneous point-to-point sends of S/p to every other rank."""
    p = len(group)
    if p > MAX_ALL_TO_ALL_RANKS:
        raise UserError(
            Problem(
                "group",
                f"all_to_all over {p:,} GPUs routes every pair's flow on this topology "
                f"(limit {MAX_ALL_TO_ALL_RANKS:,} GPUs; multi-host fat trees are planned from counts instead)",
            )
        )
    g = np.array(group)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    keep = a != b

    def critical(lat, inter):
        return float(lat.max()), float(inter.any())

    return (phase_plan(topo, group, op, g[a[keep]], g[b[keep]], 1.0 / p, 1, critical),)
