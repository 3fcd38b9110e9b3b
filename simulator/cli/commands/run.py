"""`clustersim run [SCENARIO]`: simulate a scenario and print its report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from simulator.cli.output import check_output, check_runs
from simulator.core.errors import Problem, UserError
from simulator.core.outputs import write_text
from simulator.scenario.load import DEFAULT_SCENARIO, load_scenario, scenario_path


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="simulate a scenario and print its report")
    run.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help=f"scenario YAML, or a shipped scenario's name (default: {DEFAULT_SCENARIO}; "
        "see `clustersim scenarios`)",
    )
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run.add_argument("--json-out", metavar="FILE", help="also write the JSON report to FILE")
    run.add_argument(
        "--fail-on-oom", action="store_true", help="exit 1 when the scenario does not fit"
    )
    run.add_argument(
        "--trace", metavar="FILE", help="write the step's timeline as Chrome trace JSON"
    )
    run.add_argument(
        "--network",
        choices=["fluid", "analytic"],
        default="fluid",
        help="network model: max-min fair sharing between concurrent collectives "
        "(fluid, default) or each collective at its standalone time (analytic)",
    )
    run.add_argument(
        "--runs",
        type=int,
        metavar="N",
        help="Monte Carlo runs of the whole training run with "
        "failures, checkpoints and restarts (default: reliability.runs, 100)",
    )
    run.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of those runs (default: reliability.seed, else training.seed)",
    )
    run.add_argument(
        "--no-goodput",
        dest="goodput",
        action="store_false",
        help="skip that Monte Carlo (as reliability: {enabled: false}): the step and days only",
    )
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.report.document import to_json
    from simulator.report.text import render_text
    from simulator.studies.api import run

    path = scenario_path(args.scenario)
    check_output("--json-out", args.json_out, (path,))
    check_output("--trace", args.trace, (path,))
    if args.json_out and args.trace and Path(args.json_out).resolve() == Path(args.trace).resolve():
        raise UserError(
            Problem("--trace", f"{args.trace} is also --json-out", "give two different files")
        )
    check_runs(args.runs, args.seed)
    if not args.goodput and (args.runs is not None or args.seed is not None):
        raise UserError(
            Problem(
                "--no-goodput",
                "--runs and --seed set the Monte Carlo that --no-goodput skips",
                "give one or the other",
            )
        )
    report = run(
        load_scenario(path),
        args.goodput,
        network=args.network,
        runs=args.runs,
        seed=args.seed,
        jobs=os.cpu_count() or 1,
        trace=args.trace,
    ).to_dict()
    text = to_json(report)
    if args.json_out:
        write_text("--json-out", args.json_out, text + "\n")
    print(text if args.json else render_text(report))
    return 0 if report["memory"]["fits"] or not args.fail_on_oom else 1
