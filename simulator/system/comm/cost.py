"""Collective-communication cost: algorithms -> routed flows -> alpha-beta time on the graph.

Each algorithm (system/comm/algorithms) turns a group of GPUs into phases of concurrent
flows, routed on the topology and summed per directed link. With the figures of the
algorithm's family and protocol (calibration.py, NCCL's tuning tables as its skeleton) a
phase costs
    latency   = link latencies along its critical path of steps
                + steps inside a node x per-step latency (+ an architecture's extra)
                + steps across the network x per-network-step latency
                + pipeline fill: fill_steps x one pipeline unit at the phase's rate
                  (+ a synchronization per chunk round for NVLS)
    bandwidth = max over links (bytes on the link / (link bw x link-kind efficiency))
                / (protocol efficiency x NCCL's algorithm factor x NVLS efficiency),
                and for LL at least the per-rank bytes / NCCL's LL bandwidth cap
and a collective is a base latency (+ a per-rank one for PAT, + a calibration profile's per-call
overhead) plus its phases in sequence. A profile's bandwidth scale multiplies every link's
effective capacity (a common factor on the link efficiencies).
As NCCL does (src/graph/tuning.cc, ncclTopoGetAlgoTime), "auto" predicts every applicable
(algorithm, protocol) pair and takes the fastest; that is how size, group shape and
topology select the algorithm.

Sizes follow nccl-tests: S is the full buffer (all-gather: output; reduce-scatter: input;
all-to-all: each rank's send buffer); busbw = algbw x 2(n-1)/n for all-reduce, x (n-1)/n
for all-gather, reduce-scatter and all-to-all, x 1 for broadcast and reduce.

A `CommContext` (one topology, one calibration, one GPU architecture, NVLS on or off) owns
every cache: effective link capacities, routed plans, costs by (op, group, size, algorithm),
and the fluid network's max-min rates by the set of concurrent phases.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.cache import Memo
from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.system.comm import nccl_tables
from simulator.system.comm.algorithms import ALGORITHMS, Algorithm, Features
from simulator.system.comm.algorithms.base import PhasePlan, Plan, merge_phases
from simulator.system.comm.calibration import (
    NCCL_CALIBRATION,
    OPS,
    Calibration,
    Protocol,
    Step,
    busbw_factor,
    p2p_protocol,
)
from simulator.system.comm.selection import candidates, group_shape
from simulator.system.comm.sharing import ShapeGraph
from simulator.system.hardware import GPU_ALIASES, GPU_CATALOG
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
    """The caches of collective costs on one topology under one calibration.

    `arch`: the GPUs' architecture (NCCL's per-architecture tables; default: the topology's
    catalog GPU's). `nvls`: NCCL_NVLS_ENABLE; NVLink SHARP runs where the topology has it
    (`nvls: true`) and the architecture supports it (Hopper and later)."""

    def __init__(
        self,
        topology: Topology,
        calibration: Calibration = NCCL_CALIBRATION,
        arch: str | None = None,
        nvls: bool = True,
        shared: dict | None = None,
    ):
        self.topology, self.calibration = topology, calibration
        # Group shapes, the algorithms `auto` tries and routed flows depend on the topology alone:
        # contexts of one topology under many calibrations (a calibration fit) may share them in
        # `shared` (routes are kept only there: a context's own plans are in its bounded memo).
        self._shapes = shared if shared is not None else {}
        self._routes = shared
        self.arch = arch or _catalog_arch(topology.gpu)
        self.figures = calibration.arch(self.arch)
        self.features = Features(
            nvls=nvls and topology.nvls and self.figures.nvls_efficiency > 0,
            sharp=topology.sharp and not topology.mesh,
        )
        # Link kinds are small codes: look the efficiency up once per kind present, not per edge.
        present = np.flatnonzero(np.bincount(topology.link_code, minlength=len(LINK_KINDS)))
        eff = np.zeros(len(LINK_KINDS))
        eff[present] = [calibration.efficiency(LINK_KINDS[k], self.arch) for k in present]
        self.capacity = (  # bytes/s after link efficiency (and a profile's bandwidth scale)
            topology.bw_bytes_per_s * eff[topology.link_code] * calibration.bandwidth_scale
        )
        # NCCL's intra-node latencies are NVLink's unless the GPUs only meet over PCIe (hwLat PCI row).
        self.over_pcie = not bool(
            np.isin(topology.link_code, [LINK_KINDS.index(k) for k in ("nvlink", "xgmi")]).any()
        )
        self._plans: Memo[tuple[Plan, tuple[float, ...], int]] = Memo(256)
        self._costs: Memo[CollectiveCost] = Memo(4096)
        self.rates: Memo[np.ndarray] = Memo(4096)
        self.demands: Memo[Any] = Memo(4096)  # a phase shape's links, loads and bound
        # Rates of sub-groups linked by links that can fill, and what pairs of shapes share.
        self.fill_rates: Memo[np.ndarray] = Memo(4096)
        self.fill_pairs: Memo[Any] = Memo(16384)
        self.sharing = ShapeGraph()  # which phases (by shape) share a link

    def plan(
        self, op: str, algorithm: str, groups: tuple[tuple[int, ...], ...]
    ) -> tuple[Plan, tuple[float, ...], int]:
        """Routed flows of one algorithm on some disjoint groups running it together, per byte of
        S (merged phase by phase), each phase's bandwidth seconds per byte of S on this
        calibration's capacities, and the plan's serial number."""

        def make():
            algo = ALGORITHMS[algorithm]
            twin = dict(algo.same_flows).get(op)
            if twin is not None:  # the same routed flows under another name: route them once
                pl, unit, serial = self.plan(twin, algorithm, groups)
                phases = tuple(
                    dataclasses.replace(ph, name=op) if ph.name == twin else ph for ph in pl.phases
                )
                return Plan(op, algorithm, groups[0], phases), unit, serial
            route = ("route", op, algorithm, groups)
            phases = self._routes.get(route) if self._routes is not None else None
            if phases is None:
                if algo.plan_together is not None:
                    phases = algo.plan_together(self.topology, op, groups)
                else:
                    phases = tuple(
                        merge_phases(same)
                        for same in zip(*(algo.plan(self.topology, op, g) for g in groups))
                    )
                if self._routes is not None:
                    self._routes[route] = phases
            if algo.family in NVLS_FAMILIES:
                phases = tuple(self._nvls_wire(ph) for ph in phases)
            pl = Plan(op, algorithm, groups[0], phases)
            unit = tuple(
                float((ph.unit_load / self.capacity[ph.edge_ids]).max())
                if len(ph.edge_ids)
                else 0.0
                for ph in pl.phases
            )
            return pl, unit, next(_SERIALS)

        return self._plans.get((op, algorithm, groups), make)

    def cost(
        self, op: str, group: tuple[int, ...], size: int, algorithm: str = "auto"
    ) -> CollectiveCost:
        """Time of one collective of S = `size` bytes on `group` (validated rank indices)."""
        return self.cost_together(op, (group,), size, algorithm)

    def cost_together(
        self, op: str, groups: tuple[tuple[int, ...], ...], size: int, algorithm: str = "auto"
    ) -> CollectiveCost:
        """One collective run at once by disjoint groups of equal shape (e.g. one per rail), as
        one transfer whose links carry all of them; its time is what each group sees."""
        return self._costs.get(
            (op, groups, size, algorithm), lambda: self._cost(op, groups, size, algorithm)
        )

    def _cost(
        self, op: str, groups: tuple[tuple[int, ...], ...], size: int, algorithm: str
    ) -> CollectiveCost:
        p = len(groups[0])
        if p == 1 or size == 0:
            return CollectiveCost(
                op=op,
                algorithm="none",
                protocol="none",
                group_size=p,
                size_bytes=size,
                time_s=0.0,
                latency_s=0.0,
                bandwidth_s=0.0,
                algbw_Bps=0.0,
                busbw_Bps=0.0,
                bytes_per_rank_sent=0.0,
                phases=(),
            )
        key = (op, groups[0], algorithm, self.features)
        if key not in self._shapes:
            self._shapes[key] = (
                group_shape(self.topology, groups[0]),
                candidates(self.topology, op, groups[0], algorithm, self.features),
            )
        shape, names = self._shapes[key]
        best = None
        # NCCL picks a send's protocol by its size (calibration.p2p_protocol), where the
        # calibration has it; the others' by the fastest predicted time, as its tuner does.
        p2p = p2p_protocol(size)
        if p2p not in {q.name for q in self.calibration.protocols}:
            p2p = ""
        for name in names:
            algo = ALGORITHMS[name]
            pl, unit, serial = self.plan(op, name, groups)
            for proto in self.calibration.protocols:
                step = self.calibration.step(algo.family, proto.name)
                if step is None or proto.name not in algo.protocols:
                    continue
                if algo.family == "p2p" and p2p and proto.name != p2p:
                    continue
                factor = self._bw_factor(algo, step)
                parts = [
                    self._phase_cost(ph, u, proto, step, factor, size, shape)
                    for ph, u in zip(pl.phases, unit)
                ]
                t = self._base_s(step, p) + sum(a + b for a, b in parts)
                if best is None or t < best[0]:
                    best = (t, pl, proto, step, factor, parts, serial)
        if best is None:
            raise UserError(
                Problem(
                    "algorithm",
                    f"no protocol of this calibration runs {algorithm} for {op}",
                    "use auto",
                )
            )
        return self._costed(*best, size)

    def _base_s(self, step: Step, ranks: int) -> float:
        """Once per call: NCCL's baseLat (+ PAT's per rank) and a profile's per-call overhead."""
        return step.base_s + step.per_rank_s * ranks + self.calibration.call_overhead_s

    def _bw_factor(self, algo: Algorithm, step: Step) -> float:
        """NCCL's algorithm bandwidth factor (tuning.cc)."""
        return step.bw_factor

    def _nvls_wire(self, ph: PhasePlan) -> PhasePlan:
        """NVLS moves multimem traffic at the architecture's NVLS efficiency of the NVLink rate
        (NCCL tuning.cc: intraBw = bwIntra x nvlsEfficiency; the network part is not scaled):
        its NVLink edges carry load / efficiency."""
        nvlink = self.topology.link_code[ph.edge_ids] == LINK_KINDS.index("nvlink")
        load = np.where(nvlink, ph.unit_load / self.figures.nvls_efficiency, ph.unit_load)
        return dataclasses.replace(ph, unit_load=load)

    def _phase_cost(
        self,
        ph: PhasePlan,
        unit_time: float,
        proto: Protocol,
        step: Step,
        factor: float,
        size: int,
        shape: tuple[int, bool, int],
    ) -> tuple[float, float]:
        """(latency, bandwidth seconds) of one phase at S = size bytes."""
        intra = (step.pci_step_s if self.over_pcie else step.step_s) + self.figures.step_extra_s
        net = step.net_step_s + self.figures.net_step_extra_s
        latency = ph.path_latency_s + (ph.n_steps - ph.net_steps) * intra + ph.net_steps * net
        bandwidth = size * unit_time / (proto.efficiency * factor)
        sent = float(ph.sent_per_rank.max()) * size
        if proto.name == "LL":  # NCCL's llMaxBw: a cap on the LL protocol's bus bandwidth
            bandwidth = max(bandwidth, sent / self.calibration.ll_cap(self.arch, shape[0]))
        if bandwidth > 0 and sent > 0:
            latency += self._fill_s(ph, step, size, sent, sent / bandwidth, shape)
        return max(latency, 0.0), bandwidth

    def _fill_s(
        self,
        ph: PhasePlan,
        step: Step,
        size: int,
        sent: float,
        rate: float,
        shape: tuple[int, bool, int],
    ) -> float:
        """Pipeline fill and drain: `fill_steps` units at the phase's per-rank rate. A ring's unit
        is what a rank sends per step, up to `fill_unit_bytes`; a send's is NCCL's p2p chunk
        (calibration.P2P_*); NVLS's is one round of NCCL's chunks over all channels and
        heads (src/enqueue.cc), which also pays `round_s` per round."""
        if step.fill_unit_bytes > 0:
            unit = step.fill_unit_bytes
            if ph.net_steps and step.net_fill_unit_bytes:  # p2p over the network: its chunk
                unit = step.net_fill_unit_bytes
            return step.fill_steps * min(unit, sent / max(ph.n_steps, 1.0)) / rate
        if not (step.fill_steps or step.round_s):
            return 0.0
        hosts, _, per_host = shape
        channels = self.figures.nvls_channels[0 if hosts == 1 else 1]
        ops = channels * min(per_host, nccl_tables.NVLS_MAX_ARITY)
        chunk = (
            nccl_tables.nvls_chunk(size, ops)
            if hosts == 1
            else nccl_tables.nvls_tree_chunk(size, ops, hosts)
        )
        round_bytes = ops * chunk
        return (
            step.fill_steps * min(size, round_bytes) * (sent / size) / rate
            + max(1.0, size / round_bytes) * step.round_s
        )

    def _costed(
        self,
        t: float,
        pl: Plan,
        proto: Protocol,
        step: Step,
        factor: float,
        parts,
        serial: int,
        size: int,
    ) -> CollectiveCost:
        scale = size / (
            proto.efficiency * factor
        )  # wire bytes per byte of load, as the bandwidth term
        base = self._base_s(step, len(pl.group))
        phases = tuple(
            Phase(
                shape=(serial, i),
                name=ph.name,
                latency_s=lat + (base if i == 0 else 0.0),
                bandwidth_s=bw,
                edge_ids=ph.edge_ids,
                wire_bytes=ph.unit_load * scale,
                per_rank_wire_bytes=float(ph.sent_per_rank.max()) * scale,
            )
            for i, (ph, (lat, bw)) in enumerate(zip(pl.phases, parts))
        )
        sent = sum(ph.sent_per_rank for ph in pl.phases)
        assert isinstance(sent, np.ndarray), "a plan has at least one phase"
        algbw = size / t
        return CollectiveCost(
            op=pl.op,
            algorithm=pl.algorithm,
            protocol=proto.name,
            group_size=len(pl.group),
            size_bytes=size,
            time_s=t,
            latency_s=base + sum(a for a, _ in parts),
            bandwidth_s=sum(b for _, b in parts),
            algbw_Bps=algbw,
            busbw_Bps=algbw * busbw_factor(pl.op, len(pl.group)),
            bytes_per_rank_sent=float(sent.max()) * size,
            phases=phases,
        )


