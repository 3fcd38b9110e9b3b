"""`clustersim topology ...` and `clustersim collective ...`: the network subcommands.

cli.py wires them in with `netcli.add_subcommands(subparsers)`. Each handler prints to
stdout, returns an exit code, and raises ScenarioError for user mistakes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from simulator.system.comm.collectives import ALGORITHMS, OPS, collective_cost
from simulator.core.errors import Problem, ScenarioError
from simulator.system.topology.graph import Topology, load_topology, resolve_group, summary, topology_names
from simulator.core.units import UnitError, fmt_bandwidth, parse_size_range

# Largest graph drawn: beyond this a picture is unreadable (and networkx layout slow).
MAX_DRAWN_VERTICES = 200
_LAYER = {
    "gpu": 0,
    "nvswitch": 1,
    "pcie_switch": 1,
    "cpu": 2,
    "nic": 2,
    "leaf": 3,
    "spine": 4,
    "core": 5,
}
_COLOR = {
    "gpu": "#76b900",
    "nvswitch": "#1f77b4",
    "pcie_switch": "#9467bd",
    "cpu": "#7f7f7f",
    "nic": "#ff7f0e",
    "leaf": "#d62728",
    "spine": "#8c564b",
    "core": "#e377c2",
}


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register `topology list|show` and `collective` on the main parser's subparsers."""
    topo = subparsers.add_parser("topology", help="list shipped topologies or summarize one")
    topo_sub = topo.add_subparsers(dest="topology_command", required=True)
    topo_sub.add_parser("list", help="names of shipped topologies").set_defaults(
        func=cmd_topology_list
    )
    show = topo_sub.add_parser("show", help="GPUs, hosts, links by kind, bisection bandwidth")
    show.add_argument("name", help="shipped topology name or path to a topology YAML")
    show.add_argument("--num-hosts", type=int, default=None, help="scale a multi-host topology")
    show.add_argument(
        "--picture", metavar="PATH", help="write a drawing (.png or .svg) of a small topology"
    )
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=cmd_topology_show)

    coll = subparsers.add_parser(
        "collective", help="nccl-tests-style collective benchmark on a topology"
    )
    coll.add_argument("--topology", required=True, help="shipped topology name or YAML path")
    coll.add_argument("--num-hosts", type=int, default=None)
    coll.add_argument("--op", default="all_reduce", help=f"one of {', '.join(OPS)}")
    coll.add_argument(
        "--group", default="all", help="all, host[:N], rail[:N], or comma-separated GPU names"
    )
    coll.add_argument(
        "--sizes",
        default="1K..8G",
        help="nccl-style range LOW..HIGH (doubling) or a list: 1024,4096",
    )
    coll.add_argument("--algorithm", default="auto", help=f"auto or one of {', '.join(ALGORITHMS)}")
    coll.add_argument("--json", action="store_true", help="print a JSON list of rows")
    coll.set_defaults(func=cmd_collective)


def cmd_topology_list(args: argparse.Namespace) -> int:
    for name in topology_names():
        topo = load_topology(name)
        print(f"{name:28s} {topo.num_gpus:6d} GPUs  {topo.num_hosts:4d} hosts  {topo.gpu}")
    return 0


def cmd_topology_show(args: argparse.Namespace) -> int:
    topo = load_topology(args.name, args.num_hosts)
    info = summary(topo)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True, default=float))
    else:
        print("\n".join(format_summary(info)))
    if args.picture:
        draw_topology(topo, args.picture)
        print(f"picture written to {args.picture}")
    return 0


def format_summary(info: dict) -> list[str]:
    bis = info["bisection_bw_per_gpu_bytes_per_s"]
    lines = [
        f"topology   {info['name']}  ({info['gpu']})",
        f"GPUs       {info['gpus']}  on {info['hosts']} host(s), {info['gpus_per_host']} per host",
        "vertices   " + ", ".join(f"{k} {v}" for k, v in sorted(info["vertices"].items())),
        "links      (directed edges; bandwidth per direction)",
    ]
    for kind, row in sorted(info["links"].items()):
        lo, hi = fmt_bandwidth(row["min_bw_bytes_per_s"]), fmt_bandwidth(row["max_bw_bytes_per_s"])
        lines.append(f"  {kind:9s} {row['edges']:7d}   {lo if lo == hi else lo + ' .. ' + hi}")
    lines.append("bisection  " + ("n/a" if bis is None else f"{fmt_bandwidth(bis)} per GPU"))
    lines.append(f"source     {info['source']}")
    return lines


