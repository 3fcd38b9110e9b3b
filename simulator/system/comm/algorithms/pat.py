"""PAT (NCCL 2.23+, "Parallel Aggregated Trees"): all-gather and reduce-scatter with one GPU
per node in log2(n) steps, each rank's blocks doubling per step as in Bruck's algorithm
(Bruck et al. 1997): at step j every rank sends min(2^j, n - 2^j) blocks of S/n to the rank
2^j behind it (all-gather) or ahead of it (reduce-scatter), so every rank sends (n-1)/n S in
all. NCCL enables it only with one GPU per node (src/init.cc ncclPatEnable: nNodes == nRanks).
"""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, phase_plans_routed_together
from simulator.system.topology.graph import Topology


def plan_pat(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    return plan_pat_together(topo, op, (group,))


def plan_pat_together(
    topo: Topology, op: str, groups: tuple[tuple[int, ...], ...]
) -> tuple[PhasePlan, ...]:
    """PAT on disjoint groups of one shape at once (routed in one call)."""
    return phase_plans_routed_together(topo, op, groups, lambda group: _phases(op, group))


def _phases(op: str, group: tuple[int, ...]) -> list:
    g = np.asarray(group, np.int64)
    n = len(g)
    ranks = np.arange(n)

    def critical(lat, inter):
        return float(lat.mean()), float(inter.mean())

    phases, span = [], 1
    while span < n:
        peer = (ranks - span) % n if op == "all_gather" else (ranks + span) % n
        phases.append((g, g[peer], min(span, n - span) / n, 1, critical))
        span *= 2
    return phases
