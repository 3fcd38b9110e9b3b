"""The device mesh: ranks as coordinates along named dimensions, and process groups as the
ranks that differ only along some of them.

Dimensions are listed innermost first: rank = sum(coord[d] * stride[d]), the first
dimension's stride 1 (Megatron's and torchtitan's rank order puts tensor parallelism
innermost so that it stays inside one NVLink domain). A data-parallel strategy contributes
its dimensions (`dp`, or `dp_shard` and `dp_replicate` for HSDP); a `Group` names the
dimensions it spans, typed, not by a string.

A folded mesh (`fold`) re-factors some dimensions of a mesh over the same ranks, as
Megatron-Core's MoE parallel folding lays the expert layers (etp x ep x edp) over the ranks
the attention layers split as tp x cp x dp. A part that cannot be one strided dimension is
kept as pieces named `ep`, `ep.1`, `ep.2`, ... (innermost first); `Mesh.group("ep")` spans
all of them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

PIECE = "."  # separates a part's name from its piece number: ep, ep.1, ep.2


@dataclass(frozen=True, kw_only=True)
class Mesh:
    dims: tuple[tuple[str, int], ...]  # (name, size), innermost first
    folded: tuple[str, ...] = ()  # dimensions re-factored away by `fold` (not groupable here)

    def __post_init__(self):
        names = [n for n, _ in self.dims]
        assert len(set(names)) == len(names), names
        assert all(size >= 1 for _, size in self.dims), self.dims

    @property
    def world(self) -> int:
        return math.prod(size for _, size in self.dims)

    def pieces(self, dim: str) -> tuple[str, ...]:
        """The mesh dimensions that make up `dim`: itself, and its pieces `dim.1`, ... when a
        fold split it; () when the mesh has no such dimension."""
        return tuple(n for n, _ in self.dims if n == dim or n.startswith(dim + PIECE))

    def has(self, dim: str) -> bool:
        return bool(self.pieces(dim))

    def size(self, dim: str) -> int:
        """The size of a dimension (all its pieces); 1 for a dimension the mesh does not have."""
        sizes = dict(self.dims)
        return math.prod(sizes[n] for n in self.pieces(dim))

    def stride(self, dim: str) -> int:
        """The rank stride of one mesh dimension (a piece by its own name)."""
        stride = 1
        for name, size in self.dims:
            if name == dim:
                return stride
            stride *= size
        raise KeyError(dim)

    def group(self, *dims: str) -> Group:
        """The group spanning `dims` (a folded part with all its pieces). KeyError names a
        dimension the mesh lacks, or says what a fold turned it into."""
        wanted: set[str] = set()
        for d in dims:
            found = self.pieces(d)
            if not found:
                known = ", ".join(dict.fromkeys(n.split(PIECE)[0] for n, _ in self.dims))
                why = (
                    f"{d!r} was folded away: this mesh's dimensions are {known}"
                    if d in self.folded
                    else f"no dimension {d!r} in the mesh ({known})"
                )
                raise KeyError(why)
            wanted.update(found)
        return Group(mesh=self, dims=tuple(n for n, _ in self.dims if n in wanted))


@dataclass(frozen=True, kw_only=True)
class Group:
    """The ranks that share every coordinate outside `dims`; one instance per such coordinate set."""

    mesh: Mesh
    dims: tuple[str, ...]

    @functools.cached_property
    def name(self) -> str:
        """The dimensions' names, a folded part's pieces once: "tp", "dp+pp", "ep" (made once:
        the engine keys every collective by it)."""
        parts = dict.fromkeys(d.split(PIECE)[0] for d in self.dims)
        return "+".join(parts) if parts else "self"

    @functools.cached_property
    def size(self) -> int:
        """The ranks in one instance (made once: the schedule builder asks for every collective)."""
        sizes = dict(self.mesh.dims)
        return math.prod(sizes[d] for d in self.dims)

    @property
    def count(self) -> int:
        """How many disjoint instances of the group the mesh holds."""
        return self.mesh.world // self.size

    def instances_at(self, fixed: dict[str, int]) -> list[int]:
        """The instances whose coordinates on the dimensions in `fixed` (outside the group) have
        those values, e.g. a tensor-parallel group's instances in one pipeline stage."""
        out = [0]
        radix = 1
        for name, size in self.mesh.dims:
            if name in self.dims:
                continue
            values = [fixed[name]] if name in fixed else range(size)
            out = [base + v * radix for v in values for base in out]
            radix *= size
        return sorted(out)

    def ranks_of(self, instances: list[int]) -> np.ndarray:
        """The ranks of several instances at once: one row per instance, in group-rank order."""
        rest = np.asarray(instances, np.int64)
        base = np.zeros(len(rest), np.int64)
        for name, size in self.mesh.dims:
            if name not in self.dims:
                base += (rest % size) * self.mesh.stride(name)
                rest //= size
        return base[:, None] + self._offsets()[None, :]

    def ranks(self, instance: int = 0) -> tuple[int, ...]:
        """The ranks of one instance, in group-rank order (innermost dimension fastest)."""
        assert 0 <= instance < self.count, (instance, self.count)
        base, rest = 0, instance
        for name, size in self.mesh.dims:
            if name not in self.dims:
                base += (rest % size) * self.mesh.stride(name)
                rest //= size
        return tuple((base + self._offsets()).tolist())

    def _offsets(self) -> np.ndarray:
        """Each group rank's offset from the instance's first rank (innermost dimension fastest)."""
        sizes = dict(self.mesh.dims)
        offsets = np.zeros(1, np.int64)
        for name in self.dims:
            steps = np.arange(sizes[name], dtype=np.int64) * self.mesh.stride(name)
            offsets = (offsets[None, :] + steps[:, None]).ravel()
        return offsets


