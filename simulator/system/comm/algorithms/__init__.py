"""The collective-algorithm registry: name -> (planner, the ops it implements, where it applies).

A new algorithm is one module with a planner `(topology, op, group) -> phases` plus one entry
here; `auto` (cost.py) tries every applicable algorithm with every protocol, as NCCL's tuner does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.system.comm.algorithms.base import PhasePlan
from simulator.system.comm.algorithms.direct import plan_direct
from simulator.system.comm.algorithms.hierarchical import plan_hierarchical
from simulator.system.comm.algorithms.p2p import plan_p2p, plan_p2p_together
from simulator.system.comm.algorithms.ring import plan_ring
from simulator.system.comm.algorithms.tree import plan_tree


@dataclass(frozen=True, kw_only=True)
class Algorithm:
    name: str
    plan: Callable[..., tuple[PhasePlan, ...]]
    ops: tuple[str, ...]
    # All instances at once (the same plan as merging each group's, routed in one pass).
    plan_together: Callable[..., tuple[PhasePlan, ...]] | None = None
    min_hosts: int = 1             # hosts the group must span
    needs_uniform_hosts: bool = False  # every host holds the same number (>= 2) of the group's GPUs
    # (op, twin): op's plan is twin's, phases renamed (same flows, steps and bytes), so a
    # context routes them once; a 131k-GPU ring takes longer to route than to simulate.
    same_flows: tuple[tuple[str, str], ...] = ()

    def applies(self, op: str, hosts: int, uniform: bool, per_host: int) -> bool:
        if op not in self.ops or hosts < self.min_hosts:
            return False
        return not self.needs_uniform_hosts or (uniform and per_host >= 2)

    def why_not(self, op: str, hosts: int, uniform: bool, per_host: int) -> str:
        if op not in self.ops:
            return f"{self.name} does not implement {op}"
        if hosts < self.min_hosts:
            return f"{self.name} needs a group spanning >= {self.min_hosts} hosts (this one spans {hosts})"
        return f"{self.name} needs the same number (>= 2) of the group's GPUs on every host"


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        # Ring reduce-scatter and all-gather: p-1 steps of S/p from every rank to its successor.
        Algorithm(name="ring", plan=plan_ring, ops=("all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                                    "reduce"), same_flows=(("reduce_scatter", "all_gather"),)),
        Algorithm(name="tree", plan=plan_tree, ops=("all_reduce",), min_hosts=2),
        Algorithm(name="hierarchical", plan=plan_hierarchical, ops=("all_reduce",), min_hosts=2,
                  needs_uniform_hosts=True),
        Algorithm(name="direct", plan=plan_direct, ops=("all_to_all",)),
        Algorithm(name="p2p", plan=plan_p2p, ops=("send",), plan_together=plan_p2p_together),
    )
}
