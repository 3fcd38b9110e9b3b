"""Figures from sweep CSVs and traces: each is produced, non-empty and a real PNG/SVG."""

from __future__ import annotations

import csv
import json
import re
import sys

import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.execution.schedule import STREAMS
from simulator.report import plots
from simulator.studies.simulate import simulate
from simulator.studies.sweep.results import OUTPUT_COLUMNS
from tests.helpers import make_scenario

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_BYTES = 10_000

# A sweep CSV as the sweep writes it: the point, the swept dotted paths, then its columns.
COLUMNS = ["point", "training.strategy", "cluster.num_hosts", *OUTPUT_COLUMNS]
GB = 10**9


def _row(point, strategy, hosts, params_gb, grads_gb, opt_gb, fits):
    """A 1B-parameter model, round numbers: 1 s compute, comm shrinking with sharding."""
    n = 8 * hosts
    comps = [params_gb, grads_gb, opt_gb, 20, 1, 4]
    exposed = 0.05 * hosts
    step = 1.0 + exposed
    tokens = n * 8 * 2048 / step
    return {
        "point": point,
        "training.strategy": strategy,
        "cluster.num_hosts": hosts,
        "status": "ok",
        "message": "",
        "name": "t",
        "model": "mpt-1b",
        "params": 1e9,
        "strategy": strategy,
        "gpu": "a100-80gb",
        "num_gpus": n,
        "fits": fits,
        "mem_total_bytes": sum(comps) * GB,
        **{f"mem_{k}_bytes": v * GB for k, v in zip(plots.MEMORY_COMPONENTS, comps)},
        "capacity_bytes": 80 * GB,
        "step_time_s": step,
        "step_time_lo_s": 0.9 * step,  # an 80% interval of -10% .. +20%
        "step_time_hi_s": 1.2 * step,
        "compute_s": 1.0,
        "comm_s": 0.2,
        "exposed_comm_s": exposed,
        "mfu": 0.5 / step,
        "tokens_per_s": tokens,
        "tokens_per_s_per_gpu": tokens / n,
        "days": 1.0,
        "gpu_hours": 24.0 * n,
        "cost_usd": "",
    }


@pytest.fixture
def results_csv(tmp_path):
    rows = []
    for hosts in (1, 2, 4):
        rows.append(_row(len(rows), "ddp", hosts, 2, 2, 12, True))
        rows.append(
            _row(
                len(rows), "zero3", hosts, 2 / (8 * hosts), 2 / (8 * hosts), 12 / (8 * hosts), True
            )
        )
        rows.append(_row(len(rows), "ddp-big", hosts, 20, 20, 120, False))  # an OOM series
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
        w.writerow(
            {
                "point": len(rows),
                "training.strategy": "zero9",
                "status": "invalid",
                "message": "unknown strategy",
            }
        )
    return path


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == PNG_SIGNATURE and len(data) > MIN_BYTES


def test_plot_results_writes_three_pngs(results_csv, tmp_path):
    paths = plots.plot_results(results_csv, tmp_path / "out")
    assert [p.name for p in paths] == ["step_time.png", "memory.png", "mfu.png"]
    for p in paths:
        assert p.exists() and _is_png(p), p


def test_plot_results_svg(results_csv, tmp_path):
    for p in plots.plot_results(results_csv, tmp_path / "svg", fmt="svg"):
        text = p.read_text()
        assert p.suffix == ".svg" and "<svg" in text and len(text) > MIN_BYTES


def test_panels_group_by_what_varies(results_csv):
    rows, swept = plots.read_results(results_csv)
    assert len(rows) == 9  # the invalid row is skipped
    groups = plots.panels(rows, swept)
    # Only the strategy and the host count vary: one panel, a series per strategy over GPUs.
    assert list(groups) == ["all points"]
    assert sorted(groups["all points"]) == ["ddp", "ddp-big", "zero3"]
    assert [r["num_gpus"] for r in groups["all points"]["zero3"]] == [8, 16, 32]