def fold(mesh: Mesh, parts: tuple[tuple[str, int], ...], over: tuple[str, ...]) -> Mesh:
    """The same ranks with the dimensions `over` re-factored into `parts`.

    The `over` dimensions, innermost first as they sit in `mesh.dims` (the order of `over`
    does not matter; one the mesh lacks has size 1), are carved into `parts`, innermost
    first: parts (("etp", 2), ("ep", 4), ("edp", 2)) take their ranks as Megatron-Core's
    expert RankGenerator does (etp fastest). Adjacent `over` dimensions are contiguous and
    carved as one; a part that straddles a dimension outside `over` (pp placed between tp
    and dp) becomes pieces `ep`, `ep.1`, ... around it. A part of size 1 is a dimension of
    size 1. The other dimensions keep their names, sizes and strides.

    ValueError when the sizes differ or a part cannot be cut into strided pieces (e.g. 3
    ranks out of a dimension of 2).
    """
    over_set = set(over)
    names = [n for n, _ in mesh.dims]
    kept = {n for n in names if n not in over_set}
    clash = [p for p, _ in parts if p in kept or any(k.startswith(p + PIECE) for k in kept)]
    if clash:
        raise ValueError(f"parts {clash} collide with dimensions kept outside {list(over)}")
    total = math.prod(mesh.size(d) for d in over if d in names)
    if math.prod(size for _, size in parts) != total:
        raise ValueError(
            f"parts {list(parts)} hold {math.prod(s for _, s in parts)} ranks, "
            f"the dimensions {list(over)} {total}"
        )
    # The mesh as runs: a contiguous stretch of `over` dimensions (one size) or a kept one.
    runs: list[tuple[str | None, int]] = []
    for name, size in mesh.dims:
        if name in kept:
            runs.append((name, size))
        elif runs and runs[-1][0] is None:
            runs[-1] = (None, runs[-1][1] * size)
        else:
            runs.append((None, size))
    if not any(name is None for name, _ in runs):
        runs.append((None, 1))  # no `over` dimension here: size-1 parts go outermost
    carved: list[list[tuple[str, int]]] = [[] for _ in runs]  # each stretch's pieces
    room = [size if name is None else 1 for name, size in runs]
    last = max(i for i, (name, _) in enumerate(runs) if name is None)
    at, count = _next(room, 0), dict.fromkeys((p for p, _ in parts), 0)
    for part, size in parts:
        if size == 1:  # a dimension of size 1 where the carving is
            carved[min(at, last)].append((part, 1))
            continue
        need = size
        while need > 1:
            r = room[at]
            take = r if need % r == 0 else need if r % need == 0 else 0
            if not take:
                raise ValueError(
                    f"part {part} of {size} ranks cannot be cut from {r} strided ranks "
                    f"(over {list(over)} of {list(mesh.dims)})"
                )
            carved[at].append((part if not count[part] else f"{part}{PIECE}{count[part]}", take))
            count[part] += 1
            need //= take
            room[at] //= take
            at = _next(room, at)
    dims: list[tuple[str, int]] = []
    for (kept_name, size), pieces in zip(runs, carved, strict=True):
        dims.extend(pieces if kept_name is None else [(kept_name, size)])
    folded = tuple(n for n in names if n in over_set and n not in dict(dims))
    return Mesh(dims=tuple(dims), folded=tuple(dict.fromkeys((*mesh.folded, *folded))))


def _next(room: list[int], at: int) -> int:
    """The first stretch from `at` on with ranks left to carve (len(room) when none)."""
    while at < len(room) and room[at] == 1:
        at += 1
    return at
