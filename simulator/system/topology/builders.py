"""Parameterized topology builders: a few YAML lines -> vertex and edge lists.

Each builder reads its parameters through a `Params` reader (which collects every problem
with its dotted path) and returns a `Built`: vertices, directed edges (a full-duplex cable
is two edges), GPU names in rank order (host-major) and, for multi-host clusters, the
index arrays the closed-form fat-tree router needs. `TOPOLOGY_BUILDERS` is the registry.

Vertex kinds: gpu, nvswitch, pcie_switch, cpu, nic, leaf, spine, core.
Link kinds (they select a protocol-efficiency factor in collectives.Calibration):
nvlink, pcie, cpu_link, ib, ethernet, ideal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.core.errors import Problem, did_you_mean
from simulator.core.units import UnitError, parse_bandwidth, parse_duration

VERTEX_KINDS = ("gpu", "nvswitch", "pcie_switch", "cpu", "nic", "leaf", "spine", "core")
LINK_KINDS = ("nvlink", "pcie", "cpu_link", "ib", "ethernet", "ideal")
_MISSING = object()


class Params:
    """Typed access to one YAML mapping; problems are appended, never raised, so all are reported."""

    def __init__(self, data: Any, path: str, problems: list[Problem]):
        self.path, self.problems = path, problems
        if not isinstance(data, dict):
            problems.append(Problem(path, f"expected a mapping, got {type(data).__name__}"))
            data = {}
        self.data, self.used = data, set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is _MISSING:
            self.problems.append(Problem(self._where(key), "required field is missing"))
        return default

    def int(self, key: str, default: Any = _MISSING, minimum: int = 1) -> int:
        value = self._get(key, default)
        if value is default:
            return 1 if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problems.append(
                Problem(self._where(key), f"expected an integer >= {minimum}, got {value!r}")
            )
            return max(minimum, 1)
        return value

    def float(self, key: str, default: Any = _MISSING, minimum: float = 0.0) -> float:
        value = self._get(key, default)
        if value is default:
            return 1.0 if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            self.problems.append(
                Problem(self._where(key), f"expected a number >= {minimum}, got {value!r}")
            )
            return 1.0
        return float(value)

    def _unit(self, key: str, default: Any, parse: Callable, example: str) -> float:
        value = self._get(key, default)
        if value is _MISSING:
            return 1.0
        try:
            return parse(value)
        except UnitError as exc:
            self.problems.append(Problem(self._where(key), str(exc), f"for example {example!r}"))
            return 1.0

    def bw(self, key: str, default: Any = _MISSING) -> float:
        """A positive bandwidth in bytes/s ('300 GB/s', '200 Gb/s')."""
        return self._unit(key, default, parse_bandwidth, "300 GB/s")

    def duration(self, key: str, default: Any = _MISSING) -> float:
        return self._unit(key, default, parse_duration, "1 us")

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.problems.append(
                Problem(self._where(key), f"expected true or false, got {value!r}")
            )
            return bool(default) if default is not _MISSING else False
        return value

    def choice(self, key: str, choices: tuple, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value not in choices:
            if value is not _MISSING:
                self.problems.append(
                    Problem(
                        self._where(key),
                        f"unknown value {value!r}",
                        did_you_mean(str(value), [str(c) for c in choices]),
                    )
                )
            return choices[0]
        return value

    def sub(self, key: str, required: bool = True) -> Params | None:
        value = self._get(key, _MISSING if required else None)
        if value is None or value is _MISSING:
            return None
        return Params(value, self._where(key), self.problems)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    def finish(self, extra_allowed: tuple = ()) -> None:
        """Report keys nobody read (misspelt parameters) with a suggestion."""
        known = set(self.used) | set(extra_allowed)
        for key in self.data:
            if key not in known:
                self.problems.append(
                    Problem(
                        self._where(str(key)),
                        "unknown field",
                        did_you_mean(str(key), sorted(known)),
                    )
                )


@dataclass
class Built:
    """A builder's output: vertices (name, kind, host), directed edges and rank order."""

    vertices: list[tuple[str, str, int]] = field(default_factory=list)
    edges: list[tuple[str, str, float, float, str]] = field(
        default_factory=list
    )  # u, v, bw, lat, kind
    gpu_ids: list[str] = field(default_factory=list)
    gpus_per_host: int = 1
    num_hosts: int = 1
    fabric: FabricIndex | None = None

    def vertex(self, name: str, kind: str, host: int = -1) -> str:
        self.vertices.append((name, kind, host))
        return name

    def cable(self, a: str, b: str, bw_bytes_per_s: float, latency_s: float, kind: str) -> None:
        """A full-duplex cable: one directed edge each way with the same per-direction figures."""
        self.edges.append((a, b, bw_bytes_per_s, latency_s, kind))
        self.edges.append((b, a, bw_bytes_per_s, latency_s, kind))


