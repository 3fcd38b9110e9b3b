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
from typing import Any


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
