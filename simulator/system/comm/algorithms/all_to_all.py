"""All-to-all on multi-host fat trees from per-host counts, not per-pair flows.

NCCL runs all-to-all as grouped sends of S/p from every rank to every other (plan_direct in
direct.py routes each of those p(p-1) flows). On a fat tree (routing.FabricRouter) every
flow's route is a template path inside its source host, the NIC pair of one rail and the
switches above, so the link loads are sums that need no flow list:

- with PXN (NCCL >= 2.12) GPU i on host a reaches GPU j on host b over host a's GPU on j's
  rail: GPU i -> NIC r (r = j's rail) carries S/p x (the group's GPUs of rail r on other
  hosts), NIC r up carries that summed over a's GPUs, NIC r -> GPU j on host b carries S/p x
  (the group's GPUs on other hosts). Without PXN the roles swap (the source's rail is used).
- links inside a host carry S/p per pair of the group's GPUs on that host.
- the leaf -> spine -> leaf (-> core) links: under `adaptive` routing a transfer between
  leaves puts 1/spines of its bytes on every spine, a closed form by (block, rail) as for the
  NICs. ECMP hashes each GPU pair's flows apart (routing.ecmp_hash of the two GPU indices), so
  no count over hosts or rails gives those loads; switches.py hashes every GPU pair that
  crosses leaves (and, on three levels, every pair that crosses pods under either policy)
  in vectorized blocks, up to MAX_HASHED_FLOWS.

The result equals plan_direct's phase (loads, per-rank bytes, path latency, steps) to
floating-point rounding (tests/system/test_all_to_all.py). Graphs that are not fat trees
and groups on one host take plan_direct.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, _edge_loads, _loads, merge_phases
from simulator.system.comm.algorithms.direct import MAX_ALL_TO_ALL_RANKS, plan_direct
from simulator.system.comm.algorithms.switches import Members, switch_loads
from simulator.system.topology.graph import Topology


def plan_all_to_all(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    """One all-to-all: from counts on a multi-host fat tree, else plan_direct's flows."""
    return plan_all_to_all_together(topo, op, (group,))


def plan_all_to_all_together(
    topo: Topology, op: str, groups: Sequence[tuple[int, ...]]
) -> tuple[PhasePlan, ...]:
    """Disjoint groups running all-to-all at once: their loads summed per link (merge_phases
    of each group's plan), per-rank bytes and latency as one group's."""
    if len({len(g) for g in groups}) > 1:  # equal sizes in one array; else group by group
        return (merge_phases([plan_all_to_all(topo, op, g)[0] for g in groups]),)
    gm = np.sort(np.asarray(groups, np.int64), axis=1)
    if topo.fabric is None:
        return (merge_phases([plan_direct(topo, op, g)[0] for g in groups]),)
    if (topo.hosts[gm] == topo.hosts[gm[:, :1]]).all():
        return (merge_phases(_plan_direct_in_hosts(topo, op, groups)),)
    return (_plan_fabric(topo, op, gm),)


def _plan_direct_in_hosts(
    topo: Topology, op: str, groups: Sequence[tuple[int, ...]]
) -> list[PhasePlan]:
    """plan_direct's phase of each group, every group inside one host of a fat tree, with the
    flows of all groups routed in one call (DeepEP's NVLink hop runs hundreds of such groups at
    once). The same phases, bit for bit: FabricRouter routes host-local flows by a stable sort
    on their local vertex pair, so one group's entries taken in order from the joint routes are
    the entries, in the order, that routing the group alone gives; its loads, latencies and
    per-rank bytes are then summed as plan_direct sums them (base._loads)."""
    p = len(groups[0])
    if len(groups) == 1 or p < 2 or p > MAX_ALL_TO_ALL_RANKS:
        return [plan_direct(topo, op, g)[0] for g in groups]
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    keep = a != b
    gm = np.asarray(groups, np.int64)
    src_all, dst_all = gm[:, a[keep]], gm[:, b[keep]]  # each group's flows as plan_direct's
    flows = src_all.shape[1]
    flow_i, edge_i, share = topo.routes(src_all.ravel(), dst_all.ravel())
    owner = flow_i // flows
    order = np.argsort(owner, kind="stable")
    cuts = np.searchsorted(owner[order], np.arange(1, len(groups)))
    w = np.full(flows, 1.0 / p)
    out = []
    for k, entries in enumerate(np.split(order, cuts)):
        g = gm[k]
        rank_of = np.full(topo.num_gpus, -1, np.int64)
        rank_of[g] = np.arange(p)
        edge_ids, load, lat, inter, sent, recv = _loads(
            topo,
            rank_of,
            src_all[k],
            dst_all[k],
            flow_i[entries] - k * flows,
            edge_i[entries],
            share[entries],
            w,
            p,
        )
        out.append(
            PhasePlan(op, edge_ids, load, 1.0, float(inter.any()), float(lat.max()), sent, recv)
        )
    return out


