"""`clustersim sweep FILE --out results.csv`: run a sweep file's points, resumably, in parallel."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a scenario over a grid (or zip) of field values; one result row per point",
        description="Runs every point of a sweep file (a base scenario and axes over dotted field "
        "paths) and writes one row per point to --out (.csv, .jsonl or .parquet, by "
        "extension). Rows are appended as points finish; rerunning the same command "
        "resumes, computing only the missing points, and gives the same file as an "
        "uninterrupted run. A file that is not this sweep's results is never overwritten. "
        "Exit status: 0; 1 if a point ended with status error (a simulator failure "
        "or a timeout); 2 for a bad sweep file or a refused --out; 130 when interrupted "
        "(Ctrl-C), 143 when terminated (SIGTERM); finished rows are kept either way.",
    )
    p.add_argument("sweep", metavar="FILE", help="sweep YAML (base, mode, axes)")
    p.add_argument(
        "--out", metavar="FILE", help="results file: .csv, .jsonl or .parquet (needs pyarrow)"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help=f"worker processes (default: the CPU count, {os.cpu_count()})",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask cluster: tcp://HOST:PORT of a scheduler, or 'local' for a "
        "LocalCluster of --jobs workers (needs dask[distributed])",
    )
    p.add_argument(
        "--network",
        choices=["fluid", "analytic"],
        default="fluid",
        help="network model, as in `clustersim run` (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="wall-clock limit per point, recorded as status error (default: %(default)g; "
        "0: none; not enforced on Dask workers)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out even if it holds another sweep's results or is not a results file",
    )
    p.add_argument(
        "--retry-errors", action="store_true", help="recompute points whose status is error"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate and list the points without running them"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    p.add_argument(
        "--plot",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="also draw the figures of `clustersim plot` (CSV results only) into DIR "
        "(default: RESULTS-plots beside the results file)",
    )
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from simulator.core.errors import Problem, UserError
    from simulator.studies.sweep.runner import run_sweep
    from simulator.studies.sweep.spec import load_sweep

    sweep = load_sweep(args.sweep)
    if args.dry_run:
        return _list_points(sweep)
    if not args.out:
        raise UserError(Problem("--out", "required", "e.g. --out results.csv"))
    if args.jobs is not None and args.jobs < 1:
        raise UserError(
            Problem("--jobs", f"expected a positive number of workers, got {args.jobs}")
        )
    if args.plot is not None and not args.out.lower().endswith(".csv"):
        raise UserError(
            Problem("--plot", "figures are drawn from CSV results", "use --out results.csv")
        )
    plot_dir = _check_outputs(args)
    bar = ProgressBar(enabled=not args.quiet and sys.stderr.isatty())
    start = time.perf_counter()
    try:
        with _sigterm_as_interrupt():
            summary = run_sweep(
                sweep,
                args.out,
                jobs=args.jobs,
                dask=args.dask,
                backend=args.network,
                timeout_s=args.timeout,
                force=args.force,
                retry_errors=args.retry_errors,
                on_progress=bar.update,
            )
    except KeyboardInterrupt as exc:
        bar.close()
        print(
            f"interrupted: finished rows are kept in {args.out}; run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    bar.close()
    if not args.quiet:
        counts = ", ".join(f"{n} {s}" for s, n in summary.status_counts.items())
        resumed = f", {summary.resumed} read back from a previous run" if summary.resumed else ""
        print(
            f"{summary.total} points ({counts}{resumed}) -> {summary.path} "
            f"in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    if plot_dir is not None:
        from simulator.core.outputs import writing
        from simulator.report.plots import plot_results

        with writing("--plot", plot_dir):
            for path in plot_results(args.out, plot_dir):
                print(f"wrote {path}", file=sys.stderr)
    return 1 if summary.status_counts.get("error") else 0


def _check_outputs(args: argparse.Namespace):
    """Before any point is computed: --out can be written (missing folders are created), and with
    --plot, so can the figures' folder, and matplotlib is there. The figures' folder, or None."""
    from pathlib import Path

    from simulator.cli.output import check_output, check_output_dir

    check_output("--out", args.out, make_folders=True)
    if args.plot is None:
        return None
    from simulator.report.plots import matplotlib_module

    matplotlib_module(option="--plot")
    out = Path(args.out)
    plot_dir = Path(args.plot) if args.plot else out.with_name(out.stem + "-plots")
    check_output_dir("--plot", plot_dir)
    return plot_dir


class Terminated(KeyboardInterrupt):
    """SIGTERM, stopping a sweep as Ctrl-C does: the pool is stopped, finished rows are kept."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into Terminated while the sweep runs (only the main thread can set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: stopping the pool is not interrupted
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _list_points(sweep) -> int:
    points = sweep.points()
    print(f"{sweep.name}: {len(points)} points ({sweep.mode} over {', '.join(sweep.paths)})")
    print("\t".join(["point", *sweep.paths]))
    for i, values in enumerate(points):
        print("\t".join([str(i), *(str(v) for v in values)]))
    return 0


class ProgressBar:
    """A one-line bar on stderr, redrawn with a carriage return at most ten times a second."""

    WIDTH = 30

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.start = time.perf_counter()
        self.first: int | None = None
        self.last_draw = 0.0
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first = done
        if done < total and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        filled = self.WIDTH * done // max(total, 1)
        elapsed = now - self.start
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = f"ETA {(total - done) / rate:5.0f} s" if rate > 0 and done < total else ""
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} points "
            f"{elapsed:5.0f} s {eta}   "
        )
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False
