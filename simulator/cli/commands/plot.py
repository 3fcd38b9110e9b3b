"""`clustersim plot [results.csv] [--trace trace.json] [--goodput FILE] [--power FILE] [--out DIR]
[--format png|svg]`."""

from __future__ import annotations

import argparse

from simulator.core.errors import Problem, UserError


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plot",
        help="figures from sweep results (CSV) or a step's trace",
        description="From a `clustersim sweep` CSV: step time split into compute and exposed "
        "communication vs GPU count per strategy, per-GPU memory by component with the "
        "capacity line and OOM marked (bars beyond 1.6x the capacity cut, their total "
        "written above), MFU vs scale. With --trace (from `clustersim run --trace`): the "
        "memory timeline of one step per rank class, with each class's peak, over the "
        "streams' activity. With --power: a step's cluster power by activity and the run's "
        "power by phase (a report JSON), or step time, energy per token and MW against the "
        "power cap (a sweep CSV over cluster.power_cap; a results CSV that varies the cap gets "
        "this figure too). A strategy, and a stream, has one colour in every figure.",
    )
    p.add_argument("results", nargs="?", help="sweep results CSV")
    p.add_argument(
        "--trace", metavar="FILE", help="Chrome trace JSON from `clustersim run --trace`"
    )
    p.add_argument(
        "--goodput",
        metavar="FILE",
        help="goodput figures: from a report JSON (`clustersim run "
        "--json-out`), the completion-time distribution and the time lost by cause; from a sweep CSV, "
        "the effective training time and wall-clock days against what the sweep varies",
    )
    p.add_argument(
        "--power",
        metavar="FILE",
        help="power figures: from a report JSON (`clustersim run --json-out`), the cluster's "
        "power over one step by activity with its average, peak and swing, and over the goodput "
        "run's wall clock by phase; from a sweep CSV over cluster.power_cap, step time, energy "
        "per token and cluster MW against the cap",
    )
    p.add_argument(
        "--out", default="plots", metavar="DIR", help="output directory (default: %(default)s)"
    )
    p.add_argument("--format", default="png", choices=["png", "svg"])
    p.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from simulator.cli.output import check_output_dir
    from simulator.core.outputs import writing
    from simulator.report import plots

    if not args.results and not args.trace and not args.goodput and not args.power:
        raise UserError(
            Problem(
                "plot",
                "nothing to plot",
                "give a results CSV, --trace FILE, --goodput FILE and/or --power FILE",
            )
        )
    check_output_dir("--out", args.out)
    plots.matplotlib_module()
    written = []
    # The inputs' read errors are UserErrors of their own: an OSError here is writing --out.
    with writing("--out", args.out):
        if args.results:
            written += plots.plot_results(args.results, args.out, args.format)
        if args.trace:
            written.append(plots.plot_trace(args.trace, args.out, args.format))
        if args.goodput:
            from simulator.report.figures.goodput import plot_goodput

            written += plot_goodput(args.goodput, args.out, args.format)
        if args.power:
            written += plots.plot_power(args.power, args.out, args.format)
    for path in written:
        print(f"wrote {path}")
    return 0