def draw_topology(topo: Topology, path: str) -> None:
    """Draw a small topology, layered by vertex kind (GPUs at the bottom), to PNG or SVG."""
    n = topo.graph.number_of_nodes()
    if n > MAX_DRAWN_VERTICES:
        raise ScenarioError(
            Problem(
                "--picture",
                f"{topo.name} has {n} vertices; pictures are drawn up to {MAX_DRAWN_VERTICES}",
                "use a smaller --num-hosts",
            )
        )
    if not str(path).lower().endswith((".png", ".svg")):
        raise ScenarioError(Problem("--picture", f"{path!r}: expected a .png or .svg file name"))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ScenarioError(
            Problem(
                "--picture",
                "matplotlib is not installed",
                "install it with: pip install matplotlib",
            )
        ) from None
    import networkx as nx

    g = topo.graph.to_undirected(as_view=False)
    kinds = dict(topo.graph.nodes(data="kind"))
    if len(set(kinds.values())) == 1:
        pos = nx.circular_layout(g) if topo.builder == "ring" else nx.spring_layout(g, seed=0)
    else:
        pos = _layered_layout(topo)
    widest = max(
        sum(1 for k in kinds.values() if _LAYER.get(k, 0) == lay) for lay in set(_LAYER.values())
    )
    fig, ax = plt.subplots(figsize=(max(6, widest * 0.6), 6))
    nx.draw_networkx(
        g,
        pos,
        ax=ax,
        node_color=[_COLOR.get(kinds[v], "#999") for v in g.nodes],
        node_size=220,
        font_size=6,
        width=0.6,
        with_labels=n <= 64,
    )
    ax.set_title(f"{topo.name}: {topo.num_gpus} GPUs, {topo.num_hosts} host(s)")
    ax.axis("off")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _layered_layout(topo: Topology) -> dict:
    """Vertices in rows by kind (GPUs at the bottom), in build order (host-major) along each row."""
    rows: dict[int, list[str]] = {}
    for v, kind in topo.graph.nodes(data="kind"):
        rows.setdefault(_LAYER.get(kind, 0), []).append(v)
    pos = {}
    for layer, members in rows.items():
        for i, v in enumerate(members):
            pos[v] = ((i + 0.5) / len(members), float(layer))
    return pos


def _parse_group(text: str) -> Any:
    return [part.strip() for part in text.split(",")] if "," in text else text


def collective_rows(
    topo: Topology, op: str, group: Any, sizes: list[int], algorithm: str
) -> list[dict]:
    """One nccl-tests-style row per size."""
    idx = resolve_group(topo, group)
    rows = []
    for size in sizes:
        c = collective_cost(topo, op, idx, size, algorithm)
        rows.append(
            {
                "size_bytes": size,
                "count": size // 4,
                "type": "float",
                "time_s": c.time_s,
                "algbw_GBps": c.algbw_Bps / 1e9 if c.time_s > 0 else 0.0,
                "busbw_GBps": c.busbw_Bps / 1e9 if c.time_s > 0 else 0.0,
                "algorithm": c.algorithm,
                "protocol": c.protocol,
                "ranks": len(idx),
            }
        )
    return rows


def cmd_collective(args: argparse.Namespace) -> int:
    try:
        sizes = parse_size_range(args.sizes)
    except UnitError as exc:
        raise ScenarioError(Problem("--sizes", str(exc), "e.g. 1K..8G or 1024,1048576")) from None
    if not sizes:
        raise ScenarioError(Problem("--sizes", "no sizes given", "e.g. 1K..8G"))
    topo = load_topology(args.topology, args.num_hosts)
    rows = collective_rows(topo, args.op, _parse_group(args.group), sizes, args.algorithm)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"# {topo.name}: {topo.num_gpus} GPUs on {topo.num_hosts} host(s); {args.op} over group "
        f"{args.group!r} ({rows[0]['ranks']} ranks); algorithm {args.algorithm}"
    )
    print(
        f"#{'size':>12s} {'count':>12s} {'type':>6s} {'time':>11s} {'algbw':>8s} {'busbw':>8s}  algorithm"
    )
    print(f"#{'(B)':>12s} {'(elements)':>12s} {'':>6s} {'(us)':>11s} {'(GB/s)':>8s} {'(GB/s)':>8s}")
    for r in rows:
        print(
            f" {r['size_bytes']:12d} {r['count']:12d} {r['type']:>6s} {r['time_s'] * 1e6:11.1f} "
            f"{r['algbw_GBps']:8.2f} {r['busbw_GBps']:8.2f}  {r['algorithm']}/{r['protocol']}"
        )
    return 0
