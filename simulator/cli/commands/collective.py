"""`clustersim collective`: an nccl-tests-style table of one collective on a topology."""

from __future__ import annotations

import argparse
import json
from typing import Any

from simulator.cli.commands.topology import load_for_cli
from simulator.core.errors import Problem, UserError
from simulator.core.units import UnitError, parse_size_range
from simulator.scenario.calibration import load_profile
from simulator.system.comm.algorithms import ALGORITHMS
from simulator.system.comm.calibration import NCCL_CALIBRATION, OPS, Calibration
from simulator.system.comm.cost import CommContext
from simulator.system.topology.graph import Topology
from simulator.system.topology.groups import resolve_group


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
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
        help="nccl-tests sizes: LOW..HIGH (doubling) or a list 1024,4096; as nccl-tests' -b/-e read "
        "them, a bare number is bytes and the letters K, M, G, T, P are binary (1K = 1024 bytes); "
        "'1 MB' (decimal) or '1 MiB' (binary) are taken as written; at most 1P",
    )
    usable = [name for name, a in ALGORITHMS.items() if set(a.ops) & set(OPS)]  # not p2p's sends
    coll.add_argument("--algorithm", default="auto", help=f"auto or one of {', '.join(usable)}")
    coll.add_argument(
        "--no-nvls",
        dest="nvls",
        action="store_false",
        help="NCCL_NVLS_ENABLE=0: no NVLink SHARP even where the topology has it",
    )
    coll.add_argument(
        "--calibration",
        metavar="PROFILE",
        help="a calibration profile (clustersim calibrate --out); default: the built-in constants",
    )
    coll.add_argument("--json", action="store_true", help="print a JSON list of rows")
    coll.set_defaults(func=cmd_collective)


def _parse_group(text: str) -> Any:
    return [part.strip() for part in text.split(",")] if "," in text else text


def collective_rows(
    topo: Topology,
    op: str,
    group: Any,
    sizes: list[int],
    algorithm: str,
    nvls: bool = True,
    calibration: Calibration = NCCL_CALIBRATION,
) -> list[dict]:
    """One nccl-tests-style row per size."""
    if op not in OPS:
        from simulator.core.errors import did_you_mean

        raise UserError(Problem("--op", f"unknown collective {op!r}", did_you_mean(op, OPS)))
    idx = resolve_group(topo, group)
    ctx = CommContext(topo, calibration, nvls=nvls)
    rows = []
    for size in sizes:
        c = ctx.cost(op, idx, size, algorithm)
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
        raise UserError(
            Problem("--sizes", str(exc), "e.g. 1K..8G (1K = 1024 bytes) or 1024,1048576")
        ) from None
    if not sizes:
        raise UserError(Problem("--sizes", "no sizes given", "e.g. 1K..8G"))
    topo = load_for_cli(args.topology, args.num_hosts)
    calibration = (
        load_profile(args.calibration, "--calibration", gpu=topo.gpu).comm
        if args.calibration
        else NCCL_CALIBRATION
    )
    rows = collective_rows(
        topo, args.op, _parse_group(args.group), sizes, args.algorithm, args.nvls, calibration
    )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"# {topo.name}: {topo.num_gpus} GPUs on {topo.num_hosts} host(s); {args.op} over group "
        f"{args.group!r} ({rows[0]['ranks']} ranks); algorithm {args.algorithm}"
        + ("" if args.nvls else "; NVLS off")
        + (f"; calibration {args.calibration}" if args.calibration else "")
    )
    print(
        f"#{'size':>12s} {'count':>12s} {'type':>6s} {'time':>11s} {'algbw':>8s} {'busbw':>8s}  algorithm/protocol"
    )
    print(f"#{'(B)':>12s} {'(elements)':>12s} {'':>6s} {'(us)':>11s} {'(GB/s)':>8s} {'(GB/s)':>8s}")
    for r in rows:
        print(
            f" {r['size_bytes']:12d} {r['count']:12d} {r['type']:>6s} {r['time_s'] * 1e6:11.1f} "
            f"{r['algbw_GBps']:8.2f} {r['busbw_GBps']:8.2f}  {r['algorithm']}/{r['protocol']}"
        )
    return 0
