"""Named groups of a topology's GPUs: all, one host, one rail, or an explicit list."""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.system.topology.graph import Topology


def resolve_group(topo: Topology, group: Any) -> tuple[int, ...]:
    """GPU indices (rank order) for 'all', 'host[:N]', 'rail[:N]', or a list of GPU names/indices."""
    if isinstance(group, str):
        kind, _, num = group.partition(":")
        if kind not in ("all", "host", "rail") or (num and not num.isdigit()):
            raise UserError(
                Problem(
                    "group",
                    f"unknown group {group!r}",
                    "use all, host, host:N, rail, rail:N or a list of GPUs",
                )
            )
        options = groups(topo, kind)
        i = int(num or 0)
        if i >= len(options):
            raise UserError(
                Problem("group", f"{group!r}: there are only {len(options)} {kind} groups")
            )
        return options[i]
    out, problems = [], []
    for item in group:
        rank = topo.find_gpu(item) if isinstance(item, str) else None
        if isinstance(item, (int, np.integer)) and 0 <= item < topo.num_gpus:
            out.append(int(item))
        elif rank is not None:
            out.append(rank)
        else:
            problems.append(
                Problem(
                    "group",
                    f"unknown GPU {item!r}",
                    did_you_mean(str(item), [topo.names.name(v) for v in topo.gpu_vertex[:64]]),
                )
            )
    if len(set(out)) != len(out):
        problems.append(Problem("group", "a GPU appears twice in the group"))
    if problems or not out:
        raise UserError(problems or [Problem("group", "the group is empty")])
    return tuple(out)


def groups(topo: Topology, kind: str) -> list[tuple[int, ...]]:
    """Every group of a kind: 'all' (one), 'host' (one per host), 'rail' (one per local GPU index)."""
    if kind == "all":
        return [tuple(range(topo.num_gpus))]
    hosts = topo.hosts
    order = np.argsort(hosts, kind="stable")
    bounds = np.flatnonzero(np.diff(hosts[order])) + 1
    per_host = [tuple(chunk.tolist()) for chunk in np.split(order, bounds)]
    if kind == "host":
        return per_host
    if kind == "rail":
        width = max(len(h) for h in per_host)
        return [tuple(h[i] for h in per_host if i < len(h)) for i in range(width)]
    raise UserError(
        Problem(
            "group", f"unknown group kind {kind!r}", did_you_mean(kind, ["all", "host", "rail"])
        )
    )
