"""What every collective algorithm produces: phases of concurrent flows between GPUs, routed on
the topology and summed per directed link, normalized to a buffer of S = 1 byte."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.system.topology.builders import VERTEX_KINDS
from simulator.system.topology.graph import Topology

# Plans with fewer flows route them in one call (a call per block would cost more than the
# repeated blocks it saves); larger ones route each distinct block once.
BLOCKWISE_FLOWS = 1 << 16


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


def unique_ids(ids: np.ndarray, bound: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(ids, return_inverse=True)` of non-negative integer ids (below `bound`): the
    same arrays, by a mark per possible id instead of a sort where the ids' range is at most a
    few times their count (a step's plans sum loads over hundreds of thousands of link ids)."""
    ids = np.asarray(ids)
    if len(ids):
        top = int(ids.max()) + 1 if bound is None else bound
        if top <= 8 * len(ids) + 4096:
            mark = np.zeros(top, bool)
            mark[ids] = True
            uniq = np.flatnonzero(mark).astype(ids.dtype, copy=False)
            index = np.empty(top, np.intp)
            index[uniq] = np.arange(len(uniq))
            return uniq, index[ids]
    return np.unique(ids, return_inverse=True)


def merge_phases(phases: Sequence[PhasePlan]) -> PhasePlan:
    """One phase standing for the same phase of several concurrent instances of a collective
    (disjoint groups running it together): their loads add up on the links they share, so the
    bottleneck link carries all of them; latencies and per-rank bytes are one instance's (they
    are alike)."""
    if len(phases) == 1:
        return phases[0]
    edges = np.concatenate([ph.edge_ids for ph in phases])
    union, inverse = unique_ids(edges)
    load = np.bincount(
        inverse, weights=np.concatenate([ph.unit_load for ph in phases]), minlength=len(union)
    )
    first = phases[0]
    return PhasePlan(
        first.name,
        union,
        load,
        first.n_steps,
        first.net_steps,
        max(ph.path_latency_s for ph in phases),
        first.sent_per_rank,
        first.recv_per_rank,
    )


def host_matrix(topo: Topology, group: Sequence[int]) -> tuple[np.ndarray | list[np.ndarray], bool]:
    """The group's GPUs by host (hosts in order of first appearance); True if all hosts have equal
    counts, and then the rows are one 2-D array (splitting 16k hosts into arrays costs more than
    the plan they feed)."""
    g = np.asarray(group, np.int64)
    hosts = topo.hosts[g]
    uniq, first = np.unique(hosts, return_index=True)
    order = uniq[np.argsort(first)]
    rank_of_host = np.empty(uniq.max() + 1, np.int64)
    rank_of_host[order] = np.arange(len(order))
    sorted_g = g[np.argsort(rank_of_host[hosts], kind="stable")]
    counts = np.bincount(rank_of_host[hosts], minlength=len(order))
    if (counts == counts[0]).all():
        return sorted_g.reshape(len(order), counts[0]), True
    return np.split(sorted_g, np.cumsum(counts)[:-1]), False


