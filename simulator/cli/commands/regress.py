"""`clustersim regress SCENARIO_DIR --golden DIR [--rtol R] [--update]`: predicted-timing regressions."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.cli.output import check_output_dir
from simulator.core.errors import Problem, UserError
from simulator.core.outputs import writing
from simulator.studies.regress import DEFAULT_RTOL, render, run_regression


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "regress",
        help="compare every scenario's predictions with stored golden JSON (exit 1 on change)",
        description="Each *.yaml scenario under SCENARIO_DIR (recursively; files that are not scenarios, "
        "such as sweep files, are skipped) is simulated and compared with GOLDEN/<same "
        "relative path>.json: exact for verdicts, strings and integers, relative tolerance "
        "for times and rates. Golden files are snapshots of clustersim's own output, not "
        "ground truth.",
    )
    p.add_argument("scenario_dir", metavar="SCENARIO_DIR")
    p.add_argument("--golden", required=True, metavar="DIR", help="directory of golden JSON files")
    p.add_argument(
        "--rtol",
        type=float,
        default=DEFAULT_RTOL,
        help="relative tolerance for times and rates (default %(default)g)",
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="rewrite the golden files from the current predictions (writes only inside DIR)",
    )
    p.set_defaults(func=cmd_regress)


def cmd_regress(args: argparse.Namespace) -> int:
    if not args.rtol >= 0:
        raise UserError(Problem("--rtol", f"expected a tolerance >= 0, got {args.rtol:g}"))
    golden, scenarios = Path(args.golden).resolve(), Path(args.scenario_dir).resolve()
    if golden == scenarios:
        raise UserError(
            Problem(
                "--golden",
                "the golden directory must not be the scenario directory",
                "e.g. --golden golden",
            )
        )
    if not args.update:
        result = run_regression(args.scenario_dir, args.golden, args.rtol, args.update)
    else:  # golden files are written as the scenarios are checked: the folder is checked first
        check_output_dir("--golden", args.golden)
        with writing("--golden", args.golden):
            result = run_regression(args.scenario_dir, args.golden, args.rtol, args.update)
    print(render(result, args.rtol))
    if args.update:
        changed = sum(c.status == "updated" for c in result.checks)
        print(
            f"updated {changed} golden file(s) in {args.golden}; review the diff before committing"
        )
    return 1 if result.failed else 0
