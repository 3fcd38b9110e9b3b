"""Loading topologies: shipped names or YAML paths -> validated, built `Topology` objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.cache import Memo
from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.resources import topology_dir
from simulator.core.yamlio import read_yaml
from simulator.system.topology.builders import TOPOLOGY_BUILDERS, Built, Params
from simulator.system.topology.builders.built import VERTEX_CODE
from simulator.system.topology.builders.fabric import fabric_params, fabric_size_problem
from simulator.system.topology.builders.limits import MAX_GPUS
from simulator.system.topology.graph import Topology
from simulator.system.topology.names import ListedNames
from simulator.system.topology.routing import FabricRouter, GraphRouter, Routing, routing_params

# MAX_GPUS, the largest cluster clustersim builds (2^18 GPUs), and the other bounds on a
# topology file's numbers live in builders/limits.py, with the builders that check them.
HOST_BUILDERS = ("nvswitch", "pcie", "nvlink-pairs", "xgmi")


@dataclass(frozen=True, kw_only=True)
class TopologyInfo:
    """What validating a scenario needs of its topology, found without building the graph."""

    path: str
    name: str
    description: str
    gpu: str
    builder: str
    num_hosts: int
    gpus_per_host: int

    @property
    def num_gpus(self) -> int:
        return self.num_hosts * self.gpus_per_host


def topology_names() -> list[str]:
    """Names of the shipped topology files."""
    return sorted(p.stem for p in topology_dir().glob("*.yaml"))


def topology_path(name_or_path: str | Path, base_dir: str | Path | None = None) -> Path:
    """A shipped topology by name, or a YAML file by path (relative paths from `base_dir`)."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).exists():
            path = Path(base_dir) / path
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "file not found"
            raise UserError(
                Problem("", f"{text}: {what}", "give a topology YAML file or a shipped name")
            )
        return path.resolve()
    path = topology_dir() / f"{text}.yaml"
    if not path.is_file():
        raise UserError(
            Problem("", f"unknown topology {text!r}", did_you_mean(text, topology_names()))
        )
    return path


def _check_hosts(num_hosts: int | None) -> None:
    if num_hosts is not None and (
        isinstance(num_hosts, bool) or not isinstance(num_hosts, int) or num_hosts < 1
    ):
        raise UserError(Problem("num_hosts", f"expected an integer >= 1, got {num_hosts!r}"))


def topology_info(path: str | Path, num_hosts: int | None = None) -> TopologyInfo:
    """Validate a topology file (its parameters, and the host count it is scaled to) and size
    it, building at most one host of a multi-host cluster."""
    return _sized(read_yaml(path), path, num_hosts)[0]


class TopologyInfos:
    """`topology_info` by file and host count, read again when the file changes (its size or
    modification time): a session resolving many scenarios on one cluster reads its file once.
    A file that does not validate is not kept (its error is raised each time)."""

    def __init__(self, max_entries: int = 64):
        self._memo: Memo[TopologyInfo] = Memo(max_entries)

    def get(self, path: str | Path, num_hosts: int | None = None) -> TopologyInfo:
        try:
            stat = Path(path).stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:  # not readable: topology_info says why
            return topology_info(path, num_hosts)
        return self._memo.get((str(path), stamp, num_hosts), lambda: topology_info(path, num_hosts))


def _sized(
    data: dict, path: str | Path, num_hosts: int | None
) -> tuple[TopologyInfo, Topology | None]:
    """The file's info, and the topology itself when sizing it meant building all of it (files
    that do not scale by host count)."""
    _check_hosts(num_hosts)
    builder = data.get("builder")
    scalable = (
        builder in HOST_BUILDERS
        and isinstance(data.get("nic"), dict)
        and isinstance(data.get("fabric"), dict)
    )
    one = topology_from_dict(data, source=str(path), num_hosts=1 if scalable else num_hosts)
    in_file = data.get("num_hosts")
    hosts = (num_hosts or (1 if in_file is None else in_file)) if scalable else one.num_hosts
    if not isinstance(hosts, int) or isinstance(hosts, bool) or hosts < 1:
        raise UserError(Problem("num_hosts", f"expected an integer >= 1, got {hosts!r}"), str(path))
    info = TopologyInfo(
        path=str(path),
        name=one.name,
        description=one.description,
        gpu=one.gpu,
        builder=str(builder),
        num_hosts=hosts,
        gpus_per_host=one.gpus_per_host,
    )
    # The host count is the caller's (a scenario's cluster.num_hosts, --num-hosts) or the file's.
    source = "" if num_hosts is not None else str(path)
    if info.num_gpus > MAX_GPUS:
        raise UserError(
            Problem(
                "num_hosts",
                f"{hosts:,} hosts x {one.gpus_per_host} GPUs = {info.num_gpus:,} "
                f"GPUs; clustersim builds clusters of up to {MAX_GPUS:,} GPUs",
                f"use at most {MAX_GPUS // one.gpus_per_host:,} hosts",
            ),
            source,
        )
    if scalable and hosts > 1:  # the fabric's size, known before building it (validate sees it too)
        rails = int(np.count_nonzero(one.vertex_kind == VERTEX_CODE["nic"]))
        fp = fabric_params(
            Params(data["fabric"], "fabric", []), hosts
        )  # checked by the build above
        field = "fabric" if source else "num_hosts"
        too_large = fabric_size_problem(len(one.edge_src), rails, hosts, fp, field)
        if too_large:
            raise UserError(too_large, source)
    return info, None if scalable else one


