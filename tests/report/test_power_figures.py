"""The power figures (`clustersim plot --power`) and the series they draw: the report's
energy.timeline against hand-worked numbers and against the report's own step energy, average,
peak and lowest instant; the run's phases against the goodput run; the power-cap sweep's lines
against its CSV; the files the CLI writes; and bad inputs as exit 2 with the file named."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.execution.energy import Level, cluster_energy, power_timeline
from simulator.report import plots
from simulator.report.energy import timeline_section
from simulator.report.figures import power as fig_power
from simulator.report.figures import power_cap as fig_cap
from simulator.report.figures import power_run as fig_run
from simulator.spec.specs import PowerSpec
from simulator.studies.simulate import simulate
from tests.helpers import make_scenario, power_cluster

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _integral(t_s, watts) -> float:
    return float(np.dot(np.diff(np.asarray(t_s)), np.asarray(watts)))


# ------------------------------------------------------------------ the timeline's numbers


def test_timeline_by_activity_hand_worked():
    # 8 GPUs on one host drawing 1,000 W besides them, PUE 1.5.
    # Class A, 3 GPUs: kernels 0-1 s, a 75/25 blend of 600 W compute-bound and 200 W
    #   memory-bound (450 + 50 = 500 W), then waiting at 100 W to 2 s.
    # Class B, 5 GPUs: a collective 0-2 s at 200 W.
    # 0-1 s: compute 3 x 450 = 1,350, memory 3 x 50 = 150, comm 5 x 200 = 1,000 W; GPUs 2,500 W
    #        cluster 1.5 x (2,500 + 1,000) = 5,250 W
    # 1-2 s: idle 3 x 100 = 300, comm 1,000 W; GPUs 1,300 W; cluster 1.5 x 2,300 = 3,450 W
    # Step: 5,250 + 3,450 = 8,700 J.
    blend = Level(
        watts=500.0, shares=(0.75, 0.25, 0, 0), spans=((0.0, 1.0),), draws=(450, 50, 0, 0)
    )
    a = power_timeline([blend], 100.0, 2.0)
    b = power_timeline([Level(watts=200.0, shares=(0, 0, 1, 0), spans=((0.0, 2.0),))], 100.0, 2.0)
    e = cluster_energy(
        power_cluster(8, 8, PowerSpec(host_w=1000.0, pue=1.5)), [("a", 3, a), ("b", 5, b)], 2.0
    )
    t = timeline_section(e.series)
    assert t["t_s"] == [0.0, 1.0, 2.0]
    assert t["cluster_w"] == [5250.0, 3450.0]
    assert t["cluster_min_w"] == t["cluster_max_w"] == t["cluster_w"]  # change points: exact
    assert t["gpu_w"] == {
        "compute": [1350.0, 0.0],
        "memory": [150.0, 0.0],
        "comm": [1000.0, 1000.0],
        "idle": [0.0, 300.0],
    }
    assert t["hosts_w"] == 1000.0 and t["resolution"] == "change points"
    assert _integral(t["t_s"], t["cluster_w"]) == pytest.approx(e.step_j) == pytest.approx(8700.0)


def test_binned_timeline_keeps_the_energy_and_the_extremes():
    # One class of 1 GPU, no hosts (host draw 0), PUE 1: 600 W for 0-0.5 s, 100 W idle for
    # 0.5-1 s, 300 W (comm) for 1-1.25 s, 100 W for 1.25-2 s, 600 W for 2-3 s: 5 intervals.
    # In 2 bins of 1.5 s: [0, 1.5] = (0.5 x 600 + 0.5 x 100 + 0.25 x 300 + 0.25 x 100) / 1.5
    # = (300 + 50 + 75 + 25) / 1.5 = 300 W, lowest 100, highest 600;
    # [1.5, 3] = (0.5 x 100 + 1 x 600) / 1.5 = 433.33 W, lowest 100, highest 600.
    compute = Level(watts=600.0, shares=(1, 0, 0, 0), spans=((0.0, 0.5), (2.0, 3.0)))
    comm = Level(watts=300.0, shares=(0, 0, 1, 0), spans=((1.0, 1.25),))
    p = power_timeline([compute, comm], 100.0, 3.0)
    e = cluster_energy(power_cluster(1, 1, PowerSpec(host_w=0.0, pue=1.0)), [("all", 1, p)], 3.0)
    t = timeline_section(e.series, points=2)
    assert t["t_s"] == [0.0, 1.5, 3.0]
    assert t["cluster_w"] == pytest.approx([300.0, 433.3], abs=0.05)
    assert t["cluster_min_w"] == [100.0, 100.0] and t["cluster_max_w"] == [600.0, 600.0]
    assert t["gpu_w"]["comm"] == pytest.approx([50.0, 0.0])  # 0.25 x 300 / 1.5
    # the step: 300 + 50 + 75 + 75 + 600 = 1,100 J, in the bins as in the intervals
    assert e.step_j == pytest.approx(1100.0)
    assert _integral(t["t_s"], t["cluster_w"]) == pytest.approx(1100.0, abs=0.1)
    assert t["resolution"].startswith("2 bins of 1.5 s")


@pytest.fixture(scope="module")
def report():
    # A step of many intervals (pipeline stages): binned at 200 points.
    s = make_scenario(
        {"preset": "gpt3-125m"},
        {
            "strategy": "ddp",
            "parallelism": {"pp": 2},
            "micro_batch_size": 1,
            "global_batch_size": 1024,  # 128 micro-batches per pipeline: over 200 intervals
            "seq_len": 1024,
            "tokens": 1e9,
        },
    )
    return simulate(s, goodput=False, interval=False)


def test_report_timeline_integrates_to_the_step_and_peaks_at_the_peak(report):
    e = report["energy"]
    t = e["timeline"]
    assert len(t["t_s"]) == len(t["cluster_w"]) + 1 == 201
    assert t["resolution"].startswith("200 bins")
    assert t["t_s"][0] == 0.0 and t["t_s"][-1] == pytest.approx(report["step"]["time_s"])
    # energy = the integral of the series = step_j (the classes' energies, summed apart); to
    # the JSON's rounding (0.1 W, 1 ns)
    assert _integral(t["t_s"], t["cluster_w"]) == pytest.approx(e["step_j"], rel=1e-5)
    assert _integral(t["t_s"], t["cluster_w"]) / t["t_s"][-1] == pytest.approx(
        e["cluster_power_w"]["avg"], rel=1e-5
    )
    assert max(t["cluster_max_w"]) == pytest.approx(e["cluster_power_w"]["peak"], abs=0.1)
    assert min(t["cluster_min_w"]) == pytest.approx(e["cluster_power_w"]["min"], abs=0.1)
    # the activities, hosts and PUE add up to the cluster; the GPUs' part to their energy
    gpu = sum(np.array(v) for v in t["gpu_w"].values())
    assert e["pue"] * (gpu + t["hosts_w"]) == pytest.approx(np.array(t["cluster_w"]), abs=0.5)
    # each activity's series is rounded to 0.1 W: their sum's integral is off by at most
    # 0.05 W per series over the step
    rounding_j = 0.05 * len(t["gpu_w"]) * t["t_s"][-1]
    assert _integral(t["t_s"], gpu) == pytest.approx(e["gpu_energy_j"], abs=rounding_j)
    assert t["hosts_w"] == e["hosts"] * e["host_power_w"]


def test_step_figure_draws_the_report_series(report):
    p = fig_power.step_power(report)
    e = report["energy"]
    assert p.energy_j() == pytest.approx(e["step_j"], rel=1e-5)
    stacked = sum(p.bands.values())
    assert stacked == pytest.approx(p.cluster_w, abs=0.5)
    assert list(p.bands) == list(fig_power.BANDS)
    assert (p.avg_w, p.peak_w, p.min_w) == (
        e["cluster_power_w"]["avg"],
        e["cluster_power_w"]["peak"],
        e["cluster_power_w"]["min"],
    )
    fig = fig_power.step_figure(p)
    ax = fig.axes[0]
    size = 1e3 if p.peak_w >= 1e3 else 1.0  # kW for this cluster
    assert p.peak_w < 1e6
    lines = {line.get_label(): line for line in ax.get_lines()}
    avg = next(v for k, v in lines.items() if k.startswith("average"))
    assert avg.get_ydata()[0] == pytest.approx(p.avg_w / size)
    peak = next(v for k, v in lines.items() if k.startswith("peak"))
    assert peak.get_ydata()[0] == pytest.approx(p.peak_w / size)
    assert peak.get_xdata()[0] == pytest.approx(p.peak_time_s * (1e3 if p.edges[-1] < 2 else 1))
    # one filled band per activity, hosts and facility
    assert len(ax.collections) == len(fig_power.BANDS)


# ------------------------------------------------------------------------------ the run


def test_run_power_and_cli_files(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["run", "llama2-7b-zero3-8xa100", "--runs", "5", "--json-out", str(path)]) == 0
    report = json.loads(path.read_text())
    g, e = report["training"]["goodput"], report["energy"]
    r = fig_run.run_power(report)
    assert r is not None
    # the phases tile the mean run's wall clock
    assert sum(r.days.values()) == pytest.approx(g["wall_days"]["mean"], rel=1e-6)
    assert r.days["training"] == g["useful_days"]
    # every phase at the step's average facility power (what run_energy charges): the mean run's
    # energy is that power over its wall clock, and the report's run_mwh over the p50's
    avg = e["cluster_power_w"]["avg"]
    assert set(r.power_w.values()) == {avg}
    assert sum(r.mwh().values()) == pytest.approx(avg * g["wall_days"]["mean"] * 86400 / 3.6e9)
    assert r.run_mwh == pytest.approx(avg * g["wall_days"]["p50"] * 86400 / 3.6e9)

    out = tmp_path / "plots"
    capsys.readouterr()
    assert main(["plot", "--power", str(path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["power_run.png", "power_step.png"]
    assert all(
        (out / n).read_bytes()[:8] == PNG_SIGNATURE for n in ("power_run.png", "power_step.png")
    )
    assert "wrote" in capsys.readouterr().out
    assert (
        main(["plot", "--power", str(path), "--out", str(tmp_path / "svg"), "--format", "svg"]) == 0
    )
    assert (tmp_path / "svg" / "power_step.svg").read_text().startswith("<?xml")


def test_no_goodput_run_draws_the_step_only(report, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    assert fig_run.run_power(report) is None
    written = plots.plot_power(path, tmp_path / "out")
    assert [p.name for p in written] == ["power_step.png"]


# ---------------------------------------------------------------------- power-cap sweeps


def _cap_csv(path, caps, others=None):
    cols = ["point", "cluster.power_cap", "status", "message", "model", "gpu", "num_gpus"]
    cols += ["step_time_s", "energy_per_token_j", "cluster_power_avg_w"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for i, cap in enumerate(caps):
            # 700 W: 10 s, 5 J/token, 10 MW; each 100 W less: +10% time, -5% J, -1 MW
            k = (700 - cap) / 100
            w.writerow(
                {
                    "point": i,
                    "cluster.power_cap": f"{cap} W",
                    "status": "ok",
                    "model": "m",
                    "gpu": "h100",
                    "num_gpus": 16,
                    "step_time_s": 10 * (1 + 0.1 * k),
                    "energy_per_token_j": 5 * (1 - 0.05 * k),
                    "cluster_power_avg_w": 1e7 - 1e6 * k,
                }
            )
        w.writerow({"point": len(caps), "cluster.power_cap": "50 W", "status": "invalid"})
    return path


def test_power_cap_figure_draws_the_csv(tmp_path):
    path = _cap_csv(tmp_path / "caps.csv", [700, 500, 600])
    rows, others = fig_cap.power_cap_rows(path)
    assert others == [] and sorted(r["cap_w"] for r in rows) == [500.0, 600.0, 700.0]
    fig = fig_cap.power_cap_figure(rows, others)
    step, joules, mw = (ax.get_lines()[0] for ax in fig.axes[:3])
    assert list(step.get_xdata()) == [500.0, 600.0, 700.0]
    assert list(step.get_ydata()) == pytest.approx([12.0, 11.0, 10.0])
    assert list(joules.get_ydata()) == pytest.approx([4.5, 4.75, 5.0])
    assert list(mw.get_ydata()) == pytest.approx([8.0, 9.0, 10.0])  # MW
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["+20.0%", "+10.0%"]  # change from the highest cap
    written = plots.plot_power(path, tmp_path / "out")
    assert [p.name for p in written] == ["power_cap.png"]


def test_cap_values():
    assert fig_cap.cap_watts("500 W") == 500.0
    assert fig_cap.cap_watts("0.5 kW") == 500.0
    assert fig_cap.cap_watts("450") == 450.0
    assert fig_cap.cap_watts("") is None and fig_cap.cap_watts("none") is None


def test_results_csv_over_the_cap_gets_the_power_cap_figure(tmp_path):
    from simulator.studies.sweep.results import OUTPUT_COLUMNS

    cols = ["point", "cluster.power_cap", *OUTPUT_COLUMNS]
    base = {c: 1 for c in OUTPUT_COLUMNS} | {
        "status": "ok",
        "message": "",
        "strategy": "ddp",
        "model": "m",
        "gpu": "h100",
        "fits": "true",
        "num_gpus": 8,
        "capacity_bytes": 8e10,
        "cost_usd": "",
    }
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for i, cap in enumerate((400, 700)):
            w.writerow(base | {"point": i, "cluster.power_cap": f"{cap} W", "step_time_s": 1 + i})
    names = [p.name for p in plots.plot_results(path, tmp_path / "out")]
    assert names == ["step_time.png", "memory.png", "mfu.png", "power_cap.png"]


# ------------------------------------------------------------------------- bad inputs


def test_bad_inputs_exit_2_naming_the_file(tmp_path, capsys, report):
    missing = tmp_path / "missing.json"
    assert main(["plot", "--power", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "cannot read a JSON report" in err

    no_energy = tmp_path / "no_energy.json"
    no_energy.write_text(json.dumps({"name": "x", "step": {}}))
    assert main(["plot", "--power", str(no_energy), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(no_energy) in err and "energy section" in err

    old = tmp_path / "old.json"
    old.write_text(json.dumps({**report, "energy": {**report["energy"], "timeline": None}}))
    assert main(["plot", "--power", str(old), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(old) in err and "no timeline" in err

    broken = tmp_path / "broken.json"
    t = {**report["energy"]["timeline"], "cluster_w": [1.0]}
    broken.write_text(json.dumps({**report, "energy": {**report["energy"], "timeline": t}}))
    with pytest.raises(UserError, match="malformed"):
        plots.plot_power(broken, tmp_path / "o")

    not_caps = tmp_path / "other.csv"
    not_caps.write_text("point,training.strategy,status\n0,ddp,ok\n")
    assert main(["plot", "--power", str(not_caps), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(not_caps) in err and "cluster.power_cap" in err

    one_cap = _cap_csv(tmp_path / "one.csv", [500])
    with pytest.raises(UserError, match="fewer than two power caps"):
        plots.plot_power(one_cap, tmp_path / "o")
