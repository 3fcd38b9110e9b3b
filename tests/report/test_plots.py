"""Figures from sweep CSVs and traces: each is produced, non-empty and a real PNG/SVG."""

from __future__ import annotations

import csv
import sys

import pytest

from simulator.report import plots
from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.studies.simulate import simulate
from tests.helpers import make_scenario

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_BYTES = 10_000

# The sweep CSV columns (simulator/sweep.py): point, the swept dotted paths, then these.
COLUMNS = ["point", "training.strategy", "cluster.num_hosts", "status", "message", "name", "model", "params",
           "strategy", "gpu", "num_gpus", "fits", "mem_total_bytes", "mem_params_bytes", "mem_grads_bytes",
           "mem_optimizer_bytes", "mem_activations_bytes", "mem_buffers_bytes", "mem_overhead_bytes",
           "capacity_bytes", "step_time_s", "compute_s", "comm_s", "exposed_comm_s", "mfu", "tokens_per_s",
           "tokens_per_s_per_gpu", "days", "gpu_hours", "cost_usd"]
GB = 10**9


def _row(point, strategy, hosts, params_gb, grads_gb, opt_gb, fits):
    """A 1B-parameter model, round numbers: 1 s compute, comm shrinking with sharding."""
    n = 8 * hosts
    comps = [params_gb, grads_gb, opt_gb, 20, 1, 4]
    exposed = 0.05 * hosts
    step = 1.0 + exposed
    tokens = n * 8 * 2048 / step
    return {"point": point, "training.strategy": strategy, "cluster.num_hosts": hosts, "status": "ok",
            "message": "", "name": "t", "model": "mpt-1b", "params": 1e9, "strategy": strategy,
            "gpu": "a100-80gb", "num_gpus": n, "fits": fits, "mem_total_bytes": sum(comps) * GB,
            **{f"mem_{k}_bytes": v * GB for k, v in zip(plots.MEMORY_COMPONENTS, comps)},
            "capacity_bytes": 80 * GB, "step_time_s": step, "compute_s": 1.0, "comm_s": 0.2,
            "exposed_comm_s": exposed, "mfu": 0.5 / step, "tokens_per_s": tokens,
            "tokens_per_s_per_gpu": tokens / n, "days": 1.0, "gpu_hours": 24.0 * n, "cost_usd": ""}


@pytest.fixture
def results_csv(tmp_path):
    rows = []
    for hosts in (1, 2, 4):
        rows.append(_row(len(rows), "ddp", hosts, 2, 2, 12, True))
        rows.append(_row(len(rows), "zero3", hosts, 2 / (8 * hosts), 2 / (8 * hosts), 12 / (8 * hosts), True))
        rows.append(_row(len(rows), "ddp-big", hosts, 20, 20, 120, False))  # an OOM series
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
        w.writerow({"point": len(rows), "training.strategy": "zero9", "status": "invalid",
                    "message": "unknown strategy"})
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
    assert sorted(p.name for p in out.iterdir()) == ["memory.png", "memory_timeline.png", "mfu.png",
                                                      "step_time.png"]
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
        plots._figure_class()


def test_one_panel_per_model_when_the_model_varies():
    rows = [{**_row(i, s, h, 2, 2, 12, True), "model": m, "model.preset": m}
            for i, (m, s, h) in enumerate((m, s, h) for m in ("mpt-1b", "mpt-3b") for s in ("ddp", "zero3")
                                          for h in (1, 2))]
    groups = plots.panels(rows, ["model.preset", "training.strategy", "cluster.num_hosts"])
    assert sorted(groups) == ["mpt-1b", "mpt-3b"]
    assert all(sorted(by) == ["ddp", "zero3"] for by in groups.values())
