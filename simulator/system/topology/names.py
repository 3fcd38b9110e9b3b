"""Vertex names, computed on demand from a vertex index (and parsed back).

Simulation never needs names: routes, loads and costs are per-edge arrays indexed by number.
Only inspection (summaries, `topology show --vertices`, `route()`, degraded-link validation,
`graph`) asks for them, so a 131,072-GPU fat tree does not build a million strings to run.
Two schemes: a listed one for graphs drawn vertex by vertex (one host, a research shape, an
explicit file), and a replicated one for hosts copied into a fat tree ("h{i}." + a host's
local name, then "leaf{j}", "spine{j}", "core{j}").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HOST_NAME = re.compile(r"h(\d+)\.(.+)")
_SWITCH_NAME = re.compile(r"([a-z]+)(\d+)")


@dataclass(frozen=True, kw_only=True)
class ListedNames:
    """Every vertex name, listed (small graphs)."""

    listed: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.listed)

    def name(self, vertex: int) -> str:
        return self.listed[vertex]

    def index(self, name: str) -> int | None:
        """The vertex called `name`, or None."""
        try:
            return self.listed.index(name)
        except ValueError:
            return None

    def all(self) -> list[str]:
        return list(self.listed)


@dataclass(frozen=True, kw_only=True)
class ReplicatedNames:
    """`hosts` copies of one host's names prefixed 'h{i}.', then numbered switch levels."""

    local: tuple[str, ...]  # one host's vertex names, in vertex order
    hosts: int
    levels: tuple[tuple[str, int], ...] = ()  # (prefix, count) after the hosts: leaf, spine, core

    def __len__(self) -> int:
        return self.hosts * len(self.local) + sum(n for _, n in self.levels)

    def name(self, vertex: int) -> str:
        vertex = int(vertex)
        if not 0 <= vertex < len(self):
            raise IndexError(f"vertex {vertex} out of range")
        per_host = len(self.local)
        if vertex < self.hosts * per_host:
            host, local = divmod(vertex, per_host)
            return f"h{host}.{self.local[local]}"
        vertex -= self.hosts * per_host
        for prefix, count in self.levels:
            if vertex < count:
                return f"{prefix}{vertex}"
            vertex -= count
        raise AssertionError("unreachable: bounds checked above")

    def index(self, name: str) -> int | None:
        """The vertex called `name`, or None; parsed, then checked by naming it back (so
        'h01.gpu0' is not taken for 'h1.gpu0')."""
        vertex = self._parse(name)
        return vertex if vertex is not None and self.name(vertex) == name else None

    def _parse(self, name: str) -> int | None:
        host = _HOST_NAME.fullmatch(name)
        if host and host.group(2) in self.local and int(host.group(1)) < self.hosts:
            return int(host.group(1)) * len(self.local) + self.local.index(host.group(2))
        switch = _SWITCH_NAME.fullmatch(name)
        if not switch:
            return None
        base = self.hosts * len(self.local)
        for prefix, count in self.levels:
            if prefix == switch.group(1):
                number = int(switch.group(2))
                return base + number if number < count else None
            base += count
        return None

    def all(self) -> list[str]:
        out = [f"h{h}.{n}" for h in range(self.hosts) for n in self.local]
        out += [f"{prefix}{i}" for prefix, count in self.levels for i in range(count)]
        return out


VertexNames = ListedNames | ReplicatedNames