@dataclass
class FabricIndex:
    """Edge indices of a (rail-optimized) fat tree, for the closed-form router in topology.py."""

    host_edge_count: int  # edges per host; host h's k-th edge has index h*count + k
    template: Built  # one host's vertices/edges with local names (gpu0, nic0, ...)
    rail_of_gpu: np.ndarray  # local GPU -> NIC (rail) index
    pxn: bool  # inter-host traffic enters the destination's rail over NVLink
    hosts_per_leaf: int
    hosts_per_pod: int
    rail_optimized: bool
    nic_up: np.ndarray  # [host, rail] nic -> leaf
    nic_down: np.ndarray  # [host, rail] leaf -> nic
    leaf_spine: np.ndarray  # [leaf, spine-in-pod]
    spine_leaf: np.ndarray
    spine_core: np.ndarray  # [pod, spine-in-pod, core-in-group]; empty for two levels
    core_spine: np.ndarray

    def leaf_of(self, host: np.ndarray, rail: np.ndarray) -> np.ndarray:
        block = host // self.hosts_per_leaf
        rails = self.nic_up.shape[1]
        return block * rails + rail if self.rail_optimized else block


# ---- single-host builders -------------------------------------------------------------


def _nvswitch_host(p: Params, nics: int, nic_pcie_bw: float) -> tuple[Built, bool]:
    """GPUs all-to-all through NVSwitch; the switch chips are one crossbar vertex because NCCL
    stripes every transfer over all of them (DGX A100: 6 NVSwitches, 12 NVLink3 links per GPU)."""
    b = Built()
    g = p.int("gpus_per_host", 8)
    nvlink_bw = p.bw("nvlink_bw")
    nvlink_lat = p.duration("nvlink_latency", 0.35e-6)
    pcie_lat = p.duration("pcie_latency", 0.5e-6)
    b.vertex("nvswitch", "nvswitch")
    for i in range(g):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu"))
        b.cable(f"gpu{i}", "nvswitch", nvlink_bw, nvlink_lat, "nvlink")
    for r in range(nics):
        # GPU and NIC share a PCIe switch on DGX/HGX boards: one PCIe hop between them.
        b.vertex(f"nic{r}", "nic")
        b.cable(f"gpu{r * g // nics}", f"nic{r}", nic_pcie_bw, pcie_lat, "pcie")
    b.gpus_per_host = g
    return b, True


