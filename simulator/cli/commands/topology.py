"""`clustersim topology list|show`: the shipped topologies, and what one is made of."""

from __future__ import annotations

import argparse
import json

from simulator.core.errors import Problem, UserError
from simulator.core.units import fmt_bandwidth
from simulator.system.topology.graph import Topology
from simulator.system.topology.loader import (
    load_topology,
    topology_info,
    topology_names,
    topology_path,
)
from simulator.system.topology.summary import summary

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
    show.add_argument(
        "--vertices",
        action="store_true",
        help="also list every vertex and link by name (what cluster.degraded_links refer to)",
    )
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=cmd_topology_show)


def cmd_topology_list(args: argparse.Namespace) -> int:
    for name in topology_names():
        info = topology_info(topology_path(name))
        blurb = info.description.split(":")[0].split(".")[0][:60]
        print(
            f"{name:28s} {info.num_gpus:6d} GPUs  {info.num_hosts:5d} hosts  {info.gpu:16s} {blurb}"
        )
    return 0


def load_for_cli(name: str, num_hosts: int | None) -> Topology:
    """load_topology, a problem with the host count given on the command line named as its flag."""
    try:
        return load_topology(name, num_hosts)
    except UserError as exc:
        if num_hosts is None:
            raise
        problems = [
            Problem("--num-hosts", p.message, p.hint)
            if p.path == "num_hosts" and not p.source and not exc.source
            else p
            for p in exc.problems
        ]
        raise UserError(problems, exc.source) from None


def cmd_topology_show(args: argparse.Namespace) -> int:
    if args.picture:
        from simulator.cli.output import check_output

        check_output("--picture", args.picture)
    topo = load_for_cli(args.name, args.num_hosts)
    info = summary(topo)
    if args.vertices:
        info["vertex_names"] = [f"{name} ({kind})" for name, kind, _ in topo.vertices]
        info["link_names"] = [f"{u} -> {v}" for u, v in topo.edges]
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
    reduce = [
        name
        for name, on in (
            ("NVLink SHARP (NVLS)", info.get("nvls")),
            ("IB SHARP (CollNet)", info.get("sharp")),
        )
        if on
    ]
    lines.append("in-network " + (", ".join(reduce) if reduce else "none"))
    routing = info["routing"]
    lines.append(
        "routing    "
        + (
            "adaptive (even over every equal-cost path)"
            if routing["policy"] == "adaptive"
            else f"ECMP, {routing['flows_per_pair']} flows per GPU pair between hosts"
        )
    )
    lines.append(f"source     {info['source']}")
    if "vertex_names" in info:
        lines += ["vertex names:", *(f"  {v}" for v in info["vertex_names"])]
        lines += ["links (source -> target):", *(f"  {e}" for e in info["link_names"])]
    return lines


def _check_picture(topo: Topology, path: str) -> None:
    n = topo.graph.number_of_nodes()
    if n > MAX_DRAWN_VERTICES:
        raise UserError(
            Problem(
                "--picture",
                f"{topo.name} has {n} vertices; pictures are drawn up to {MAX_DRAWN_VERTICES}",
                "use a smaller --num-hosts",
            )
        )
    if not str(path).lower().endswith((".png", ".svg")):
        raise UserError(Problem("--picture", f"{path!r}: expected a .png or .svg file name"))


def draw_topology(topo: Topology, path: str) -> None:
    """Draw a small topology, layered by vertex kind (GPUs at the bottom), to PNG or SVG."""
    _check_picture(topo, path)
    n = topo.graph.number_of_nodes()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(
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
    from simulator.core.outputs import writing

    try:
        with writing("--picture", path):
            fig.savefig(path, bbox_inches="tight")
    finally:
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
