"""Collective-communication cost: algorithms -> routed flows -> alpha-beta time on the graph.

Each algorithm (ring, double binary tree, hierarchical, direct) turns a group of GPUs into
phases of concurrent flows (src, dst, bytes per byte of the buffer S). The flows are routed
on the topology and summed per directed link, so a ring that crosses one uplink twice, or a
group spread over hosts, pays for it. A phase costs
    latency   = sum of link latencies along its critical path of steps
                + steps x per-step software overhead (+ more for steps crossing a NIC)
    bandwidth = max over links (bytes on the link / (link bw x link-kind efficiency))
                / protocol efficiency
and a collective is a base launch latency plus its phases in sequence. As NCCL does
(src/graph/tuning.cc, ncclTopoGetAlgoTime), "auto" predicts every applicable
(algorithm, protocol) pair and takes the fastest; that is how size, group shape and
topology select the algorithm. Plans (routed, per-link loads per byte of S) are cached
per (topology, op, algorithm, group), so costing a size is O(1) once planned.

Sizes follow nccl-tests: S is the full buffer (all-gather: output; reduce-scatter: input;
all-to-all: each rank's send buffer); busbw = algbw x 2(n-1)/n for all-reduce, x (n-1)/n
for all-gather, reduce-scatter and all-to-all, x 1 for broadcast and reduce.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.core.errors import Problem, ScenarioError, did_you_mean
from simulator.system.topology.graph import Topology, resolve_group

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all")
# Largest all-to-all group: its p*(p-1) flows are enumerated.
MAX_ALL_TO_ALL_RANKS = 1024


@dataclass(frozen=True)
class Protocol:
    """An NCCL protocol: wire efficiency and its latencies."""

    name: str
    efficiency: float  # data bytes per wire byte
    base_latency_s: float  # once per collective call
    step_latency_s: float  # software overhead per algorithm step
    net_step_latency_s: float  # extra per step that crosses a NIC (proxy thread, RDMA)


@dataclass(frozen=True)
class Calibration:
    """Everything tuned to measurements, in one place; `NCCL_CALIBRATION` cites the sources."""

    link_efficiency: tuple[tuple[str, float], ...]
    protocols: tuple[Protocol, ...]

    def efficiency(self, link_kind: str) -> float:
        return dict(self.link_efficiency)[link_kind]


NCCL_CALIBRATION = Calibration(
    link_efficiency=(
        # NVIDIA/nccl-tests#149 (maintainer): NVLink3 25 GB/s line rate ~20 GB/s effective with
        # 128 B payloads (240 GB/s for 12 links), ~230 GB/s observed; Azure ND A100 v4 table:
        # 231.6 GB/s busbw at 8 GiB. 230 / 300 = 0.767.
        ("nvlink", 230.0 / 300.0),
        # NCCL src/graph/topo.cc sets PCIe bw = width*speed/80, i.e. 75% of the raw rate
        # (Gen3 x16 = 12 GB/s, topo.h PCI_BW); no PCIe-only nccl-tests figure in our data.
        ("pcie", 0.75),
        # No measurement in our data; same 75% rule as PCIe (both are load/store fabrics).
        ("cpu_link", 0.75),
        # NVIDIA/nccl#412 (maintainer): ~24 GB/s busbw per HDR 200 Gb/s NIC (25 GB/s line).
        ("ib", 24.0 / 25.0),
        # RoCE assumed like IB (same NICs, same RDMA path).
        ("ethernet", 24.0 / 25.0),
        ("ideal", 1.0),
    ),
    protocols=(
        # Efficiencies: LL sends 8-byte lines of 4 data + 4 flag bytes; LL128 uses 120 of
        # 128 bytes (NCCL src/include/device.h, NCCL_LL128_DATAELEMS / LINEELEMS); Simple
        # sends raw data.
        # Per-step software latency: LL128 and Simple from NCCL src/graph/tuning.cc hwLat
        # (NVLink, Ring: 1.9 and 3.4 us) less our 0.7 us GPU->NVSwitch->GPU route latency.
        # LL's step (1.5 us) and base (3 us) are fitted to two latency figures: 8x A100 1 KiB
        # all-reduce 45 us (Azure ND A100 v4) and 2x A100 32 B 10.1 us (NVIDIA/nccl#583).
        # LL128/Simple base latencies (122/134 us per call) are fitted once to the 8x A100
        # bandwidth ramp, 1 MiB..8 GiB (Azure ND A100 v4 table; comparison printed by
        # tests/test_collectives.py). They stand for the pipeline start-up that makes busbw
        # climb slowly with size; charged once per call, not per step, so large rings do
        # not inherit an 8-GPU fit.
        # Network extras per step crossing a NIC: tuning.cc hwLat NET minus NVLINK, Ring
        # (LL 2.7-0.6, LL128 4.0-1.9, Simple 14-3.4 us).
        Protocol("LL", 0.5, 3.0e-6, 1.5e-6, 2.1e-6),
        Protocol("LL128", 120.0 / 128.0, 122e-6, 1.2e-6, 2.1e-6),
        Protocol("Simple", 1.0, 134e-6, 2.7e-6, 10.6e-6),
    ),
)

# Hand-checkable model: full line rate, link latencies only, one protocol.
IDEAL_CALIBRATION = Calibration(
    link_efficiency=tuple((k, 1.0) for k, _ in NCCL_CALIBRATION.link_efficiency),
    protocols=(Protocol("Simple", 1.0, 0.0, 0.0, 0.0),),
)


def busbw_factor(op: str, n: int) -> float:
    """nccl-tests doc/PERFORMANCE.md: busbw = algbw x this factor."""
    if n <= 1:
        return 1.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


# ---- plans: routed flows per byte of S -------------------------------------------------


@dataclass(frozen=True, eq=False)
class PhasePlan:
    """One phase of concurrent flows, normalized to S = 1 byte."""

    name: str
    edge_ids: np.ndarray  # edges carrying traffic
    unit_load: np.ndarray  # data bytes on each of those edges per byte of S
    n_steps: float  # sequential algorithm steps (each pays the software overhead)
    net_steps: float  # of which cross a NIC
    path_latency_s: float  # link latencies summed along the critical path of steps
    sent_per_rank: np.ndarray  # data bytes each rank sends per byte of S
    recv_per_rank: np.ndarray
    unit_time: dict = field(default_factory=dict)  # Calibration -> bandwidth seconds per byte of S


@dataclass(frozen=True, eq=False)
class Plan:
    op: str
    algorithm: str
    group: tuple[int, ...]
    phases: tuple[PhasePlan, ...]


def _host_matrix(topo: Topology, group: Sequence[int]) -> tuple[list[np.ndarray], bool]:
    """The group's GPUs by host (hosts in order of first appearance); True if all hosts have equal counts."""
    g = np.asarray(group, np.int64)
    hosts = topo.host_array()[g]
    uniq, first = np.unique(hosts, return_index=True)
    order = uniq[np.argsort(first)]
    rank_of_host = np.empty(uniq.max() + 1, np.int64)
    rank_of_host[order] = np.arange(len(order))
    sorted_g = g[np.argsort(rank_of_host[hosts], kind="stable")]
    counts = np.bincount(rank_of_host[hosts], minlength=len(order))
    rows = np.split(sorted_g, np.cumsum(counts)[:-1])
    return rows, bool((counts == counts[0]).all())