def _plan_fabric(topo: Topology, op: str, gm: np.ndarray) -> PhasePlan:
    f, router = topo.fabric, topo.router
    assert f is not None
    m = Members(topo, gm)
    p, rails = m.p, f.nic_up.shape[1]
    out: list[tuple[np.ndarray, np.ndarray]] = []
    # Per member and rail: the group's GPUs on that rail on other hosts; on other hosts.
    by_rail, others = m.other_counts(m.host_key)
    gpu_v, nic_v = np.asarray(router.gpu_v), np.asarray(router.nic_v)
    n = len(m.gpu)
    every = np.broadcast_to(np.arange(rails), (n, rails))
    h_all = np.repeat(m.host, rails)
    if f.pxn:  # sender -> NIC of the receiver's rail; that NIC's host side -> receiver
        up = (h_all, every.ravel(), np.repeat(m.loc, rails), by_rail.ravel())
        down = (m.host, m.rail, m.loc, others.astype(float))
    else:  # sender -> its own NIC; the receiver's host from the sender's rail
        up = (m.host, m.rail, m.loc, others.astype(float))
        down = (h_all, every.ravel(), np.repeat(m.loc, rails), by_rail.ravel())
    hosts, rail, loc, w = up
    keep = w > 0
    hosts, rail, loc, w = hosts[keep], rail[keep], loc[keep], w[keep] / p
    out.append((f.nic_up[hosts, rail], w))
    out += _local(topo, hosts, gpu_v[loc], nic_v[rail], w)
    hosts, rail, loc, w = down
    keep = w > 0
    hosts, rail, loc, w = hosts[keep], rail[keep], loc[keep], w[keep] / p
    out.append((f.nic_down[hosts, rail], w))
    out += _local(topo, hosts, nic_v[rail], gpu_v[loc], w)
    hosts, a, b = _same_host_pairs(m)
    out += _local(topo, hosts, gpu_v[a], gpu_v[b], np.full(len(hosts), 1.0 / p))
    out += switch_loads(topo, m)
    edge_ids, load = _edge_loads(
        len(topo.latency_s),
        np.concatenate([e for e, _ in out]),
        np.concatenate([np.broadcast_to(np.asarray(w, float), len(e)) for e, w in out]),
    )
    sent = np.full(p, (p - 1) / p)
    path, net = _critical(topo, m)
    return PhasePlan(op, edge_ids, load, 1.0, net, path, sent, sent.copy())


def _paths(topo: Topology, a_v: np.ndarray, b_v: np.ndarray):
    """Template paths (host 0's edge indices) of the distinct local vertex pairs a -> b: the
    pairs' inverse index, each path's start and length in one flat array, and the array."""
    router = topo.router
    n = router.n_local
    uniq, inv = np.unique(a_v * n + b_v, return_inverse=True)
    paths = [
        np.asarray(router.local.vertex_path(*divmod(int(k), n)), np.int64) for k in uniq.tolist()
    ]
    lens = np.array([len(x) for x in paths], np.int64)
    flat = np.concatenate(paths) if paths else np.zeros(0, np.int64)
    return inv, np.cumsum(lens) - lens, lens, flat


