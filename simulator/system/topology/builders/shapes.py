"""Research shapes (ring, torus, fully-connected) and graphs listed by hand (explicit).

All are small enough to draw vertex by vertex as a `Sketch`; their vertex names are listed.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from simulator.core.errors import Problem, did_you_mean
from simulator.system.topology.builders.built import LINK_KINDS, VERTEX_KINDS, Built, Sketch
from simulator.system.topology.builders.limits import MAX_DRAWN_EDGES, MAX_GPUS, TORUS_DIMS
from simulator.system.topology.builders.params import Params


def _shape(p: Params, n: int, pairs: list[tuple[int, int]]) -> Built:
    """n GPUs joined by duplex cables `pairs`; `gpus_per_host` groups consecutive GPUs into hosts."""
    bw, lat = p.bw("link_bw"), p.duration("link_latency", 0.0)
    kind = p.choice("link_kind", LINK_KINDS, "nvlink")
    per_host = p.int(
        "gpus_per_host", n, maximum=n, why=f"a host holds at most the shape's {n:,} GPUs"
    )
    b = Sketch(gpus_per_host=per_host, num_hosts=-(-n // per_host))
    for i in range(n):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu", i // per_host))
    for i, j in sorted({(min(a, c), max(a, c)) for a, c in pairs if a != c}):
        b.cable(f"gpu{i}", f"gpu{j}", bw, lat, kind)
    return b.built()


def _drawable(p: Params, key: str, gpus: int, edges: int, formula: str) -> bool:
    """Whether a shape of `gpus` GPUs and `edges` directed edges is within MAX_GPUS and
    MAX_DRAWN_EDGES; if not, the problem is reported at `key` and nothing is drawn."""
    if gpus > MAX_GPUS:
        p.problems.append(
            Problem(
                p.where(key),
                f"{p.data.get(key)!r} make {gpus:,} GPUs; clustersim builds "
                f"topologies of up to {MAX_GPUS:,} GPUs",
                "e.g. [4, 4, 4]",
            )
        )
    elif edges > MAX_DRAWN_EDGES:
        p.problems.append(
            Problem(
                p.where(key),
                f"{gpus:,} GPUs make {edges:,} directed edges ({formula}); "
                f"graphs drawn link by link are limited to {MAX_DRAWN_EDGES:,} edges",
                "use fewer GPUs, or a host builder with a fabric for a large cluster",
            )
        )
    return gpus <= MAX_GPUS and edges <= MAX_DRAWN_EDGES


def _gpu_count(p: Params) -> int:
    return p.int(
        "num_gpus", minimum=2, maximum=MAX_GPUS, why=f"clustersim builds up to {MAX_GPUS:,} GPUs"
    )


def ring(p: Params, num_hosts: int | None) -> Built:
    n = _gpu_count(p)
    return _shape(p, n, [(i, (i + 1) % n) for i in range(n)])


def torus(p: Params, num_hosts: int | None) -> Built:
    dims = p.raw("dims")
    if not (
        isinstance(dims, list)
        and len(dims) in TORUS_DIMS
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 2 for d in dims)
    ):
        p.problems.append(
            Problem(
                p.where("dims"), f"expected 2 or 3 integers >= 2, got {dims!r}", "e.g. [4, 4, 4]"
            )
        )
        dims = [2, 2]
    # Each GPU cables to its successor along each axis (2 directed edges); along an axis of size
    # 2 the successor's successor is the GPU itself, so that axis has half as many cables.
    gpus = math.prod(dims)
    if not _drawable(
        p,
        "dims",
        gpus,
        sum(gpus if d == 2 else 2 * gpus for d in dims),
        "2 per cable, a cable per GPU and axis",
    ):
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


def fully_connected(p: Params, num_hosts: int | None) -> Built:
    n = _gpu_count(p)
    if not _drawable(p, "num_gpus", n, n * (n - 1), "n(n-1): a cable between every pair"):
        n = 2
    return _shape(p, n, [(i, j) for i in range(n) for j in range(i + 1, n)])


def explicit(p: Params, num_hosts: int | None) -> Built:
    """Vertices and edges listed by hand; every problem (kinds, duplicates, self-loops, dangling
    ends) is reported at its field path."""
    b = Sketch()
    vertices, edges = p.raw("vertices"), p.raw("edges")
    if "vertices" in p.data and not isinstance(vertices, list):
        p.problems.append(
            Problem(
                p.where("vertices"),
                "expected a list of vertices",
                "e.g. [{name: gpu0, kind: gpu, host: 0}, {name: sw, kind: nvswitch}]",
            )
        )
    if "edges" in p.data and not isinstance(edges, list):
        p.problems.append(
            Problem(
                p.where("edges"),
                "expected a list of edges",
                "e.g. [{src: gpu0, dst: sw, bw: 300 GB/s}]",
            )
        )
    vertices, edges = (x if isinstance(x, list) else [] for x in (vertices, edges))
    # Drawn link by link: bounded by MAX_DRAWN_EDGES (a duplex edge is two directed edges).
    for key, items, most in (
        ("vertices", vertices, MAX_DRAWN_EDGES),
        ("edges", edges, MAX_DRAWN_EDGES // 2),
    ):
        if len(items) > most:
            p.problems.append(
                Problem(
                    p.where(key),
                    f"{len(items):,} {key}; an explicit graph lists at most {most:,}",
                    "use a host builder with a fabric for a large cluster",
                )
            )
    if len(vertices) > MAX_DRAWN_EDGES or len(edges) > MAX_DRAWN_EDGES // 2:
        return b.built()
    seen: dict[str, str] = {}  # name -> kind
    for i, v in enumerate(vertices):
        _explicit_vertex(b, Params(v, f"{p.where('vertices')}[{i}]", p.problems), i, seen)
    pairs: set[tuple[str, str]] = set()
    for i, ed in enumerate(edges):
        _explicit_edge(b, Params(ed, f"{p.where('edges')}[{i}]", p.problems), seen, pairs)
    per_host = Counter(h for _, k, h in b.vertices if k == "gpu")
    b.num_hosts = len(per_host) or 1
    b.gpus_per_host = max(per_host.values(), default=1)
    host_of = {n: h for n, _, h in b.vertices}
    b.gpu_ids.sort(key=lambda g: host_of[g])
    return b.built()


def _explicit_vertex(b: Sketch, vp: Params, i: int, seen: dict[str, str]) -> None:
    """One `vertices[i]` entry: name, kind (default gpu), host (GPUs: default 0; others: none)."""
    name = str(vp.raw("name", f"?{i}"))
    kind = vp.choice("kind", VERTEX_KINDS, "gpu")
    host = vp.int(
        "host", 0, minimum=0, maximum=MAX_GPUS - 1, why=f"at most {MAX_GPUS:,} hosts (one GPU each)"
    )
    vp.finish()
    if name in seen:
        vp.problems.append(Problem(vp.where("name"), f"duplicate vertex name {name!r}"))
        return
    seen[name] = kind
    has_host = isinstance(vp.data, dict) and "host" in vp.data
    b.vertex(name, kind, host if kind == "gpu" or has_host else -1)
    if kind == "gpu":
        b.gpu_ids.append(name)


def _explicit_edge(
    b: Sketch, ep: Params, seen: dict[str, str], pairs: set[tuple[str, str]]
) -> None:
    """One `edges[i]` entry: src, dst, bw, latency (0), kind (nvlink), duplex (true: both ways)."""
    ends = [str(ep.raw("src", "?")), str(ep.raw("dst", "?"))]
    bw, lat = ep.bw("bw"), ep.duration("latency", 0.0)
    kind, duplex = ep.choice("kind", LINK_KINDS, "nvlink"), ep.bool("duplex", True)
    ep.finish()
    bad = [n for n in ends if n not in seen]
    for n in bad:
        ep.problems.append(
            Problem(
                ep.where("src" if n == ends[0] else "dst"),
                f"unknown vertex {n!r}",
                did_you_mean(n, seen),
            )
        )
    if bad:
        return
    if ends[0] == ends[1]:
        ep.problems.append(
            Problem(
                ep.path,
                f"self-loop: src and dst are both {ends[0]!r}",
                "an edge joins two different vertices; remove this one",
            )
        )
        return
    for u, v in [tuple(ends)] + ([tuple(ends[::-1])] if duplex else []):
        if (u, v) in pairs:
            ep.problems.append(
                Problem(
                    ep.path,
                    f"duplicate edge {u}->{v}",
                    "list each cable once (duplex: true already adds both directions)",
                )
            )
            continue
        pairs.add((u, v))
        b.edge(u, v, bw, lat, kind)
