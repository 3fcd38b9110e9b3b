"""Which collective algorithms apply to a group: its shape on the hosts (how many hosts, equal GPUs
on each) and the menu NCCL's tuner chooses from (every applicable algorithm for "auto", or the one
asked for when it applies; a UserError naming the valid ones when it does not)."""

from __future__ import annotations

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.system.comm.algorithms import ALGORITHMS, Algorithm, Features
from simulator.system.comm.algorithms.base import host_matrix
from simulator.system.topology.graph import Topology


def group_shape(topo: Topology, group: tuple[int, ...]) -> tuple[int, bool, int]:
    """(hosts the group spans, equal GPUs on each, GPUs on the first host)."""
    rows, uniform = host_matrix(topo, group)
    return len(rows), uniform, len(rows[0])


def candidates(
    topo: Topology,
    op: str,
    group: tuple[int, ...],
    algorithm: str,
    features: Features | None = None,
) -> list[str]:
    """The algorithms `auto` tries for this op and group (or the one asked for, if it applies)."""
    shape = group_shape(topo, group)
    if algorithm == "auto":
        return [a.name for a in ALGORITHMS.values() if a.auto and a.applies(op, *shape, features)]
    algo: Algorithm | None = ALGORITHMS.get(algorithm)
    if algo is None:
        raise UserError(
            Problem(
                "algorithm",
                f"unknown algorithm {algorithm!r}",
                did_you_mean(algorithm, [*ALGORITHMS, "auto"]),
            )
        )
    why = algo.why_not(op, *shape, features)
    if why:
        ok = [a.name for a in ALGORITHMS.values() if a.applies(op, *shape, features)]
        raise UserError(Problem("algorithm", why, f"use one of {ok} or auto"))
    return [algorithm]
