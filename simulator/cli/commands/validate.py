"""`clustersim validate FILE...`: check scenario files without running them (the same checks as `run`)."""

from __future__ import annotations

import argparse
import sys

from simulator.core.errors import UserError
from simulator.scenario.load import load_scenario


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            s = load_scenario(name)
        except UserError as exc:
            failed += 1
            print(exc.render(), file=sys.stderr)
            continue
        print(
            f"{name}: ok ({s.name}: {s.model.name}, {s.strategy}, {s.cluster.num_gpus} x {s.cluster.gpu.name})"
        )
        for warning in s.warnings:
            print(f"{name}: warning: {warning}")
    return 2 if failed else 0
