"""What every collective algorithm produces: phases of concurrent flows between GPUs, routed on
the topology and summed per directed link, normalized to a buffer of S = 1 byte."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.system.topology.graph import Topology


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


@dataclass(frozen=True, eq=False)
class Plan:
    op: str
    algorithm: str
    group: tuple[int, ...]
    phases: tuple[PhasePlan, ...]


def merge_phases(phases: Sequence[PhasePlan]) -> PhasePlan:
    """One phase standing for the same phase of several concurrent instances of a collective
    (disjoint groups running it together): their loads add up on the links they share, so the
    bottleneck link carries all of them; latencies and per-rank bytes are one instance's (they
    are alike)."""
    if len(phases) == 1:
        return phases[0]
    edges = np.concatenate([ph.edge_ids for ph in phases])
    union, inverse = np.unique(edges, return_inverse=True)
    load = np.bincount(inverse, weights=np.concatenate([ph.unit_load for ph in phases]), minlength=len(union))
    first = phases[0]
    return PhasePlan(first.name, union, load, first.n_steps, first.net_steps,
                     max(ph.path_latency_s for ph in phases), first.sent_per_rank, first.recv_per_rank)


def host_matrix(topo: Topology, group: Sequence[int]) -> tuple[list[np.ndarray], bool]:
    """The group's GPUs by host (hosts in order of first appearance); True if all hosts have equal counts."""
    g = np.asarray(group, np.int64)
    hosts = topo.hosts[g]
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
    # Loads over the edges the flows use (not an array over every edge of a 100k-edge fabric).
    edge_ids, inverse = np.unique(edge_i, return_inverse=True)
    load = np.bincount(inverse, weights=w[flow_i], minlength=len(edge_ids))
    lat = np.bincount(flow_i, weights=topo.latency_s[edge_i], minlength=len(src))
    inter = topo.hosts[src] != topo.hosts[dst]
    sent = np.bincount(rank_of[src], weights=w, minlength=p)
    recv = np.bincount(rank_of[dst], weights=w, minlength=p)
    used = load > 0
    return edge_ids[used], load[used], lat, inter, sent, recv


def phase_plan(topo, group, name, src, dst, w, steps, critical=None, members=None) -> PhasePlan:
    """A phase whose steps each take the mean flow's route (rings), unless `critical` is given.
    `members`: every rank that sends or receives, when the flows span several groups."""
    members = np.asarray(group if members is None else members, np.int64)
    rank_of = np.full(topo.num_gpus, -1, np.int64)
    rank_of[members] = np.arange(len(members))
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    w = np.broadcast_to(np.asarray(w, float), src.shape).astype(float)
    edge_ids, load, lat, inter, sent, recv = _flows(topo, rank_of, src, dst, w, len(members))
    if critical is None:
        path, net = steps * float(lat.mean()), steps * float(inter.mean())
    else:
        path, net = critical(lat, inter)
    return PhasePlan(name, edge_ids, load, float(steps), net, path, sent, recv)