def test_memory_timeline_from_a_trace(tmp_path):
    trace = tmp_path / "trace.json"
    simulate(make_scenario({"preset": "gpt3-125m"}, {"strategy": "zero3"}), trace_path=str(trace))
    path = plots.plot_trace(trace, tmp_path / "out")
    assert path.name == "memory_timeline.png" and _is_png(path)


def test_plot_cli(results_csv, tmp_path, capsys):
    trace = tmp_path / "trace.json"
    simulate(make_scenario({"preset": "gpt3-125m"}), trace_path=str(trace))
    out = tmp_path / "cli"
    assert main(["plot", str(results_csv), "--trace", str(trace), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "memory.png",
        "memory_timeline.png",
        "mfu.png",
        "step_time.png",
    ]
    assert main(["plot"]) == 2
    assert "nothing to plot" in capsys.readouterr().err


def test_bad_inputs_are_user_errors(tmp_path, monkeypatch):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="missing columns"):
        plots.plot_results(bad, tmp_path)
    with pytest.raises(UserError, match="traceEvents"):
        plots.plot_trace(bad, tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(UserError, match="matplotlib is not installed"):
        plots.figure_class()


def test_one_panel_per_model_when_the_model_varies():
    rows = [
        {**_row(i, s, h, 2, 2, 12, True), "model": m, "model.preset": m}
        for i, (m, s, h) in enumerate(
            (m, s, h) for m in ("mpt-1b", "mpt-3b") for s in ("ddp", "zero3") for h in (1, 2)
        )
    ]
    groups = plots.panels(rows, ["model.preset", "training.strategy", "cluster.num_hosts"])
    assert sorted(groups) == ["mpt-1b", "mpt-3b"]
    assert all(sorted(by) == ["ddp", "zero3"] for by in groups.values())


@pytest.fixture(scope="module")
def straggler_trace(tmp_path_factory):
    """Two rank classes (rank 1 20% slower, the other 7) whose memory peaks nearly coincide;
    the optimizer on the CPU, so the pcie and cpu streams are busy too."""
    trace = tmp_path_factory.mktemp("trace") / "trace.json"
    cluster = {"topology": "dgx-a100", "stragglers": [{"rank": 1, "slowdown": 1.2}]}
    training = {"strategy": "zero2", "offload": {"optimizer": "cpu"}}
    simulate(make_scenario({"preset": "gpt3-125m"}, training, cluster), trace_path=str(trace))
    return trace


def test_peak_labels_of_two_rank_classes_do_not_overlap(straggler_trace):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    fig = plots.trace_figure(straggler_trace)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the text out: extents are known only after a draw
    renderer = canvas.get_renderer()
    labels = [t for t in fig.findobj(Text) if re.search(r"peak \d", t.get_text())]
    assert len(labels) == 2  # one per rank class
    first, second = (t.get_window_extent(renderer) for t in labels)
    assert not first.overlaps(second)
    # Each label states its class's highest memory counter sample, read from the trace itself.
    events = json.loads(straggler_trace.read_text())["traceEvents"]
    for pid, label in enumerate(labels):
        peak = max(e["args"]["GB"] for e in events if e["ph"] == "C" and e["pid"] == pid)
        assert f"peak {peak:.2f} GB" in label.get_text()


def test_lane_colours_are_the_stream_mapping(straggler_trace):
    from matplotlib.colors import to_rgba

    assert list(plots.STREAM_COLORS) == list(STREAMS)  # one colour per stream, nothing else
    lanes = plots.trace_figure(straggler_trace).axes[1].collections
    assert sorted(c.get_label() for c in lanes) == ["comm", "compute", "cpu", "pcie"]
    for lane in lanes:
        assert tuple(lane.get_facecolor()[0]) == to_rgba(plots.STREAM_COLORS[lane.get_label()])


def test_step_time_exposed_communication_has_the_comm_stream_colour(results_csv):
    from matplotlib.colors import to_rgb

    fig = plots.step_time_figure(plots.panels(*plots.read_results(results_csv)))
    colors = {to_rgb(p.get_facecolor()) for p in fig.axes[0].patches}
    assert to_rgb(plots.STREAM_COLORS["comm"]) in colors


def test_step_time_whiskers_span_the_80_percent_interval(results_csv):
    fig = plots.step_time_figure(plots.panels(*plots.read_results(results_csv)))
    ax = fig.axes[0]
    # One whisker per bar (3 strategies x 3 scales), from 0.9 to 1.2 x its step time.
    segments = [seg for c in ax.collections for seg in c.get_segments()]
    assert len(segments) == 9
    for (x0, y0), (x1, y1) in segments:
        assert x0 == x1 and y1 / y0 == pytest.approx(1.2 / 0.9)
    assert ax.get_ylim()[1] >= max(y1 for (_, _), (_, y1) in segments)


def test_rows_without_an_interval_draw_no_whisker(results_csv, tmp_path):
    text = results_csv.read_text().splitlines()
    header = text[0].split(",")
    drop = [header.index("step_time_lo_s"), header.index("step_time_hi_s")]
    rows = [",".join(v for i, v in enumerate(line.split(",")) if i not in drop) for line in text]
    older = tmp_path / "older.csv"
    older.write_text("\n".join(rows) + "\n")
    fig = plots.step_time_figure(plots.panels(*plots.read_results(older)))
    assert not [seg for c in fig.axes[0].collections for seg in c.get_segments()]


def test_memory_bars_over_the_clip_show_their_true_total(results_csv):
    fig = plots.memory_figure(plots.panels(*plots.read_results(results_csv)))
    ax = fig.axes[0]
    # The axes stop at 1.6 x the 80 GB capacity = 128 GB. ddp-big needs 20 + 20 + 120 + 20 + 1 + 4
    # = 185 GB at every scale: cut there, its total written above; ddp (41 GB) and zero3 fit below.
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["185 GB"] * 3
    assert max(p.get_y() + p.get_height() for p in ax.patches) == pytest.approx(128)
    assert ax.get_ylim()[1] > 128  # room above the cut for the totals


def _equal_mfu_rows():
    """zero1 and zero2 with identical numbers at 8 and 16 GPUs."""
    return [
        _row(i, s, h, 2, 2, 12, True)
        for i, (s, h) in enumerate((s, h) for s in ("zero1", "zero2") for h in (1, 2))
    ]


def test_series_with_equal_mfu_stay_distinguishable():
    groups = plots.panels(_equal_mfu_rows(), ["training.strategy", "cluster.num_hosts"])
    lines = {line.get_label(): line for line in plots.mfu_figure(groups).axes[0].get_lines()}
    zero1, zero2 = lines["zero1"], lines["zero2"]
    assert list(zero1.get_ydata()) == list(zero2.get_ydata())  # drawn on top of each other
    assert zero1.get_marker() != zero2.get_marker()
    assert zero1.get_linestyle() != zero2.get_linestyle()
    assert zero1.get_color() != zero2.get_color()
    # Hollow markers: the one drawn first shows through the other.
    assert zero1.get_markerfacecolor() == zero2.get_markerfacecolor() == "none"


def test_a_strategy_has_one_colour_in_every_figure(results_csv):
    from matplotlib.colors import to_rgb

    groups = plots.panels(*plots.read_results(results_csv))
    styles = plots.strategy_styles({"ddp", "ddp-big", "zero3"})
    # The registry's strategies keep their colour whatever else is in the data.
    assert styles["zero3"] == plots.strategy_styles({"zero3"})["zero3"]
    assert styles["ddp"] == plots.strategy_styles({"ddp", "zero1"})["ddp"]
    for line in plots.mfu_figure(groups).axes[0].get_lines():
        if line.get_label() in styles:
            assert line.get_color() == styles[line.get_label()].color
    for tick in plots.memory_figure(groups).axes[0].get_xticklabels():  # "zero3 8", ...
        assert tick.get_color() == styles[tick.get_text().split()[0]].color
    step_colors = {
        to_rgb(p.get_facecolor()) for p in plots.step_time_figure(groups).axes[0].patches
    }
    assert {to_rgb(st.color) for st in styles.values()} <= step_colors