def _flows(
    topo: Topology, rank_of: np.ndarray, src: np.ndarray, dst: np.ndarray, w: np.ndarray, p: int
):
    """Route flows; return per-edge loads, per-flow route latency and inter-host flags, per-rank bytes."""
    flow_i, edge_i = topo.routes(src, dst)
    load = np.bincount(edge_i, weights=w[flow_i], minlength=len(topo.edges))
    edge_ids = np.flatnonzero(load)
    lat = np.bincount(flow_i, weights=topo.latency_s[edge_i], minlength=len(src))
    inter = topo.host_array()[src] != topo.host_array()[dst]
    sent = np.bincount(rank_of[src], weights=w, minlength=p)
    recv = np.bincount(rank_of[dst], weights=w, minlength=p)
    return edge_ids, load[edge_ids], lat, inter, sent, recv


def _phase(topo, group, name, src, dst, w, steps, critical=None) -> PhasePlan:
    """A phase whose steps each take the mean flow's route (rings), unless `critical` is given."""
    rank_of = np.full(topo.num_gpus, -1, np.int64)
    rank_of[np.asarray(group, np.int64)] = np.arange(len(group))
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    w = np.broadcast_to(np.asarray(w, float), src.shape).astype(float)
    edge_ids, load, lat, inter, sent, recv = _flows(topo, rank_of, src, dst, w, len(group))
    if critical is None:
        path, net = steps * float(lat.mean()), steps * float(inter.mean())
    else:
        path, net = critical(lat, inter)
    return PhasePlan(name, edge_ids, load, float(steps), net, path, sent, recv)


