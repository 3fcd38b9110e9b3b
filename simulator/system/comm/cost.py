"""Collective-communication cost: algorithms -> routed flows -> alpha-beta time on the graph.

Each algorithm (system/comm/algorithms) turns a group of GPUs into phases of concurrent
flows, routed on the topology and summed per directed link. A phase costs
    latency   = sum of link latencies along its critical path of steps
                + steps x per-step software overhead (+ more for steps crossing a NIC)
    bandwidth = max over links (bytes on the link / (link bw x link-kind efficiency))
                / protocol efficiency
and a collective is a base launch latency plus its phases in sequence. As NCCL does
(src/graph/tuning.cc, ncclTopoGetAlgoTime), "auto" predicts every applicable
(algorithm, protocol) pair and takes the fastest; that is how size, group shape and
topology select the algorithm.

Sizes follow nccl-tests: S is the full buffer (all-gather: output; reduce-scatter: input;
all-to-all: each rank's send buffer); busbw = algbw x 2(n-1)/n for all-reduce, x (n-1)/n
for all-gather, reduce-scatter and all-to-all, x 1 for broadcast and reduce.

A `CommContext` (one topology, one calibration) owns every cache: effective link
capacities, routed plans, costs by (op, group, size, algorithm), and the fluid network's
max-min rates by the set of concurrent phases.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.cache import Memo
from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.system.comm.algorithms import ALGORITHMS, Algorithm
from simulator.system.comm.algorithms.base import Plan, host_matrix, merge_phases
from simulator.system.comm.calibration import NCCL_CALIBRATION, OPS, Calibration, Protocol, busbw_factor
from simulator.system.topology.builders import LINK_KINDS
from simulator.system.topology.graph import Topology
from simulator.system.topology.groups import resolve_group


@dataclass(frozen=True, eq=False, kw_only=True)
class Phase:
    """One phase of a costed collective, in the form the network model consumes."""

    # What the fluid network's rates depend on: the plan's phase (its links and the bytes on each
    # per byte a rank sends), not the size or the protocol, which scale all of them alike.
    shape: tuple[int, int]
    name: str
    latency_s: float
    bandwidth_s: float  # standalone: max over links of wire_bytes / effective capacity
    edge_ids: np.ndarray
    wire_bytes: np.ndarray  # bytes on each edge, protocol overhead included
    per_rank_wire_bytes: float  # bytes the busiest rank sends (the fairness unit, see network.py)


@dataclass(frozen=True, eq=False, kw_only=True)
class CollectiveCost:
    """A costed collective: the chosen (algorithm, protocol), its time and its phases.

    time_s = latency_s + bandwidth_s = sum of the phases' latency_s + bandwidth_s. A no-op
    (one rank or zero bytes) has time 0, algbw = busbw = 0 (as nccl-tests prints) and no phases.
    """

    op: str
    algorithm: str
    protocol: str
    group_size: int
    size_bytes: int
    time_s: float
    latency_s: float
    bandwidth_s: float
    algbw_Bps: float
    busbw_Bps: float
    bytes_per_rank_sent: float  # data bytes the busiest rank sends (ring all-reduce: 2(p-1)/p S)
    phases: tuple[Phase, ...]


# Plan serial numbers, unique across every CommContext, so a plan is never mistaken for another
# one in a rate memo (not even one evicted and routed again).
_SERIALS = itertools.count()


class CommContext:
    """The caches of collective costs on one topology under one calibration."""

    def __init__(self, topology: Topology, calibration: Calibration = NCCL_CALIBRATION):
        self.topology, self.calibration = topology, calibration
        # Link kinds are small codes: look the efficiency up once per kind present, not per edge.
        present = np.flatnonzero(np.bincount(topology.link_code, minlength=len(LINK_KINDS)))
        eff = np.zeros(len(LINK_KINDS))
        eff[present] = [calibration.efficiency(LINK_KINDS[k]) for k in present]
        self.capacity = topology.bw_bytes_per_s * eff[topology.link_code]  # bytes/s after link efficiency
        self._plans: Memo[tuple[Plan, tuple[float, ...]]] = Memo(256)
        self._costs: Memo[CollectiveCost] = Memo(4096)
        self.rates: Memo[np.ndarray] = Memo(4096)
        self.overlaps: Memo[bool] = Memo(65536)  # do two phases (by shape) share a link?
        self.edge_sets: Memo[frozenset] = Memo(1024)

    def plan(self, op: str, algorithm: str, groups: tuple[tuple[int, ...], ...]) -> tuple[Plan, tuple[float, ...], int]:
        """Routed flows of one algorithm on some disjoint groups running it together, per byte of
        S (merged phase by phase), each phase's bandwidth seconds per byte of S on this
        calibration's capacities, and the plan's serial number."""

        def make():
            algo = ALGORITHMS[algorithm]
            twin = dict(algo.same_flows).get(op)
            if twin is not None:  # the same routed flows under another name: route them once
                pl, unit, serial = self.plan(twin, algorithm, groups)
                phases = tuple(dataclasses.replace(ph, name=op) if ph.name == twin else ph for ph in pl.phases)
                return Plan(op, algorithm, groups[0], phases), unit, serial
            if algo.plan_together is not None:
                phases = algo.plan_together(self.topology, op, groups)
            else:
                phases = tuple(merge_phases(same) for same in zip(*(algo.plan(self.topology, op, g) for g in groups)))
            pl = Plan(op, algorithm, groups[0], phases)
            unit = tuple(float((ph.unit_load / self.capacity[ph.edge_ids]).max()) if len(ph.edge_ids) else 0.0
                         for ph in pl.phases)
            return pl, unit, next(_SERIALS)

        return self._plans.get((op, algorithm, groups), make)

    def cost(self, op: str, group: tuple[int, ...], size: int, algorithm: str = "auto") -> CollectiveCost:
        """Time of one collective of S = `size` bytes on `group` (validated rank indices)."""
        return self.cost_together(op, (group,), size, algorithm)

    def cost_together(self, op: str, groups: tuple[tuple[int, ...], ...], size: int,
                      algorithm: str = "auto") -> CollectiveCost:
        """One collective run at once by disjoint groups of equal shape (e.g. one per rail), as
        one transfer whose links carry all of them; its time is what each group sees."""
        return self._costs.get((op, groups, size, algorithm), lambda: self._cost(op, groups, size, algorithm))

    def _cost(self, op: str, groups: tuple[tuple[int, ...], ...], size: int, algorithm: str) -> CollectiveCost:
        p = len(groups[0])
        if p == 1 or size == 0:
            return CollectiveCost(op=op, algorithm="none", protocol="none", group_size=p, size_bytes=size,
                                  time_s=0.0, latency_s=0.0, bandwidth_s=0.0, algbw_Bps=0.0, busbw_Bps=0.0,
                                  bytes_per_rank_sent=0.0, phases=())
        best = None
        for name in candidates(self.topology, op, groups[0], algorithm):
            pl, unit, serial = self.plan(op, name, groups)
            for proto in self.calibration.protocols:
                parts = [_phase_cost(ph, u, proto, size) for ph, u in zip(pl.phases, unit)]
                t = proto.base_latency_s + sum(a + b for a, b in parts)
                if best is None or t < best[0]:
                    best = (t, pl, proto, parts, serial)
        t, pl, proto, parts, serial = best
        return self._costed(pl, proto, parts, size, t, serial)

    def _costed(self, pl: Plan, proto: Protocol, parts, size: int, t: float, serial: int) -> CollectiveCost:
        scale = size / proto.efficiency
        phases = tuple(
            Phase(shape=(serial, i), name=ph.name,
                  latency_s=lat + (proto.base_latency_s if i == 0 else 0.0), bandwidth_s=bw,
                  edge_ids=ph.edge_ids, wire_bytes=ph.unit_load * scale,
                  per_rank_wire_bytes=float(ph.sent_per_rank.max()) * scale)
            for i, (ph, (lat, bw)) in enumerate(zip(pl.phases, parts)))
        sent = sum(ph.sent_per_rank for ph in pl.phases)
        algbw = size / t
        return CollectiveCost(op=pl.op, algorithm=pl.algorithm, protocol=proto.name, group_size=len(pl.group),
                              size_bytes=size, time_s=t, latency_s=proto.base_latency_s + sum(a for a, _ in parts),
                              bandwidth_s=sum(b for _, b in parts), algbw_Bps=algbw,
                              busbw_Bps=algbw * busbw_factor(pl.op, len(pl.group)),
                              bytes_per_rank_sent=float(sent.max()) * size, phases=phases)


def _phase_cost(ph, unit_time: float, proto: Protocol, size: int) -> tuple[float, float]:
    latency = ph.path_latency_s + ph.n_steps * proto.step_latency_s + ph.net_steps * proto.net_step_latency_s
    return latency, size * unit_time / proto.efficiency


def candidates(topo: Topology, op: str, group: tuple[int, ...], algorithm: str) -> list[str]:
    """The algorithms `auto` tries for this op and group (or the one asked for, if it applies)."""
    rows, uniform = host_matrix(topo, group)
    shape = (len(rows), uniform, len(rows[0]))
    if algorithm == "auto":
        return [a.name for a in ALGORITHMS.values() if a.applies(op, *shape)]
    algo: Algorithm | None = ALGORITHMS.get(algorithm)
    if algo is None:
        raise UserError(Problem("algorithm", f"unknown algorithm {algorithm!r}",
                                did_you_mean(algorithm, [*ALGORITHMS, "auto"])))
    if not algo.applies(op, *shape):
        ok = [a.name for a in ALGORITHMS.values() if a.applies(op, *shape)]
        raise UserError(Problem("algorithm", algo.why_not(op, *shape), f"use one of {ok} or auto"))
    return [algorithm]


def collective_cost(topology: Topology, op: str, group: Any, size_bytes: int, algorithm: str = "auto",
                    calibration: Calibration = NCCL_CALIBRATION, ctx: CommContext | None = None) -> CollectiveCost:
    """Time of one collective of S = `size_bytes` on `group`.

    `group`: 'all', 'host[:N]', 'rail[:N]', or GPU vertex names / rank indices in rank order
    (broadcast and reduce use the first as root). `algorithm`: 'auto' or a name in ALGORITHMS.
    One protocol is chosen per collective (all phases of a hierarchical one share it). Pass a
    `ctx` to reuse its caches across calls.
    """
    if op not in OPS:
        raise UserError(Problem("op", f"unknown collective {op!r}", did_you_mean(op, OPS)))
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, (int, np.integer)) or size_bytes < 0:
        raise UserError(Problem("size", f"expected a byte count >= 0, got {size_bytes!r}"))
    ctx = ctx or CommContext(topology, calibration)
    return ctx.cost(op, resolve_group(topology, group), int(size_bytes), algorithm)