def load_topology(
    name_or_path: str | Path, num_hosts: int | None = None, base_dir: str | Path | None = None
) -> Topology:
    """Build a shipped topology (by name) or a YAML file (by path); `num_hosts` scales a multi-host one."""
    path = topology_path(name_or_path, base_dir)
    data = read_yaml(path)
    _, whole = _sized(data, path, num_hosts)  # validates and enforces MAX_GPUS before building
    return whole or topology_from_dict(data, source=str(path), num_hosts=num_hosts)


def topology_from_dict(
    data: dict, source: str = "<dict>", num_hosts: int | None = None
) -> Topology:
    """Validate a topology mapping (the YAML schema) and build it; all problems are reported at once."""
    problems: list[Problem] = []
    p = Params(data, "", problems)
    meta = {k: p.raw(k, "") for k in ("name", "description", "source")}
    meta["gpu"] = p.raw("gpu")
    for key in ("name", "gpu", "source"):
        if key in data and not isinstance(data[key], str):
            problems.append(Problem(key, f"expected a string, got {data[key]!r}"))
    builder = p.choice("builder", tuple(TOPOLOGY_BUILDERS))
    routing = routing_params(p.sub("routing", required=False))
    built = None
    if isinstance(data, dict) and data.get("builder") == builder:
        built = TOPOLOGY_BUILDERS[builder](p, num_hosts)
        p.finish()
        if num_hosts not in (None, built.num_hosts) and builder not in HOST_BUILDERS:
            problems.append(
                Problem(
                    "num_hosts",
                    f"{builder} topologies do not scale by host count",
                    "num_hosts applies to host builders with nic: and fabric: sections",
                )
            )
    if built is not None:
        problems.extend(_check_graph(built, reachability=not problems))
    if problems:
        raise UserError(problems, source)
    assert built is not None, "a topology not built has its problems reported above"
    return _assemble(built, builder, {k: str(v) for k, v in meta.items()}, routing)


def _check_graph(b: Built, reachability: bool = True) -> list[Problem]:
    """Duplicate names and edges, bad bandwidths and GPUs that cannot reach every other GPU."""
    problems = (
        [
            Problem("vertices", f"duplicate vertex name {name!r}")
            for name in _repeated(b.names.all())
        ]
        if isinstance(b.names, ListedNames)
        else []
    )  # replicated names are unique by construction
    # Fat trees: host 0's edges stand for every host's; the fabric's cables are distinct by construction.
    checked = b.fabric.host_edge_count if b.fabric is not None else len(b.src)
    first = np.ones(len(b.src), bool)
    first[:checked] = False
    first[np.unique(b.src[:checked] * b.num_vertices + b.dst[:checked], return_index=True)[1]] = (
        True
    )
    bad_figures = ~(b.bw > 0) | (b.latency < 0)
    name = b.names.name
    for e in np.flatnonzero(~first | bad_figures).tolist():
        u, v = name(b.src[e]), name(b.dst[e])
        if not first[e]:
            problems.append(Problem("edges", f"duplicate edge {u}->{v}", "list each cable once"))
        if bad_figures[e]:
            problems.append(
                Problem("edges", f"edge {u}->{v}: bandwidth must be > 0 and latency >= 0")
            )
    if not len(b.gpu_vertex):
        if reachability:  # not when an earlier problem (a bound, a bad list) left nothing drawn
            problems.append(Problem("", "the topology has no GPU vertices"))
        return problems
    if b.fabric is not None or not reachability:
        return problems  # the fat-tree builder connects every GPU by construction
    root = int(b.gpu_vertex[0])
    down, up = (
        _reach(b.num_vertices, b.src, b.dst, root),
        _reach(b.num_vertices, b.dst, b.src, root),
    )
    stranded = [name(x) for x in b.gpu_vertex.tolist() if not (down[x] and up[x])]
    if stranded:
        shown = ", ".join(stranded[:8]) + (" ..." if len(stranded) > 8 else "")
        problems.append(
            Problem(
                "edges",
                f"GPUs without a route to and from {name(root)}: {shown}",
                "connect every GPU (directed edges need both directions)",
            )
        )
    return problems


def _repeated(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        if n in seen:
            out.append(n)
        seen.add(n)
    return out


def _reach(num_vertices: int, src: np.ndarray, dst: np.ndarray, root: int) -> list[bool]:
    """Which vertices a walk along edges src -> dst from `root` reaches (root included); graphs
    checked here are drawn vertex by vertex, so a plain depth-first walk is quick enough."""
    succ: list[list[int]] = [[] for _ in range(num_vertices)]
    for a, b in zip(src.tolist(), dst.tolist()):
        succ[a].append(b)
    seen, stack = [False] * num_vertices, [root]
    seen[root] = True
    while stack:
        for w in succ[stack.pop()]:
            if not seen[w]:
                seen[w] = True
                stack.append(w)
    return seen


def _assemble(b: Built, builder: str, meta: dict, routing: Routing) -> Topology:
    if b.fabric is not None:
        router: Any = FabricRouter(b.fabric, routing)
    else:
        gpu_host = b.vertex_host[b.gpu_vertex]
        router = GraphRouter(b.num_vertices, b.src, b.dst, b.gpu_vertex, gpu_host, routing)
    return Topology(
        name=meta["name"],
        description=meta["description"],
        source=meta["source"],
        gpu=meta["gpu"],
        builder=builder,
        names=b.names,
        vertex_kind=b.vertex_kind,
        vertex_host=b.vertex_host,
        edge_src=b.src,
        edge_dst=b.dst,
        bw_bytes_per_s=b.bw,
        latency_s=b.latency,
        link_code=b.link,
        gpu_vertex=b.gpu_vertex,
        gpus_per_host=b.gpus_per_host,
        num_hosts=b.num_hosts,
        hosts=b.vertex_host[b.gpu_vertex],
        router=router,
        fabric=b.fabric,
        nvls=b.nvls,
        mesh=b.mesh,
    )