def _ring_channels(topo: Topology, group: tuple[int, ...]) -> list[np.ndarray]:
    """Ring orders, one per channel. Hosts stay contiguous; on k GPUs per host, k channels
    enter each host at a different GPU so each uses its own NIC/rail (as NCCL's rings do)."""
    rows, uniform = _host_matrix(topo, group)
    if len(rows) > 1 and uniform and len(rows[0]) > 1:
        mat, k = np.array(rows), len(rows[0])
        return [mat[:, (c + np.arange(k)) % k].ravel() for c in range(k)]
    return [np.concatenate(rows)]


def _plan_ring(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    p, chans = len(group), _ring_channels(topo, group)
    c = len(chans)
    if op in ("broadcast", "reduce"):
        return (_chain_phase(topo, group, op, chans),)
    steps = 2 * (p - 1) if op == "all_reduce" else p - 1
    src = np.concatenate(chans)
    dst = np.concatenate([np.roll(o, -1) for o in chans])
    # Each step every rank passes S/p (split over c channels) to its successor.
    return (_phase(topo, group, op, src, dst, steps / (p * c), steps),)


def _chain_phase(topo, group, op, chans) -> PhasePlan:
    """Pipelined broadcast/reduce along each channel's ring, cut open at the root (group[0])."""
    root, p, c = group[0], len(group), len(chans)
    srcs, dsts = [], []
    for order in chans:
        order = np.roll(order, -int(np.flatnonzero(order == root)[0]))
        a, b = (order[:-1], order[1:]) if op == "broadcast" else (order[1:], order[:-1])
        srcs.append(a)
        dsts.append(b)
    return _phase(topo, group, op, np.concatenate(srcs), np.concatenate(dsts), 1.0 / c, p - 1)


def _btree_parent(n: int, rank: int) -> int:
    """NCCL src/graph/trees.cc ncclGetBtree: parent of `rank` in the in-order binary tree."""
    if rank == 0:
        return -1
    bit = 1
    while bit < n and not bit & rank:
        bit <<= 1
    up = (rank ^ bit) | (bit << 1)
    return rank ^ bit if up >= n else up


def double_binary_tree(n: int) -> tuple[list[int], list[int]]:
    """NCCL ncclGetDtree: the second tree mirrors the first (n even) or shifts it by one (n odd)."""
    t0 = [_btree_parent(n, r) for r in range(n)]
    if n % 2:
        t1 = [-1 if (u := _btree_parent(n, (r - 1) % n)) == -1 else (u + 1) % n for r in range(n)]
    else:
        t1 = [-1 if (u := _btree_parent(n, n - 1 - r)) == -1 else n - 1 - u for r in range(n)]
    return t0, t1


def _depth(parent: list[int]) -> int:
    best = 0
    for r in range(len(parent)):
        d, at = 0, r
        while parent[at] != -1:
            at, d = parent[at], d + 1
        best = max(best, d)
    return best


def _plan_tree(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """Double binary tree across hosts, a chain inside each host; reduce up, broadcast down,
    pipelined, each tree carrying half the buffer; one channel per local GPU (NIC)."""
    rows, uniform = _host_matrix(topo, group)
    trees = [np.array(t) for t in double_binary_tree(len(rows))]
    if uniform:
        mat, k = np.array(rows), len(rows[0])
        chains = [mat[:, (c + np.arange(k)) % k] for c in range(k)]
    else:
        width = max(len(r) for r in rows)
        chains = [np.array([np.pad(r, (0, width - len(r)), constant_values=-1) for r in rows])]
    src, dst = [], []
    for par in trees:
        child = np.flatnonzero(par >= 0)
        for chain in chains:
            heads = chain[:, 0]
            src += [heads[child], heads[par[child]]]
            dst += [heads[par[child]], heads[child]]
            a, b = chain[:, 1:].ravel(), chain[:, :-1].ravel()
            real = (a >= 0) & (b >= 0)
            src += [a[real], b[real]]
            dst += [b[real], a[real]]
    depth = max(_depth(list(t)) for t in trees)
    chain_len = max(len(r) for r in rows) - 1

    def critical(lat, inter):
        intra = float(lat[~inter].mean()) if (~inter).any() else 0.0
        net = float(lat[inter].mean()) if inter.any() else 0.0
        return 2 * (chain_len * intra + depth * net), 2.0 * depth

    steps = 2 * (chain_len + depth)
    return (
        _phase(
            topo,
            group,
            "tree",
            np.concatenate(src),
            np.concatenate(dst),
            1.0 / (2 * len(chains)),
            steps,
            critical,
        ),
    )


def _plan_hierarchical(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """Intra-host reduce-scatter, inter-host all-reduce of each shard along its rail, intra-host all-gather."""
    rows, uniform = _host_matrix(topo, group)
    if not uniform or len(rows) < 2 or len(rows[0]) < 2:
        raise ScenarioError(
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
    rs = _phase(topo, group, "intra_reduce_scatter", intra_src, intra_dst, (k - 1) / k, k - 1)
    # k rings (one per rail) all-reduce S/k over h hosts: 2(h-1) steps of S/(k*h).
    inter_src, inter_dst = mat.T.ravel(), np.roll(mat, -1, axis=0).T.ravel()
    ar = _phase(
        topo, group, "inter_all_reduce", inter_src, inter_dst, 2 * (h - 1) / (k * h), 2 * (h - 1)
    )
    ag = _phase(topo, group, "intra_all_gather", intra_src, intra_dst, (k - 1) / k, k - 1)
    return rs, ar, ag


def _plan_direct(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """All-to-all as simultaneous point-to-point sends of S/p to every other rank."""
    p = len(group)
    if p > MAX_ALL_TO_ALL_RANKS:
        raise ScenarioError(
            Problem(
                "group", f"all_to_all over {p} GPUs is not modelled (limit {MAX_ALL_TO_ALL_RANKS})"
            )
        )
    g = np.array(group)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    keep = a != b

    def critical(lat, inter):
        return float(lat.max()), float(inter.any())

    return (_phase(topo, group, op, g[a[keep]], g[b[keep]], 1.0 / p, 1, critical),)


# algorithm -> (planner, ops it implements)
ALGORITHMS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "ring": (_plan_ring, ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce")),
    "tree": (_plan_tree, ("all_reduce",)),
    "hierarchical": (_plan_hierarchical, ("all_reduce",)),
    "direct": (_plan_direct, ("all_to_all",)),
}


@functools.lru_cache(maxsize=256)
def plan(topo: Topology, op: str, algorithm: str, group: tuple[int, ...]) -> Plan:
    """Routed flows of one algorithm on one group, per byte of S (cached)."""
    return Plan(op, algorithm, group, ALGORITHMS[algorithm][0](topo, op, group))


def _candidates(topo: Topology, op: str, group: tuple[int, ...], algorithm: str) -> list[str]:
    if algorithm != "auto":
        if algorithm not in ALGORITHMS:
            raise ScenarioError(
                Problem(
                    "algorithm",
                    f"unknown algorithm {algorithm!r}",
                    did_you_mean(algorithm, list(ALGORITHMS) + ["auto"]),
                )
            )
        if op not in ALGORITHMS[algorithm][1]:
            ok = [a for a, (_, ops) in ALGORITHMS.items() if op in ops]
            raise ScenarioError(
                Problem(
                    "algorithm", f"{algorithm} does not implement {op}", f"use one of {ok} or auto"
                )
            )
        return [algorithm]
    names = [a for a, (_, ops) in ALGORITHMS.items() if op in ops]
    rows, uniform = _host_matrix(topo, group)
    if len(rows) < 2:
        names = [a for a in names if a not in ("tree", "hierarchical")]
    elif not uniform or len(rows[0]) < 2:
        names = [a for a in names if a != "hierarchical"]
    return names


# ---- cost ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Phase:
    """One phase of a costed collective, in the form the network model consumes."""

    name: str
    latency_s: float
    bandwidth_s: float  # standalone: max over links of wire_bytes / effective capacity
    edge_ids: np.ndarray
    wire_bytes: np.ndarray  # bytes on each edge, protocol overhead included
    per_rank_wire_bytes: float  # bytes the busiest rank sends (the fairness unit, see network.py)


@dataclass(frozen=True, eq=False)
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


def effective_capacity(topo: Topology, cal: Calibration) -> np.ndarray:
    """Per-edge bytes/s after the link-kind efficiency (cached per topology and calibration)."""
    cache = topo.__dict__.setdefault("_capacity_cache", {})
    if cal not in cache:
        kinds, inv = np.unique(topo.link_kind.astype(str), return_inverse=True)
        eff = np.array([cal.efficiency(k) for k in kinds], float)[inv]
        cache[cal] = topo.bw_bytes_per_s * eff
    return cache[cal]


def _unit_time(topo: Topology, ph: PhasePlan, cal: Calibration) -> float:
    if cal not in ph.unit_time:
        cap = effective_capacity(topo, cal)[ph.edge_ids]
        ph.unit_time[cal] = float((ph.unit_load / cap).max()) if len(cap) else 0.0
    return ph.unit_time[cal]


def _phase_cost(
    topo, ph: PhasePlan, proto: Protocol, cal: Calibration, size: int
) -> tuple[float, float]:
    latency = (
        ph.path_latency_s
        + ph.n_steps * proto.step_latency_s
        + ph.net_steps * proto.net_step_latency_s
    )
    return latency, size * _unit_time(topo, ph, cal) / proto.efficiency


def collective_cost(
    topology: Topology,
    op: str,
    group: Any,
    size_bytes: int,
    algorithm: str = "auto",
    calibration: Calibration = NCCL_CALIBRATION,
) -> CollectiveCost:
    """Time of one collective of S = `size_bytes` on `group`.

    `group`: 'all', 'host[:N]', 'rail[:N]', or GPU vertex names / rank indices in rank order
    (broadcast and reduce use the first as root). `algorithm`: 'auto' or a name in ALGORITHMS.
    One protocol is chosen per collective (all phases of a hierarchical one share it).
    """
    if op not in OPS:
        raise ScenarioError(Problem("op", f"unknown collective {op!r}", did_you_mean(op, OPS)))
    if (
        isinstance(size_bytes, bool)
        or not isinstance(size_bytes, (int, np.integer))
        or size_bytes < 0
    ):
        raise ScenarioError(Problem("size", f"expected a byte count >= 0, got {size_bytes!r}"))
    if isinstance(group, tuple) and group and all(isinstance(g, int) for g in group[:1]):
        idx = _checked(topology, group)
    else:
        idx = resolve_group(topology, group)
    return _cost(topology, op, idx, int(size_bytes), algorithm, calibration)


@functools.lru_cache(maxsize=1024)
def _checked(topo: Topology, group: tuple[int, ...]) -> tuple[int, ...]:
    """A tuple of rank indices, validated once (the engine passes the same groups repeatedly)."""
    return resolve_group(topo, group)


@functools.lru_cache(maxsize=4096)
def _cost(
    topo: Topology, op: str, group: tuple[int, ...], size: int, algorithm: str, cal: Calibration
) -> CollectiveCost:
    p = len(group)
    if p == 1 or size == 0:
        return CollectiveCost(op, "none", "none", p, size, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, ())
    best = None
    for name in _candidates(topo, op, group, algorithm):
        pl = plan(topo, op, name, group)
        for proto in cal.protocols:
            parts = [_phase_cost(topo, ph, proto, cal, size) for ph in pl.phases]
            t = proto.base_latency_s + sum(a + b for a, b in parts)
            if best is None or t < best[0]:
                best = (t, pl, proto, parts)
    t, pl, proto, parts = best
    return _costed(topo, pl, proto, parts, size, t)


def _costed(topo, pl: Plan, proto: Protocol, parts, size: int, t: float) -> CollectiveCost:
    phases = []
    for i, (ph, (lat, bw)) in enumerate(zip(pl.phases, parts)):
        scale = size / proto.efficiency
        phases.append(
            Phase(
                ph.name,
                lat + (proto.base_latency_s if i == 0 else 0.0),
                bw,
                ph.edge_ids,
                ph.unit_load * scale,
                float(ph.sent_per_rank.max()) * scale,
            )
        )
    sent = sum(ph.sent_per_rank for ph in pl.phases)
    algbw = size / t
    return CollectiveCost(
        op=pl.op,
        algorithm=pl.algorithm,
        protocol=proto.name,
        group_size=len(pl.group),
        size_bytes=size,
        time_s=t,
        latency_s=proto.base_latency_s + sum(a for a, _ in parts),
        bandwidth_s=sum(b for _, b in parts),
        algbw_Bps=algbw,
        busbw_Bps=algbw * busbw_factor(pl.op, len(pl.group)),
        bytes_per_rank_sent=float(sent.max()) * size,
        phases=tuple(phases),
    )
