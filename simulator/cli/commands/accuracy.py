"""`clustersim accuracy`: the shipped validation set (and a user's cases) predicted against the
published figures, error per case, median and max per category, calibration apart from validation."""

from __future__ import annotations

import argparse
import json
import sys

from simulator.cli.output import check_output
from simulator.core.errors import Problem, UserError


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "accuracy",
        help="predicted vs published for the validation set: error per case and per category",
        description="Runs every case of the validation set shipped with clustersim (published measurements with "
        "their setups and sources: collectives, memory, throughput) and prints predicted against "
        "published. Cases some constant was fitted to (role calibration) are shown apart from "
        "validation cases. --cases adds your own file of the same format.",
    )
    p.add_argument(
        "--cases", nargs="+", default=[], metavar="FILE", help="your own cases files (same format)"
    )
    p.add_argument(
        "--no-shipped", dest="shipped", action="store_false", help="only the --cases files"
    )
    p.add_argument(
        "--category", nargs="+", default=[], help="only these categories (e.g. collective memory)"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="also the slow cases (thousands of GPUs, hundreds of stages)",
    )
    p.add_argument(
        "--calibration",
        metavar="PROFILE",
        help="predict with a calibration profile's constants "
        "(the built-in errors are shown beside)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document (for CI)")
    p.add_argument(
        "--plot", metavar="OUT.png", help="draw predicted against published, one panel per category"
    )
    p.add_argument("--readme", action="store_true", help="print only the README's summary block")
    p.add_argument(
        "--write-intervals",
        metavar="PATH",
        help="fit the 80%% step-time intervals to the shipped validation cases (throughput and "
        "framework, slow ones included, built-in constants) and write their table to PATH "
        "(the shipped one: simulator/data/validation/intervals/step_time.yaml)",
    )
    p.set_defaults(func=cmd_accuracy)


def cmd_accuracy(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every command's module is imported to build the parser.
    from simulator.report.accuracy import accuracy_text, readme_block
    from simulator.scenario.calibration import load_profile
    from simulator.studies.accuracy import default_files, document, run_cases, select_cases

    if not args.shipped and not args.cases:
        raise UserError(Problem("--no-shipped", "no cases left to run", "give --cases FILE"))
    if args.write_intervals:
        return _write_intervals(args)
    if args.plot:
        check_output("--plot", args.plot, tuple(args.cases))
    calibration = load_profile(args.calibration, "--calibration") if args.calibration else None
    files = default_files(args.cases, args.shipped)
    cases, slow = select_cases(files, args.all, tuple(args.category))

    def progress(i, n, case):
        if sys.stderr.isatty():
            print(f"\r[{i + 1}/{n}] {case.id[:60]:<60}", end="", file=sys.stderr, flush=True)

    outcomes = run_cases(cases, calibration, progress)
    if sys.stderr.isatty():
        print("\r" + " " * 72 + "\r", end="", file=sys.stderr)
    doc = document(outcomes, slow, files, calibration)
    if args.plot:
        from simulator.core.outputs import writing
        from simulator.report.figures.accuracy import plot_accuracy

        with writing("--plot", args.plot):
            plot_accuracy(doc, args.plot)
    if args.json:
        print(json.dumps(doc, indent=1))
    elif args.readme:
        print(readme_block(doc))
    else:
        print(accuracy_text(doc))
    return 0


def _write_intervals(args: argparse.Namespace) -> int:
    """The table every `clustersim run` reads its interval from: shipped cases, built-in constants."""
    from simulator.core.outputs import write_text
    from simulator.core.yamlio import dump_yaml
    from simulator.studies import intervals
    from simulator.studies.accuracy import default_files, interval_points, run_cases, select_cases

    given = [
        f
        for f, on in (
            ("--cases", args.cases),
            ("--no-shipped", not args.shipped),
            ("--category", args.category),
            ("--calibration", args.calibration),
        )
        if on
    ]
    if given:
        raise UserError(
            Problem(
                given[0],
                "--write-intervals fits the shipped validation cases with the built-in constants",
                "leave out " + ", ".join(given),
            )
        )
    check_output("--write-intervals", args.write_intervals, ())
    cases, _ = select_cases(default_files([]), True, intervals.CATEGORIES)
    groups = intervals.fit(interval_points(run_cases(cases)))
    write_text("--write-intervals", args.write_intervals, dump_yaml(intervals.table(groups)))
    for name, g in groups.items():
        print(f"{name:<40} {len(g['cases']):>3} cases  q10 {g['q10']:+.3f}  q90 {g['q90']:+.3f}")
    print(f"wrote {args.write_intervals}")
    return 0
