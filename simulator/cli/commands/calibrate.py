"""`clustersim calibrate`: fit the model's free constants to nccl-tests outputs and measured runs,
write a calibration profile and print the fit report."""

from __future__ import annotations

import argparse
import json
import shlex

from simulator.cli.output import check_output
from simulator.core.errors import Problem, UserError
from simulator.core.outputs import writing


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="fit collective and compute constants to nccl-tests outputs and measured runs",
        description="Reads nccl-tests outputs (all_reduce_perf, all_gather_perf, reduce_scatter_perf, "
        "alltoall_perf, sendrecv_perf, ... as the binaries print them) and a file of measured "
        "training runs, fits the constants the data identifies within physical bounds, and writes a "
        "profile that a scenario names with `calibration: FILE`. Prints every measurement's error "
        "before, after and left out of the fit.",
    )
    p.add_argument(
        "--nccl-tests",
        nargs="+",
        default=[],
        metavar="FILE[:TOPOLOGY]",
        help="nccl-tests output files, each with the topology it ran on (or --topology), or YAML "
        "manifests: nccl_tests: [{file, topology, num_hosts, op, nvls, algorithm}]",
    )
    p.add_argument(
        "--topology",
        help="topology of the nccl-tests files that name none (a shipped name or YAML)",
    )
    p.add_argument(
        "--runs",
        metavar="FILE",
        help="measured runs (YAML or CSV): scenario + step_time or tokens_per_s",
    )
    p.add_argument(
        "--out", required=True, metavar="PROFILE.yaml", help="the calibration profile to write"
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw predicted against measured (before, after, left out)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the profile document as JSON instead of the report",
    )
    p.add_argument(
        "--no-loo", dest="loo", action="store_false", help="skip the leave-one-out refits (faster)"
    )
    p.set_defaults(func=cmd_calibrate)


def _command(args: argparse.Namespace) -> str:
    parts = ["clustersim", "calibrate"]
    if args.nccl_tests:
        parts += ["--nccl-tests", *args.nccl_tests]
    for flag, value in (("--topology", args.topology), ("--runs", args.runs), ("--out", args.out)):
        if value:
            parts += [flag, value]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_calibrate(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every command's module is imported to build the parser.
    from simulator.report.accuracy import fit_text
    from simulator.studies.calibrate.collectives import parse_inputs
    from simulator.studies.calibrate.profile import check_out, profile_document, write_profile
    from simulator.studies.calibrate.study import calibrate

    if not args.nccl_tests and not args.runs:
        raise UserError(
            Problem(
                "--nccl-tests",
                "nothing to calibrate on",
                "give --nccl-tests FILE[:TOPOLOGY] and/or --runs FILE",
            )
        )
    inputs = [*args.nccl_tests, args.runs or ""]
    check_output("--out", args.out, tuple(inputs))
    check_out(args.out, args.force)
    if args.plot:
        check_output("--plot", args.plot, (*inputs, args.out))
        from simulator.report.plots import matplotlib_module

        matplotlib_module(option="--plot")
    result = calibrate(parse_inputs(args.nccl_tests, args.topology), args.runs, loo=args.loo)
    command = _command(args)
    path = write_profile(result, args.out, force=True, command=command)
    doc = profile_document(result, command)
    if args.plot:
        from simulator.report.figures.accuracy import plot_fit

        with writing("--plot", args.plot):
            plot_fit(doc, args.plot)
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(fit_text(doc, str(path)))
    for path_, line, reason in result.skipped:
        print(f"skipped {path_}:{line}: {reason}")
    for note in result.notes:
        print(f"note: {note}")
    return 0
