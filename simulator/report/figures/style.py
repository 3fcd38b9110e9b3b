"""What every figure shares: the lazy matplotlib import, saving, and one mapping each for
stream, memory-component, strategy and rank-class colours, so a colour means the same thing
in every figure."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from simulator.core.errors import Problem, UserError
from simulator.execution.schedule import STREAMS
from simulator.execution.strategies import STRATEGIES

FORMATS = ("png", "svg")
OOM_COLOR = "#d62728"  # red: reserved for out-of-memory marks, so no series below uses it

# Streams (execution/schedule.STREAMS): the timeline's activity lanes and the communication
# part of the step-time bars. Dark2 hues, chosen apart from the strategy palette below.
STREAM_COLORS = {
    "compute": "#1b9e77",
    "comm": "#5e3c99",
    "comm_rs": "#e7298a",
    "p2p": "#66a61e",
    "pcie": "#e6ab02",
    "cpu": "#666666",
    "host": "#a6761d",
}
assert tuple(STREAM_COLORS) == STREAMS, "one colour per stream, in the schedule's order"

COMPONENT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f")

# tab10 without red (OOM), grey and purple (near the comm stream's colour).
STRATEGY_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
# Hollow markers of different shapes and different dash patterns: two strategies with equal
# values still show both series, one drawn through the other.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")

# Rank classes in the memory timeline: dark, apart from the stream colours in the lanes below.
CLASS_STYLES = (("#222222", "-"), ("#d95f02", "--"), ("#1f77b4", "-."), ("#bcbd22", ":"))


@dataclass(frozen=True)
class SeriesStyle:
    color: str
    marker: str
    linestyle: str


def strategy_styles(names) -> dict[str, SeriesStyle]:
    """A style per strategy name. The registry's strategies keep their place whatever else is in
    the data, so ddp has the same colour in every figure and every sweep; others follow, sorted."""
    registry = list(STRATEGIES)
    others = sorted(set(names) - set(registry))
    index = {
        s: registry.index(s) if s in STRATEGIES else len(registry) + others.index(s) for s in names
    }
    return {
        s: SeriesStyle(
            STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)],
            MARKERS[i % len(MARKERS)],
            LINESTYLES[i % len(LINESTYLES)],
        )
        for s, i in sorted(index.items(), key=lambda t: t[1])
    }


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(
            Problem("--format", f"unknown format {fmt!r}", f"one of {', '.join(FORMATS)}")
        )


def matplotlib_module(name: str = "matplotlib", option: str = "plot"):
    """The matplotlib module `name` (matplotlib.patches, ...), imported on first use with the
    non-interactive Agg backend (no display needed); the one place figures import it, so that a
    missing matplotlib is a UserError with the install line, never a ModuleNotFoundError."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        return importlib.import_module(name)
    except ImportError as exc:
        if (exc.name or "").split(".")[
            0
        ] != "matplotlib":  # installed, but a library of its own is not
            raise UserError(
                Problem(
                    option,
                    f"matplotlib cannot be imported: {exc}",
                    "reinstall it: pip install --force-reinstall matplotlib",
                )
            ) from None
        raise UserError(
            Problem(
                option,
                "plots need matplotlib: matplotlib is not installed",
                "pip install matplotlib",
            )
        ) from None


def figure_class():
    return matplotlib_module("matplotlib.figure").Figure


def save(fig, path: Path) -> Path:
    matplotlib = matplotlib_module()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Date": None} if path.suffix == ".svg" else {}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "clustersim"}):  # same input, same SVG bytes
            fig.savefig(path, dpi=120, bbox_inches="tight", metadata=meta)
    except (
        OSError
    ) as exc:  # a write that fails (a full disk) names no file: this one, for the message
        exc.filename = exc.filename or str(path)
        raise
    return path
