"""Which concurrent phases share a link: the fluid network's grouping of active transfers.

Phases are known by their shape (a plan's serial number and phase index: the same links and
loads each time a plan runs). A `ShapeGraph` numbers the shapes a CommContext meets and keeps,
per shape, a bitmask of the shapes it shares a directed link with (computed once, when the
shape is first met, from the edge sets). Grouping the active phases is then a walk over
integers, whatever the number of concurrent transfers (16 pipeline stages' data-parallel
collectives and sends make dozens).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.cache import Memo


class ShapeGraph:
    """Link-sharing between phase shapes; an explicit cache owned by a CommContext. It holds at
    most `max_shapes` shapes and starts over when a grouping would exceed that."""

    def __init__(self, max_shapes: int = 4096):
        self.max_shapes = max_shapes
        self._reset()

    def _reset(self) -> None:
        """Forget every shape and grouping (at construction, and when the cache is full)."""
        self._ids: dict[Hashable, int] = {}
        self._edges: list[frozenset] = []
        self._adjacent: list[int] = []
        self._partitions: dict[
            int, tuple[int, dict[int, int]]
        ] = {}  # active shapes (a bitmask) -> components

    def __len__(self) -> int:
        return len(self._ids)

    def _id(self, phase: Any) -> int:
        found = self._ids.get(phase.shape)
        if found is not None:
            return found
        edges = frozenset(phase.edge_ids.tolist())
        new = len(self._edges)
        mask = 1 << new  # a shape shares all its links with itself
        for j, other in enumerate(self._edges):
            if not edges.isdisjoint(other):
                mask |= 1 << j
                self._adjacent[j] |= 1 << new
        self._ids[phase.shape] = new
        self._edges.append(edges)
        self._adjacent.append(mask)
        return new

    def groups(self, phases: Sequence[Any]) -> list[list[int]]:
        """Indices of `phases` grouped into connected components of link sharing."""
        if len(self._ids) + len(phases) > self.max_shapes:
            self._reset()
        ids = [self._id(ph) for ph in phases]
        active = 0
        for k in ids:
            active |= 1 << k
        count, component_of = self._partition(active)
        out: list[list[int]] = [[] for _ in range(count)]
        for i, k in enumerate(ids):
            out[component_of[k]].append(i)
        return out

    def _partition(self, active: int) -> tuple[int, dict[int, int]]:
        """The connected components of the shapes in `active`: how many, and each shape's
        component; memoized by `active`."""
        found = self._partitions.get(active)
        if found is not None:
            return found
        component_of: dict[int, int] = {}
        count, left = 0, active
        while left:
            component = frontier = left & -left
            while frontier:
                low = frontier & -frontier
                frontier ^= low
                new = self._adjacent[low.bit_length() - 1] & active & ~component
                component |= new
                frontier |= new
            left &= ~component
            while component:
                low = component & -component
                component ^= low
                component_of[low.bit_length() - 1] = count
            count += 1
        if len(self._partitions) >= self.max_shapes * 4:
            self._partitions.clear()
        self._partitions[active] = found = (count, component_of)
        return found

    def sharing_pairs(self, phases: Sequence[Any]) -> list[tuple[int, int]]:
        """Index pairs (i < j) of `phases` (already grouped, so known) that share a link."""
        ids = [self._ids[ph.shape] for ph in phases]
        out: list[tuple[int, int]] = []
        for i, a in enumerate(ids):
            adjacent = self._adjacent[a]
            out.extend((i, j) for j in range(i + 1, len(ids)) if adjacent >> ids[j] & 1)
        return out


def fixed_point_scale(capacity: np.ndarray) -> float:
    """Units per byte/s of the integer link loads: the largest limit is 2**48 units, so sums of
    thousands of loads stay exact in int64 and any one unit is < 1e-14 of a link."""
    top = float(capacity.max()) if len(capacity) else 0.0
    return 2.0**48 / top if top > 0 else 1.0


@dataclass(eq=False)
class Demand:
    """A phase shape's demand: its links, k_je on them (bytes per byte its busiest rank sends),
    its standalone bound min_e capacity_e / k_je, and (made when first asked) its loads at that
    bound in fixed point (`scale` units per byte/s) on its distinct links."""

    edges: np.ndarray
    k: np.ndarray
    bound: float
    scale: float
    _fixed: tuple[np.ndarray, np.ndarray] | None = None

    def fixed(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct links, int64 loads at bound on them); a link listed twice adds up."""
        if self._fixed is None:
            edges, loads = self.edges, np.round(self.k * self.bound * self.scale).astype(np.int64)
            distinct = np.unique(edges)
            if len(distinct) < len(edges):
                summed = np.zeros(len(distinct), np.int64)
                np.add.at(summed, np.searchsorted(distinct, edges), loads)
                edges, loads = distinct, summed
            self._fixed = edges, loads
        return self._fixed