NVLS_FAMILIES = ("nvls", "nvls_tree")


def _catalog_arch(gpu: str) -> str:
    """The architecture of a topology's catalog GPU (Ampere's tables for a name not in it)."""
    key = gpu.strip().lower()
    entry = GPU_CATALOG.get(GPU_ALIASES.get(key, key))
    return entry.arch if entry is not None else "ampere"


def collective_cost(
    topology: Topology,
    op: str,
    group: Any,
    size_bytes: int,
    algorithm: str = "auto",
    calibration: Calibration = NCCL_CALIBRATION,
    ctx: CommContext | None = None,
    nvls: bool = True,
) -> CollectiveCost:
    """Time of one collective of S = `size_bytes` on `group`.

    `group`: 'all', 'host[:N]', 'rail[:N]', or GPU vertex names / rank indices in rank order
    (broadcast and reduce use the first as root). `algorithm`: 'auto' or a name in ALGORITHMS.
    One protocol is chosen per collective (all phases of a hierarchical one share it). Pass a
    `ctx` to reuse its caches across calls; `nvls=False` is NCCL_NVLS_ENABLE=0.
    """
    if op not in OPS:
        raise UserError(Problem("op", f"unknown collective {op!r}", did_you_mean(op, OPS)))
    if (
        isinstance(size_bytes, bool)
        or not isinstance(size_bytes, (int, np.integer))
        or size_bytes < 0
    ):
        raise UserError(Problem("size", f"expected a byte count >= 0, got {size_bytes!r}"))
    ctx = ctx or CommContext(topology, calibration, nvls=nvls)
    return ctx.cost(op, resolve_group(topology, group), int(size_bytes), algorithm)
