"""Hashed spine and core choices of every GPU pair of an all-to-all that crosses leaves (pods),
counted per link without listing flows (switches.py turns the counts into loads).

routing.FabricRouter picks a flow's spine as ecmp_hash(src, dst, 1 + FLOW_SALT x flow) mod
spines and its core as ecmp_hash(src, dst, 2 + FLOW_SALT x flow) mod cores (ECMP), or the
pair's hashes at hops 1 and 2 plus the part's index (adaptive). The hash is computed here in
uint32 arithmetic, which wraps as routing's `& 0xFFFFFFFF` does, over blocks of
(senders x receivers) at once:
- groups of at least TILE_MIN GPUs (sorted, so a leaf block's and a pod's GPUs are
  contiguous): senders of one leaf block against the receivers of the other blocks of its
  pod (spines only) and of other pods (spines and cores); nothing is masked.
- smaller groups: rows of senders of many groups against their own group's receivers,
  pairs inside one block (pod) masked into a spare bin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.system.topology.graph import Topology
from simulator.system.topology.routing import FLOW_SALT

if TYPE_CHECKING:
    from simulator.system.comm.algorithms.switches import Members

_CHUNK = 1 << 20  # pairs hashed per numpy block
TILE_MIN = 512  # groups this large are hashed block by block
_U = np.uint32


def _hash(x: np.ndarray, y: np.ndarray, hop: int) -> np.ndarray:
    """routing.ecmp_hash(src, dst, hop) for x = src * 0x9E3779B1, y = dst * 0x85EBCA77 (uint32)."""
    h = x + (y + _U((hop * 0xC2B2AE3D + 0x27D4EB2F) & 0xFFFFFFFF))
    h ^= h >> _U(15)
    h *= _U(0x2C1B3C6D)
    h ^= h >> _U(12)
    return h


def hashed_counts(topo: Topology, m: Members, ecmp: bool, across_pods: bool):
    """Flows per [leaf, spine] up and down (ECMP; None under adaptive) and per [pod, spine,
    core] up and down (ECMP) or pairs per [pod, h1, h2] (adaptive; None without a pair
    crossing pods), flat arrays."""
    f = topo.fabric
    assert f is not None
    leaves, n_sp = f.leaf_spine.shape
    pods, n_c = f.spine_core.shape[0], f.spine_core.shape[2]
    ls = np.zeros(leaves * n_sp) if ecmp else None
    sl = np.zeros(leaves * n_sp) if ecmp else None
    sc = np.zeros(pods * n_sp * n_c) if across_pods else None
    cs = np.zeros(pods * n_sp * n_c) if across_pods else None
    if ecmp or across_pods:
        out = (ls, sl, sc, cs)
        if m.p >= TILE_MIN:
            for g in range(m.gm.shape[0]):
                _tiles(topo, m, g, ecmp, across_pods, out)
        else:
            _rows(topo, m, ecmp, across_pods, out)
    return ls, sl, sc, cs


def _hash_into(out: np.ndarray, tmp: np.ndarray, x, y, hop: int) -> np.ndarray:
    """_hash in preallocated buffers (a quarter of the time: no temporaries)."""
    h = np.add(x, y + _U((hop * 0xC2B2AE3D + 0x27D4EB2F) & 0xFFFFFFFF), out=out)
    np.right_shift(h, _U(15), out=tmp)
    h ^= tmp
    h *= _U(0x2C1B3C6D)
    np.right_shift(h, _U(12), out=tmp)
    h ^= tmp
    return h


def _mod(h: np.ndarray, n: int) -> np.ndarray:
    """h mod n in place (a mask for a power of two)."""
    if n & (n - 1) == 0:
        return np.bitwise_and(h, _U(n - 1), out=h)
    return np.remainder(h, _U(n), out=h)


def _tiles(topo: Topology, m: Members, g: int, ecmp: bool, across_pods: bool, out) -> None:
    """Group g's counts, its senders taken leaf block by leaf block."""
    f = topo.fabric
    assert f is not None
    ls, sl, sc, cs = out
    leaves, n_sp = f.leaf_spine.shape
    pods, n_c = f.spine_core.shape[0], f.spine_core.shape[2]
    k = topo.router.routing.flows_per_pair if ecmp else 1
    lr = m.rails if f.rail_optimized else 1
    row, p = m.gm[g], m.p
    blk, pod = m.blk[g * p : (g + 1) * p], m.pod[g * p : (g + 1) * p]
    rail = m.rail[g * p : (g + 1) * p] * int(f.rail_optimized)
    x, y = row.astype(_U) * _U(0x9E3779B1), row.astype(_U) * _U(0x85EBCA77)
    # The receiving leaf (x n_sp): the receiver's rail with PXN, else the sender's (row_leaf).
    col_leaf = ((blk * lr + (rail if f.pxn else 0)) * n_sp).astype(_U)
    col_pod = (pod * n_sp * n_c).astype(_U)
    size = max(_CHUNK, p)
    bufs = [np.empty(size, _U) for _ in range(3)]
    cut = np.flatnonzero(np.diff(blk)) + 1
    for a, b in zip(np.r_[0, cut].tolist(), np.r_[cut, p].tolist()):
        pa, pb = np.searchsorted(pod, pod[a], "left"), np.searchsorted(pod, pod[a], "right")
        segments = [(np.r_[pa:a, b:pb], False)]
        if across_pods:
            segments.append((np.r_[0:pa, pb:p], True))
        spine = np.zeros(leaves * n_sp) if ecmp else None
        core = np.zeros(pods * n_sp * n_c) if across_pods else None
        for cols, far in segments:
            if not len(cols) or not (ecmp or far):
                continue
            yc, leaf_c, pod_c = y[cols][None, :], col_leaf[cols][None, :], col_pod[cols][None, :]
            step = max(1, _CHUNK // len(cols))
            for r0 in range(a, b, step):
                r = slice(r0, min(b, r0 + step))
                xr = x[r][:, None]
                shape = (len(xr), len(cols))
                s, c, tmp = (buf[: shape[0] * shape[1]].reshape(shape) for buf in bufs)
                for t in range(k):
                    _mod(_hash_into(s, tmp, xr, yc, 1 + FLOW_SALT * t), n_sp)
                    if spine is not None:
                        key = np.add(s, leaf_c, out=tmp)
                        if not f.pxn:
                            key += (rail[r] * n_sp).astype(_U)[:, None]
                        spine += np.bincount(key.ravel(), None, len(spine))
                    if far and core is not None:
                        _mod(_hash_into(c, tmp, xr, yc, 2 + FLOW_SALT * t), n_c)
                        s *= _U(n_c)
                        s += c
                        s += pod_c
                        core += np.bincount(s.ravel(), None, len(core))
        if spine is not None and ls is not None and sl is not None:
            sl += spine
            up = ls.reshape(leaves, n_sp)
            blk_a = int(blk[a])
            up[blk_a * lr : (blk_a + 1) * lr] += spine.reshape(-1, lr, n_sp).sum(axis=0)
        if core is not None and sc is not None and cs is not None:
            cs += core
            sc.reshape(pods, -1)[pod[a]] += core.reshape(pods, -1).sum(axis=0)


def _rows(topo: Topology, m: Members, ecmp: bool, across_pods: bool, out) -> None:
    """Every group's counts, rows of senders (of any groups) against their group's receivers."""
    f = topo.fabric
    assert f is not None
    ls, sl, sc, cs = out
    n_sp, n_c = f.leaf_spine.shape[1], f.spine_core.shape[2]
    k = topo.router.routing.flows_per_pair if ecmp else 1
    gm, p = m.gm, m.p
    x = gm.astype(_U) * _U(0x9E3779B1)
    y = gm.astype(_U) * _U(0x85EBCA77)
    blk, pod = m.blk.reshape(gm.shape), m.pod.reshape(gm.shape)
    lr = m.rails if f.rail_optimized else 1
    rail = m.rail.reshape(gm.shape) * int(f.rail_optimized)
    rows = max(1, _CHUNK // p)
    flat = np.arange(gm.size)
    for r0 in range(0, gm.size, rows):
        g, i = np.divmod(flat[r0 : r0 + rows], p)
        # Receivers: one group's row, or each sender's own group's row.
        cols = slice(g[0], g[0] + 1) if g[0] == g[-1] else g
        xs, ys = x[g, i][:, None], y[cols]
        bs, bd, ps, pd = blk[g, i][:, None], blk[cols], pod[g, i][:, None], pod[cols]
        used = rail[cols] if f.pxn else rail[g, i][:, None]
        cross = bs != bd
        if not cross.any():
            continue
        a_leaf, b_leaf = (bs * lr + used) * n_sp, (bd * lr + used) * n_sp
        far = ps != pd if across_pods else None
        a_pod, b_pod = ps * n_sp, pd * n_sp
        for t in range(k):
            s = _hash(xs, ys, 1 + FLOW_SALT * t) % _U(n_sp)
            if ls is not None and sl is not None:
                _add(ls, np.where(cross, a_leaf + s, -1))
                _add(sl, np.where(cross, b_leaf + s, -1))
            if far is None or not far.any() or sc is None or cs is None:
                continue
            c = _hash(xs, ys, 2 + FLOW_SALT * t) % _U(n_c)
            _add(sc, np.where(far, (a_pod + s) * n_c + c, -1))
            _add(cs, np.where(far, (b_pod + s) * n_c + c, -1))


def _add(counts: np.ndarray, keys: np.ndarray) -> None:
    """counts[key] += 1 for every key >= 0 (-1: a pair that does not cross)."""
    counts += np.bincount(keys.ravel() + 1, None, len(counts) + 1)[1:]
