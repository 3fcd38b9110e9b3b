"""Figures from sweep results (CSV) and from a step's Chrome trace. matplotlib (a dependency of
clustersim) is imported lazily, with the Agg backend (no display needed), by one helper
(style.matplotlib_module): if it is missing all the same, a UserError says how to install it.

    plot_results(csv_path, out_dir, fmt) -> [step_time, memory, mfu] figure paths
    plot_trace(trace_path, out_dir, fmt) -> memory-timeline figure path

The figures live in simulator/report/figures/ (results: the sweep figures; timeline: the
trace's; style: colours, markers and line styles, one place for every figure); this module is
the entry point the CLI imports.
"""

from simulator.report.figures.results import (
    MEMORY_COMPONENTS,
    memory_figure,
    mfu_figure,
    panels,
    plot_results,
    read_results,
    step_time_figure,
)
from simulator.report.figures.style import (
    FORMATS,
    STREAM_COLORS,
    figure_class,
    matplotlib_module,
    strategy_styles,
)
from simulator.report.figures.timeline import plot_trace, read_trace, trace_figure

__all__ = [
    "FORMATS",
    "MEMORY_COMPONENTS",
    "STREAM_COLORS",
    "figure_class",
    "matplotlib_module",
    "memory_figure",
    "mfu_figure",
    "panels",
    "plot_results",
    "plot_trace",
    "read_results",
    "read_trace",
    "step_time_figure",
    "strategy_styles",
    "trace_figure",
]