def _local(topo: Topology, hosts, a_v, b_v, w) -> list[tuple[np.ndarray, np.ndarray]]:
    """Loads `w` along the template path a -> b inside each entry's host (as FabricRouter's
    segments: the same path for every host, shifted by the host's first edge)."""
    if len(hosts) == 0:
        return []
    f = topo.fabric
    assert f is not None
    inv, starts, lens, flat = _paths(topo, a_v, b_v)
    length = lens[inv]
    entry = np.repeat(np.arange(len(hosts)), length)
    pos = np.arange(len(entry)) - np.repeat(np.cumsum(length) - length, length)
    edges = flat[starts[inv][entry] + pos] + hosts[entry] * f.host_edge_count
    return [(edges, np.asarray(w, float)[entry])]


def _same_host_pairs(m: Members) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(host, sender's local GPU, receiver's local GPU) of every ordered pair of one group's
    GPUs on one host."""
    order = np.argsort(m.host_key, kind="stable")
    _, first, counts = np.unique(m.host_key[order], return_index=True, return_counts=True)
    hosts, src, dst = [], [], []
    for c in np.unique(counts).tolist():
        if c < 2:
            continue
        rows = order[first[counts == c][:, None] + np.arange(c)]
        u, v = np.nonzero(~np.eye(c, dtype=bool))
        hosts.append(m.host[rows[:, u]].ravel())
        src.append(m.loc[rows[:, u]].ravel())
        dst.append(m.loc[rows[:, v]].ravel())
    if not hosts:
        return (np.zeros(0, np.int64),) * 3
    return np.concatenate(hosts), np.concatenate(src), np.concatenate(dst)


def _pairs_by_loc(m: Members, key: np.ndarray) -> np.ndarray:
    """[a, b]: ordered pairs of members (self pairs included) sharing `key`, by local GPUs."""
    _, inv = np.unique(key, return_inverse=True)
    g = m.gpus_per_host
    c = np.bincount(inv * g + m.loc, minlength=(inv.max() + 1) * g).reshape(-1, g).astype(float)
    return c.T @ c


def _critical(topo: Topology, m: Members) -> tuple[float, float]:
    """plan_direct's critical path: the longest flow's route latency, and 1 if any flow leaves
    its host. A flow's latency is its template segments' plus one edge of each fabric level it
    climbs (each level's cables share one latency, fabric.py; ECMP shares sum to one per hop)."""
    f, router = topo.fabric, topo.router
    assert f is not None
    lat, g = topo.latency_s, m.gpus_per_host
    every = _pairs_by_loc(m, m.gid)
    pod = _pairs_by_loc(m, m.gid * (m.pod.max() + 1) + m.pod)
    block = _pairs_by_loc(m, m.gid * (m.blk.max() + 1) + m.blk)
    host = _pairs_by_loc(m, m.host_key)
    self_pairs = np.diag(np.bincount(m.loc, minlength=g).astype(float))
    a, b = (x.ravel() for x in np.indices((g, g)))
    gpu_v, nic_v = np.asarray(router.gpu_v), np.asarray(router.nic_v)
    rail = f.rail_of_gpu[b] if f.pxn else f.rail_of_gpu[a]

    def path_latency(src_v, dst_v):
        inv, starts, lens, flat = _paths(topo, src_v, dst_v)
        per = np.array([lat[flat[s : s + n]].sum() for s, n in zip(starts, lens)])
        return per[inv].reshape(g, g)

    inside = path_latency(gpu_v[a], gpu_v[b])
    ends = path_latency(gpu_v[a], nic_v[rail]) + path_latency(nic_v[rail], gpu_v[b])
    ends = ends + lat[f.nic_up].max() + lat[f.nic_down].max()
    spine = lat[f.leaf_spine].max() + lat[f.spine_leaf].max() if f.leaf_spine.size else 0.0
    core = lat[f.spine_core].max() + lat[f.core_spine].max() if f.spine_core.size else 0.0
    classes = [
        (host - self_pairs, inside),
        (block - host, ends),
        (pod - block, ends + spine),
        (every - pod, ends + spine + core),
    ]
    worst = max((float(t[n > 0].max()) for n, t in classes if (n > 0).any()), default=0.0)
    return worst, float(((every - host) > 0).any())
