"""The device mesh: ranks as coordinates along named dimensions, and process groups as the
ranks that differ only along some of them.

Dimensions are listed innermost first: rank = sum(coord[d] * stride[d]), the first
dimension's stride 1 (Megatron's and torchtitan's rank order puts tensor parallelism
innermost so that it stays inside one NVLink domain). A data-parallel strategy contributes
its dimensions (`dp`, or `dp_shard` and `dp_replicate` for HSDP); a `Group` names the
dimensions it spans, typed, not by a string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Mesh:
    dims: tuple[tuple[str, int], ...]  # (name, size), innermost first

    def __post_init__(self):
        names = [n for n, _ in self.dims]
        assert len(set(names)) == len(names), names
        assert all(size >= 1 for _, size in self.dims), self.dims

    @property
    def world(self) -> int:
        return math.prod(size for _, size in self.dims)

    def size(self, dim: str) -> int:
        return dict(self.dims).get(dim, 1)

    def stride(self, dim: str) -> int:
        stride = 1
        for name, size in self.dims:
            if name == dim:
                return stride
            stride *= size
        raise KeyError(dim)

    def group(self, *dims: str) -> Group:
        known = [n for n, _ in self.dims]
        assert all(d in known for d in dims), (dims, known)
        return Group(mesh=self, dims=tuple(d for d in known if d in dims))


@dataclass(frozen=True, kw_only=True)
class Group:
    """The ranks that share every coordinate outside `dims`; one instance per such coordinate set."""

    mesh: Mesh
    dims: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.dims) if self.dims else "self"

    @property
    def size(self) -> int:
        return math.prod(self.mesh.size(d) for d in self.dims)

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
        offsets = np.zeros(1, np.int64)
        for name in self.dims:
            steps = np.arange(self.mesh.size(name), dtype=np.int64) * self.mesh.stride(name)
            offsets = (offsets[None, :] + steps[:, None]).ravel()
        return base[:, None] + offsets[None, :]

    def ranks(self, instance: int = 0) -> tuple[int, ...]:
        """The ranks of one instance, in group-rank order (innermost dimension fastest)."""
        assert 0 <= instance < self.count, (instance, self.count)
        base, rest = 0, instance
        for name, size in self.mesh.dims:
            if name not in self.dims:
                base += (rest % size) * self.mesh.stride(name)
                rest //= size
        offsets = np.zeros(1, np.int64)
        for name in self.dims:
            steps = np.arange(self.mesh.size(name), dtype=np.int64) * self.mesh.stride(name)
            offsets = (offsets[None, :] + steps[:, None]).ravel()
        return tuple((base + offsets).tolist())