def _routes(
    topo: Topology, blocks: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Routes of flow blocks (flow index, edge index, share), flows numbered in block order.
    Above BLOCKWISE_FLOWS flows, a block listed again (the same arrays: a tree's chains in both
    trees) is routed once and its routes copied. Each flow keeps its edges in path order, so
    per-flow sums are unchanged."""
    if sum(len(src) for src, _ in blocks) < BLOCKWISE_FLOWS:
        return topo.routes(
            np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])
        )
    routed: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    flows, edges, shares, start = [], [], [], 0
    for src, dst in blocks:
        key = (id(src), id(dst))
        if key not in routed:
            routed[key] = topo.routes(src, dst)
        flow_i, edge_i, share = routed[key]
        flows.append(flow_i + start)
        edges.append(edge_i)
        shares.append(share)
        start += len(src)
    return np.concatenate(flows), np.concatenate(edges), np.concatenate(shares)


def _flows(topo: Topology, rank_of: np.ndarray, blocks, w: np.ndarray, p: int):
    """Route flows; return per-edge loads, per-flow route latency and inter-host flags, per-rank bytes."""
    src = np.concatenate([b[0] for b in blocks])
    dst = np.concatenate([b[1] for b in blocks])
    flow_i, edge_i, share = _routes(topo, blocks)
    return _loads(topo, rank_of, src, dst, flow_i, edge_i, share, w, p)


def _edge_loads(
    num_edges: int, edge_i: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(edge ids, load) of the edges with load, ascending. Few flows on a large fabric: over the
    edges they use (not an array over every edge of a 100k-edge fabric); many flows: one count
    over every edge (sorting millions of edge entries costs more). Same sums either way."""
    if 4 * len(edge_i) < num_edges:
        edge_ids, inverse = unique_ids(edge_i, num_edges)
        load = np.bincount(inverse, weights=weights, minlength=len(edge_ids))
        used = load > 0
        return edge_ids[used], load[used]
    load = np.bincount(edge_i, weights=weights, minlength=num_edges)
    edge_ids = np.flatnonzero(load > 0)
    return edge_ids, load[edge_ids]


def _loads(topo: Topology, rank_of, src, dst, flow_i, edge_i, share, w: np.ndarray, p: int):
    """A flow's latency is its route's, averaged over the paths its bytes are spread on."""
    edge_ids, load = _edge_loads(len(topo.latency_s), edge_i, w[flow_i] * share)
    lat = np.bincount(flow_i, weights=topo.latency_s[edge_i] * share, minlength=len(src))
    inter = topo.hosts[src] != topo.hosts[dst]
    sent = np.bincount(rank_of[src], weights=w, minlength=p)
    recv = np.bincount(rank_of[dst], weights=w, minlength=p)
    return edge_ids, load, lat, inter, sent, recv


def phase_plan(topo, group, name, src, dst, w, steps, critical=None, members=None) -> PhasePlan:
    """A phase whose steps each take the mean flow's route (rings), unless `critical` is given.
    `members`: every rank that sends or receives, when the flows span several groups."""
    return phase_plan_blocks(topo, group, name, [(src, dst)], w, steps, critical, members)


def phase_plan_blocks(
    topo, group, name, blocks, w, steps, critical=None, members=None
) -> PhasePlan:
    """`phase_plan` of flows given as blocks [(src, dst), ...] in order; repeated blocks (the
    same array objects) are routed once. `w` is one weight for every flow."""
    members = np.asarray(group if members is None else members, np.int64)
    rank_of = np.full(topo.num_gpus, -1, np.int64)
    rank_of[members] = np.arange(len(members))
    blocks = [(np.asarray(s, np.int64), np.asarray(d, np.int64)) for s, d in blocks]
    n = sum(len(s) for s, _ in blocks)
    w = np.full(n, float(w))
    edge_ids, load, lat, inter, sent, recv = _flows(topo, rank_of, blocks, w, len(members))
    if critical is None:
        path, net = steps * float(lat.mean()), steps * float(inter.mean())
    else:
        path, net = critical(lat, inter)
    return PhasePlan(name, edge_ids, load, float(steps), net, path, sent, recv)


def phase_plans_routed_together(topo, name, groups, phases_of) -> tuple[PhasePlan, ...]:
    """Several phases of flows, `phases_of(group)` = [(src, dst, w, steps, critical), ...], for
    disjoint groups of one shape running together: routed in one call, their link loads summed
    in one pass keyed by (group, phase, edge) (log-step algorithms have log2(n) small phases:
    routing and summing are their cost), then merged phase by phase as `merge_phases` merges
    separate plans (each group's loads summed in the order of its own flows, the groups' in
    group order, so the result is the per-group plans' merge to the bit)."""
    per_group = [phases_of(g) for g in groups]
    flat = [ph for phases in per_group for ph in phases]
    sizes = [len(ph[0]) for ph in flat]
    starts = np.cumsum([0, *sizes])
    src = np.concatenate([np.asarray(ph[0], np.int64) for ph in flat])
    dst = np.concatenate([np.asarray(ph[1], np.int64) for ph in flat])
    flow_i, edge_i, share = topo.routes(src, dst)
    w = np.repeat([float(ph[2]) for ph in flat], sizes)
    # Keyed by (segment, link) over the links used (numbered in ascending order), so the keys
    # span segments x used links rather than segments x every link of the fabric.
    used, used_i = unique_ids(edge_i, len(topo.latency_s))
    segment_of = np.repeat(np.arange(len(flat)), sizes)
    keys, load = _edge_loads(
        len(flat) * len(used), segment_of[flow_i] * len(used) + used_i, w[flow_i] * share
    )
    key_segment, key_used = np.divmod(keys, len(used))
    key_edge = used[key_used].astype(np.int64, copy=False)
    cut = np.searchsorted(key_segment, np.arange(len(flat) + 1))
    lat = np.bincount(flow_i, weights=topo.latency_s[edge_i] * share, minlength=len(src))
    inter = topo.hosts[src] != topo.hosts[dst]
    # Per-rank bytes of each phase are the first group's (merge_phases keeps one instance's:
    # they are alike), counted once and given to every group's plan of that phase.
    n = len(per_group[0])
    members = np.asarray(groups[0], np.int64)
    rank_of = np.full(topo.num_gpus, -1, np.int64)
    rank_of[members] = np.arange(len(members))
    per_rank = [
        tuple(
            np.bincount(
                rank_of[ends[starts[k] : starts[k + 1]]],
                weights=w[starts[k] : starts[k + 1]],
                minlength=len(members),
            )
            for ends in (src, dst)
        )
        for k in range(n)
    ]
    plans = []
    for j, (_, _, _, steps, critical) in enumerate(flat):
        a, b = starts[j], starts[j + 1]
        path, net = critical(lat[a:b], inter[a:b])
        edges, loads = key_edge[cut[j] : cut[j + 1]], load[cut[j] : cut[j + 1]]
        plans.append(PhasePlan(name, edges, loads, float(steps), net, path, *per_rank[j % n]))
    return tuple(merge_phases(plans[k::n]) for k in range(n))


def switch_links(topo: Topology, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each GPU's cable to its host's NVSwitch: (GPU -> switch edge, switch -> GPU edge) per rank."""
    kind = topo.vertex_kind
    gpu, switch = VERTEX_KINDS.index("gpu"), VERTEX_KINDS.index("nvswitch")
    up = np.flatnonzero((kind[topo.edge_src] == gpu) & (kind[topo.edge_dst] == switch))
    down = np.flatnonzero((kind[topo.edge_src] == switch) & (kind[topo.edge_dst] == gpu))
    up_of = np.full(len(kind), -1, np.int64)
    down_of = np.full(len(kind), -1, np.int64)
    up_of[topo.edge_src[up]] = up
    down_of[topo.edge_dst[down]] = down
    v = topo.gpu_vertex[np.asarray(ranks, np.int64)]
    return up_of[v], down_of[v]


def loads_plan(
    name: str,
    group,
    edges: list[np.ndarray],
    loads: list[float | np.ndarray],
    steps: float,
    net_steps: float,
    path_latency_s: float,
    sent: np.ndarray,
    recv: np.ndarray,
) -> PhasePlan:
    """A phase given directly as loads on edges (flows that end in a switch, which reduces or
    multicasts them, are not GPU-to-GPU routes), summed per edge."""
    e = np.concatenate([np.asarray(x, np.int64) for x in edges])
    w = np.concatenate(
        [np.broadcast_to(np.asarray(x, float), (len(y),)) for x, y in zip(loads, edges)]
    )
    ids, inv = unique_ids(e)
    load = np.bincount(inv, weights=w, minlength=len(ids))
    used = load > 0
    return PhasePlan(
        name,
        ids[used],
        load[used],
        float(steps),
        float(net_steps),
        float(path_latency_s),
        np.asarray(sent, float),
        np.asarray(recv, float),
    )