def _pcie_host(
    p: Params, nics: int, nic_pcie_bw: float, bridges: bool = False
) -> tuple[Built, bool]:
    """GPUs behind PCIe switches under CPU sockets; optional NVLink bridges between GPU pairs."""
    b = Built()
    g = p.int("gpus_per_host", 8)
    per_switch = p.int("gpus_per_switch", 2)
    cpus = p.int("cpus", 2)
    pcie_bw = p.bw("pcie_bw")
    uplink_bw = p.bw("switch_uplink_bw", pcie_bw)
    pcie_lat = p.duration("pcie_latency", 0.5e-6)
    n_switches = -(-g // per_switch)
    for c in range(cpus):
        b.vertex(f"cpu{c}", "cpu")
    if cpus > 1:
        cpu_bw, cpu_lat = p.bw("cpu_link_bw"), p.duration("cpu_link_latency", 0.5e-6)
        for c in range(cpus - 1):
            b.cable(f"cpu{c}", f"cpu{c + 1}", cpu_bw, cpu_lat, "cpu_link")
    for s in range(n_switches):
        b.vertex(f"pcie{s}", "pcie_switch")
        b.cable(f"pcie{s}", f"cpu{s * cpus // n_switches}", uplink_bw, pcie_lat, "pcie")
    for i in range(g):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu"))
        b.cable(f"gpu{i}", f"pcie{i // per_switch}", pcie_bw, pcie_lat, "pcie")
    if bridges:
        bridge_bw = p.bw("nvlink_bw")
        bridge_lat = p.duration("nvlink_latency", 0.35e-6)
        for i in range(0, g - 1, 2):
            b.cable(f"gpu{i}", f"gpu{i + 1}", bridge_bw, bridge_lat, "nvlink")
    for r in range(nics):
        gpu = r * g // nics
        b.vertex(f"nic{r}", "nic")
        b.cable(f"pcie{gpu // per_switch}", f"nic{r}", nic_pcie_bw, pcie_lat, "pcie")
    b.gpus_per_host = g
    return b, False


HOST_BUILDERS = {
    "nvswitch": _nvswitch_host,
    "pcie": _pcie_host,
    "nvlink-pairs": lambda p, n, bw: _pcie_host(p, n, bw, bridges=True),
}


# ---- multi-host: hosts + rails + fat tree ---------------------------------------------


def build_hosts(p: Params, builder: str, num_hosts: int | None) -> Built:
    """A host builder's parameters plus optional `nic:` and `fabric:` sections (a fat tree)."""
    hosts = num_hosts if num_hosts is not None else p.int("num_hosts", 1)
    p.used.add("num_hosts")
    nic = p.sub("nic", required=False)
    fabric = p.sub("fabric", required=False)
    nics = nic.int("per_host", 8) if nic else 0
    nic_pcie_bw = nic.bw("pcie_bw") if nic else 1.0
    template, pxn = HOST_BUILDERS[builder](p, nics, nic_pcie_bw)
    if hosts > 1 and (nic is None or fabric is None):
        p.problems.append(
            Problem(
                p._where("num_hosts"),
                f"{hosts} hosts need `nic:` and `fabric:` sections",
                "this file describes a single host; use a multi-host topology",
            )
        )
    if hosts == 1 or nic is None or fabric is None:
        out = _replicate(template, 1)
        if nic:
            nic.bw("bw")
            nic.duration("latency", 0.0)
            nic.finish()
        if fabric:
            _fabric_params(fabric, 1)
        return out
    return _fat_tree(template, pxn, hosts, nic, fabric)


def _replicate(template: Built, hosts: int) -> Built:
    """`hosts` copies of a host, names prefixed 'h{i}.', edges laid out host-major."""
    b = Built(gpus_per_host=template.gpus_per_host, num_hosts=hosts)
    for h in range(hosts):
        pre = f"h{h}."
        b.vertices.extend((pre + n, k, h) for n, k, _ in template.vertices)
        b.edges.extend((pre + u, pre + v, bw, lat, kind) for u, v, bw, lat, kind in template.edges)
        b.gpu_ids.extend(pre + g for g in template.gpu_ids)
    return b


def _fabric_params(f: Params, hosts: int) -> dict:
    levels = f.choice("levels", (2, 3), 2)
    out = {
        "levels": levels,
        "rail_optimized": f.bool("rail_optimized", True),
        "hosts_per_leaf": f.int("hosts_per_leaf", 32),
        "link_latency_s": f.duration("link_latency", 0.6e-6),
        "link_kind": f.choice("link_kind", ("ib", "ethernet"), "ib"),
    }
    out["spines"] = f.int("spines", out["hosts_per_leaf"])
    over = f.sub("oversubscription", required=False)
    out["over_leaf"] = over.float("leaf", 1.0, minimum=1.0) if over else 1.0
    out["over_spine"] = over.float("spine", 1.0, minimum=1.0) if over else 1.0
    if over:
        over.finish()
    out["hosts_per_pod"] = f.int("hosts_per_pod", max(hosts, 1)) if levels == 3 else max(hosts, 1)
    out["cores_per_spine"] = f.int("cores_per_spine", 8) if levels == 3 else 0
    f.finish()
    if out["hosts_per_pod"] % out["hosts_per_leaf"] and levels == 3:
        f.problems.append(
            Problem(f._where("hosts_per_pod"), "must be a multiple of hosts_per_leaf")
        )
    return out


def _fat_tree(template: Built, pxn: bool, hosts: int, nic: Params, f: Params) -> Built:
    """Rail-optimized leaf/spine(/core) fat tree; each level's uplinks are its downlinks / oversubscription."""
    nic_bw, nic_lat = nic.bw("bw"), nic.duration("latency", 0.0)
    nic.finish()
    fp = _fabric_params(f, hosts)
    b = _replicate(template, hosts)
    rails = sum(1 for _, k, _ in template.vertices if k == "nic")
    hpl, n_sp, n_core = fp["hosts_per_leaf"], fp["spines"], fp["cores_per_spine"]
    hpp = -(-min(fp["hosts_per_pod"], hosts) // hpl) * hpl
    blocks, pods = -(-hosts // hpl), -(-hosts // hpp)
    leaves_per_block = rails if fp["rail_optimized"] else 1
    idx = FabricIndex(
        len(template.edges),
        template,
        np.arange(template.gpus_per_host) * rails // template.gpus_per_host,
        pxn,
        hpl,
        hpp,
        fp["rail_optimized"],
        *(np.zeros((hosts, rails), np.int64) for _ in range(2)),
        *(np.zeros((blocks * leaves_per_block, n_sp), np.int64) for _ in range(2)),
        *(np.zeros((pods, n_sp, n_core), np.int64) for _ in range(2)),
    )
    lat, kind = fp["link_latency_s"], fp["link_kind"]
    for leaf in range(blocks * leaves_per_block):
        b.vertex(f"leaf{leaf}", "leaf")
    for h in range(hosts):
        for r in range(rails):
            leaf = int(idx.leaf_of(np.int64(h), np.int64(r)))
            idx.nic_up[h, r], idx.nic_down[h, r] = len(b.edges), len(b.edges) + 1
            b.cable(f"h{h}.nic{r}", f"leaf{leaf}", nic_bw, nic_lat + lat, kind)
    # Traffic never leaves its rail (see FabricRouter), so one leaf block needs no spines and
    # one pod no cores: those levels are only built when something can cross them.
    if blocks == 1:
        b.fabric = _trim(idx, spines=0, cores=0)
        return b
    # Leaf down capacity = ports x NIC rate; up = down / oversubscription, spread over the spines.
    leaf_up_bw = hpl * (rails // leaves_per_block) * nic_bw / fp["over_leaf"] / n_sp
    _add_spines(b, idx, pods, leaves_per_block, leaf_up_bw, lat, kind)
    if pods == 1 or fp["levels"] == 2:
        b.fabric = _trim(idx, spines=n_sp, cores=0)
        return b
    # Spine down capacity = its leaf links; up = down / oversubscription, spread over its cores.
    spine_up_bw = (hpp // hpl) * leaves_per_block * leaf_up_bw / fp["over_spine"] / n_core
    _add_cores(b, idx, spine_up_bw, lat, kind)
    b.fabric = idx
    return b


def _add_spines(
    b: Built, idx: FabricIndex, pods: int, leaves_per_block: int, bw: float, lat: float, kind: str
):
    """`spines` spines per pod, each cabled to every leaf of its pod."""
    n_sp = idx.leaf_spine.shape[1]
    for s in range(pods * n_sp):
        b.vertex(f"spine{s}", "spine")
    for leaf in range(idx.leaf_spine.shape[0]):
        pod = (leaf // leaves_per_block) * idx.hosts_per_leaf // idx.hosts_per_pod
        for s in range(n_sp):
            idx.leaf_spine[leaf, s], idx.spine_leaf[leaf, s] = len(b.edges), len(b.edges) + 1
            b.cable(f"leaf{leaf}", f"spine{pod * n_sp + s}", bw, lat, kind)


def _add_cores(b: Built, idx: FabricIndex, bw: float, lat: float, kind: str):
    """Core group s (cores_per_spine cores) joins spine s of every pod, as in a k-ary fat tree."""
    pods, n_sp, n_core = idx.spine_core.shape
    for c in range(n_sp * n_core):
        b.vertex(f"core{c}", "core")
    for pod in range(pods):
        for s in range(n_sp):
            for c in range(n_core):
                idx.spine_core[pod, s, c], idx.core_spine[pod, s, c] = (
                    len(b.edges),
                    len(b.edges) + 1,
                )
                b.cable(f"spine{pod * n_sp + s}", f"core{s * n_core + c}", bw, lat, kind)


def _trim(idx: FabricIndex, spines: int, cores: int) -> FabricIndex:
    """The index with unused upper levels removed."""
    idx.leaf_spine, idx.spine_leaf = idx.leaf_spine[:, :spines], idx.spine_leaf[:, :spines]
    idx.spine_core, idx.core_spine = idx.spine_core[:, :, :cores], idx.core_spine[:, :, :cores]
    return idx


# ---- research shapes -------------------------------------------------------------------


def _shape(p: Params, n: int, pairs: list[tuple[int, int]]) -> Built:
    """n GPUs joined by duplex cables `pairs`; `gpus_per_host` groups consecutive GPUs into hosts."""
    bw, lat = p.bw("link_bw"), p.duration("link_latency", 0.0)
    kind = p.choice("link_kind", LINK_KINDS, "nvlink")
    per_host = p.int("gpus_per_host", n)
    b = Built(gpus_per_host=per_host, num_hosts=-(-n // per_host))
    for i in range(n):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu", i // per_host))
    for i, j in sorted({(min(a, c), max(a, c)) for a, c in pairs if a != c}):
        b.cable(f"gpu{i}", f"gpu{j}", bw, lat, kind)
    return b


def _ring(p: Params, num_hosts: int | None) -> Built:
    n = p.int("num_gpus", minimum=2)
    return _shape(p, n, [(i, (i + 1) % n) for i in range(n)])


def _torus(p: Params, num_hosts: int | None) -> Built:
    dims = p.raw("dims")
    if not (
        isinstance(dims, list)
        and len(dims) in (2, 3)
        and all(isinstance(d, int) and d >= 2 for d in dims)
    ):
        p.problems.append(
            Problem(
                p._where("dims"), f"expected 2 or 3 integers >= 2, got {dims!r}", "e.g. [4, 4, 4]"
            )
        )
        dims = [2, 2]
    shape = tuple(dims)
    coords = list(np.ndindex(*shape))
    flat = {c: i for i, c in enumerate(coords)}
    pairs = []
    for c in coords:
        for axis, size in enumerate(shape):
            nxt = list(c)
            nxt[axis] = (c[axis] + 1) % size
            pairs.append((flat[c], flat[tuple(nxt)]))
    return _shape(p, len(coords), pairs)


def _fully_connected(p: Params, num_hosts: int | None) -> Built:
    n = p.int("num_gpus", minimum=2)
    return _shape(p, n, [(i, j) for i in range(n) for j in range(i + 1, n)])


def _explicit(p: Params, num_hosts: int | None) -> Built:
    """Vertices and edges listed by hand; every problem (kinds, duplicates, dangling ends) is reported."""
    b, seen = Built(), {}
    vertices = p.raw("vertices")
    edges = p.raw("edges")
    for i, v in enumerate(vertices if isinstance(vertices, list) else []):
        vp = Params(v, f"{p._where('vertices')}[{i}]", p.problems)
        name = str(vp.raw("name", f"?{i}"))
        kind = vp.choice("kind", VERTEX_KINDS, "gpu")
        host = vp.int("host", 0, minimum=0)
        vp.finish()
        if name in seen:
            p.problems.append(Problem(vp._where("name"), f"duplicate vertex name {name!r}"))
            continue
        seen[name] = kind
        has_host = isinstance(v, dict) and "host" in v
        b.vertex(name, kind, host if kind == "gpu" or has_host else -1)
        if kind == "gpu":
            b.gpu_ids.append(name)
    for i, ed in enumerate(edges if isinstance(edges, list) else []):
        ep = Params(ed, f"{p._where('edges')}[{i}]", p.problems)
        ends = [str(ep.raw("src", "?")), str(ep.raw("dst", "?"))]
        bw, lat = ep.bw("bw"), ep.duration("latency", 0.0)
        kind, duplex = ep.choice("kind", LINK_KINDS, "nvlink"), ep.bool("duplex", True)
        ep.finish()
        bad = [n for n in ends if n not in seen]
        for n in bad:
            p.problems.append(
                Problem(
                    ep._where("src" if n == ends[0] else "dst"),
                    f"unknown vertex {n!r}",
                    did_you_mean(n, seen),
                )
            )
        if not bad:
            (b.cable if duplex else lambda *a: b.edges.append(a))(ends[0], ends[1], bw, lat, kind)
    hosts = [h for _, k, h in b.vertices if k == "gpu"]
    b.num_hosts = len(set(hosts)) or 1
    b.gpus_per_host = max((hosts.count(h) for h in set(hosts)), default=1)
    host_of = {n: h for n, _, h in b.vertices}
    b.gpu_ids.sort(key=lambda g: host_of[g])
    return b


TOPOLOGY_BUILDERS: dict[str, Callable[[Params, int | None], Built]] = {
    "nvswitch": lambda p, n: build_hosts(p, "nvswitch", n),
    "pcie": lambda p, n: build_hosts(p, "pcie", n),
    "nvlink-pairs": lambda p, n: build_hosts(p, "nvlink-pairs", n),
    "ring": _ring,
    "torus": _torus,
    "fully-connected": _fully_connected,
    "explicit": _explicit,
}