class FillSplit:
    """Per fluid network: which active phases are linked by links that can fill.

    A phase never moves faster than its standalone bound b_j, so a link whose users' loads at
    their bounds, sum_j k_je b_j, stay within its capacity (1e-9 slack, as `max_min_rates`)
    never constrains anyone: max-min rates of a group of phases sharing links are those of its
    sub-groups linked only by links that can fill, each solved alone (a phase linked by none
    gets its bound). The loads at bounds are kept per link as int64 fixed point (exact, so
    they do not depend on the order phases came and went) minus the link's limit: `excess`
    > 0 marks a link that can fill. A pair of shapes whose own loads fill a shared link is
    linked whatever else runs (loads only add), so only the other pairs need a look at
    `excess` on their shared links; both facts are memoized per pair of shapes in `pairs`.
    """

    def __init__(self, capacity: np.ndarray, pairs: Memo, scale: float):
        """`scale`: the fixed-point units per byte/s of the demands' loads (their `scale`)."""
        self.limit = np.floor(capacity * (1 + 1e-9) * scale).astype(np.int64)
        self.excess = -self.limit
        self._slot = np.full(len(capacity), -1, np.int64)  # scratch of `index`, kept all -1
        self._counted: dict[Hashable, tuple[int, Demand]] = {}
        self._pairs = pairs

    def sync(self, active: dict[Hashable, tuple[int, Demand]]) -> None:
        """Make `excess` count exactly the active phases: shape -> (how many, its demand)."""
        excess, counted = self.excess, self._counted
        for shape, (had, rec) in counted.items():
            now = active.get(shape, (0,))[0]
            if now != had:
                edges, loads = rec.fixed()
                excess[edges] += (now - had) * loads
        for shape, (now, rec) in active.items():
            if shape not in counted:
                edges, loads = rec.fixed()
                excess[edges] += now * loads
        self._counted = dict(active)

    def split(
        self, records: list[Demand], pairs: list[tuple[int, int]], shapes: list[Hashable]
    ) -> list[list[int]]:
        """Indices of a group of phases (by their demand records) in sub-groups linked by links
        that can fill; `pairs`: the index pairs that share a link; `excess` must be synced."""
        parent = list(range(len(records)))

        def root(i: int) -> int:
            while parent[i] != i:
                i = parent[i]
            return i

        maybe = []
        for i, j in pairs:
            found = self._pairs.get(
                (shapes[i], shapes[j]),
                lambda: self._pair(records[i], records[j]),  # noqa: B023 (called at once)
            )
            if found is True:
                a, b = root(i), root(j)
                if a != b:
                    parent[a] = b
            else:
                maybe.append((i, j, found))
        for i, j, shared in maybe:
            a, b = root(i), root(j)
            if a != b and bool((self.excess[shared] > 0).any()):
                parent[a] = b
        out: dict[int, list[int]] = {}
        for i in range(len(records)):
            out.setdefault(root(i), []).append(i)
        return list(out.values())

    def _pair(self, a: Demand, b: Demand) -> Any:
        """True if two shapes' own loads at bounds fill a link they share, else the shared links."""
        (ea, la), (eb, lb) = a.fixed(), b.fixed()
        shared, ia, ib = np.intersect1d(ea, eb, assume_unique=True, return_indices=True)
        if (la[ia] + lb[ib] > self.limit[shared]).any():
            return True
        return shared

    def kept(self, record: Demand) -> tuple[np.ndarray, np.ndarray]:
        """A phase's links that can fill, and its k_je on them (`excess` must be synced)."""
        mask = self.excess[record.edges] > 0
        return record.edges[mask], record.k[mask]

    def index(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct `edges` in ascending order, and each entry's position among them."""
        slot = self._slot
        slot[edges] = 0
        union = np.flatnonzero(slot == 0)
        slot[union] = np.arange(len(union))
        local = slot[edges]
        slot[union] = -1
        return union, local
