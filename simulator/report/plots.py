"""Figures from sweep results (CSV) and from a step's Chrome trace. matplotlib (a dependency of
clustersim) is imported lazily, with the Agg backend (no display needed), by one helper
(style.matplotlib_module): if it is missing all the same, a UserError says how to install it.

    plot_results(csv_path, out_dir, fmt) -> [step_time, memory, mfu] figure paths, and
        power_cap where the sweep varies cluster.power_cap
    plot_trace(trace_path, out_dir, fmt) -> memory-timeline figure path
    plot_power(report_json_or_csv, out_dir, fmt) -> [power_step, power_run] figure paths of a
        report (power_run where it has a completed goodput run), or [power_cap] of a sweep CSV

The figures live in simulator/report/figures/ (results: the sweep figures; timeline: the
trace's; power, power_run, power_cap: the power figures; style: colours, markers and line styles, one place for every
figure); this module is the entry point the CLI imports.
"""

from pathlib import Path

from simulator.report.figures import results as _results
from simulator.report.figures.power import read_report, step_figure, step_power
from simulator.report.figures.power_cap import maybe_plot_power_cap, plot_power_cap
from simulator.report.figures.power_run import run_figure, run_power
from simulator.report.figures.results import (
    MEMORY_COMPONENTS,
    memory_figure,
    mfu_figure,
    panels,
    read_results,
    step_time_figure,
)
from simulator.report.figures.style import (
    FORMATS,
    STREAM_COLORS,
    check_format,
    figure_class,
    matplotlib_module,
    save,
    strategy_styles,
)
from simulator.report.figures.timeline import plot_trace, read_trace, trace_figure


def plot_results(csv_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """The sweep figures (step time split, memory by component, MFU vs scale) in out_dir, and the
    power-cap figure where the sweep varies cluster.power_cap."""
    written = _results.plot_results(csv_path, out_dir, fmt)
    return written + maybe_plot_power_cap(csv_path, out_dir, fmt)


def plot_power_report(report_path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """power_step (always) and power_run (where the report has a completed goodput run)."""
    check_format(fmt)
    report = read_report(report_path)
    out = Path(out_dir)
    written = [save(step_figure(step_power(report, report_path)), out / f"power_step.{fmt}")]
    run = run_power(report, report_path)
    if run is not None:
        written.append(save(run_figure(run), out / f"power_run.{fmt}"))
    return written


def plot_power(path: str | Path, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """From a report JSON or a power-cap sweep CSV, by the file's suffix."""
    if str(path).lower().endswith(".csv"):
        return plot_power_cap(path, out_dir, fmt)
    return plot_power_report(path, out_dir, fmt)


__all__ = [
    "FORMATS",
    "MEMORY_COMPONENTS",
    "STREAM_COLORS",
    "figure_class",
    "matplotlib_module",
    "memory_figure",
    "mfu_figure",
    "panels",
    "plot_power",
    "plot_results",
    "plot_trace",
    "read_results",
    "read_trace",
    "step_time_figure",
    "strategy_styles",
    "trace_figure",
]
