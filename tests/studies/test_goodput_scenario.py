"""Goodput from scenario files: the reliability section's defaults (Llama 3 Table 5) and its
validation errors at field paths, the Llama 3 405B check against the paper, the report, the CLI
and a sweep over a reliability field."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.scenario.load import load_scenario, scenario_from_dict
from simulator.spec.reliability import LLAMA3_TABLE5, ReliabilitySpec
from simulator.studies.goodput import simulate_goodput
from simulator.studies.sweep.runner import run_sweep
from simulator.studies.sweep.spec import sweep_from_dict

DAY = 86400.0
LLAMA3 = "llama3-405b-zero3-16k-h100"
# Llama 3 paper (Dubey et al. 2024), Table 5, printed counts grouped by class, and Sec 3.3.4's
# 47 planned interruptions, over the 54-day snapshot on 16,384 GPUs.
PAPER_COUNTS = {
    "gpu": 148 + 72 + 19 + 17 + 6 + 6,
    "host": 32 + 3 + 3 + 2 + 2 + 2 + 2,
    "nic": 7,
    "switch": 35,
    "software": 54 + 2 + 7,
    "maintenance": 47,
}
# The step clustersim simulates for this scenario today (ZeRO-3, seq 4096); over a fixed window
# it only sets the checkpoint interval's rounding to whole steps.
LLAMA3_STEP_S = 27.8
TINY = {
    "name": "tiny",
    "model": {"preset": "gpt3-125m"},
    "training": {"micro_batch_size": 1, "seq_len": 512, "global_batch_size": 16},
    "cluster": {"topology": "dgx-a100"},
}


def problems(data: dict) -> dict[str, str]:
    with pytest.raises(UserError) as exc:
        scenario_from_dict(data)
    return {p.path: p.message for p in exc.value.problems}


def with_reliability(**section) -> dict:
    return {**TINY, "reliability": section}


# ---------------------------------------------------------------------------------- defaults


def test_default_rates_reproduce_table5_over_54_days():
    spec = scenario_from_dict(TINY).reliability
    units = {"gpu": 16_384, "host": 2_048}
    counts = {f.name: f.rate_per_unit_s * 54 * DAY * units[f.unit] for f in spec.failures}
    assert counts == pytest.approx(PAPER_COUNTS)
    assert sum(v for k, v in counts.items() if k != "maintenance") == pytest.approx(419)
    assert sum(n for rows in LLAMA3_TABLE5.values() for _, n in rows) == 419
    # 419 / (54 days x 2,048 nodes) = 3.79 per 1,000 node-days (Kokolis et al.'s r_f unit).
    per_node = sum(counts[k] for k in PAPER_COUNTS if k != "maintenance") / (54 * 2048) * 1000
    assert per_node == pytest.approx(3.789, abs=1e-3)


def test_defaults_equal_an_empty_section():
    assert scenario_from_dict(TINY).reliability == ReliabilitySpec()


def test_given_fields_replace_the_defaults_of_one_class():
    s = scenario_from_dict(
        with_reliability(
            failures={
                "gpu": {"mtbf": "50000 h", "weibull_shape": 0.8},
                "cosmic": {"unit": "job", "failures_per_1000_unit_days": 2},
            },
            checkpoint={"interval": "30 min", "mode": "async"},
        )
    )
    by = {f.name: f for f in s.reliability.failures}
    assert by["gpu"].rate_per_unit_s == pytest.approx(1 / (50000 * 3600))
    assert (
        by["gpu"].weibull_shape == 0.8
        and by["gpu"].takes_host
        and "scenario file" in by["gpu"].source
    )
    assert by["cosmic"].rate_per_unit_s == pytest.approx(2 / 1000 / DAY)
    assert (
        s.reliability.checkpoint.interval_s == 1800.0 and s.reliability.checkpoint.mode == "async"
    )


def test_mistakes_are_reported_at_their_field_paths():
    found = problems(
        with_reliability(
            failures={
                "gpu": {"mtbf": 5000},
                "host": {"mtbf": "1 h", "failures_per_1000_unit_days": 2},
            },
            checkpoint={"interval": 0, "write_bandwidth": "fast"},
            runs=0,
            restart={"hot_spares": -1},
        )
    )
    assert set(found) >= {
        "reliability.failures.gpu.mtbf",
        "reliability.failures.host",
        "reliability.checkpoint.interval",
        "reliability.checkpoint.write_bandwidth",
        "reliability.runs",
        "reliability.restart.hot_spares",
    }
    assert "give a unit" in found["reliability.failures.gpu.mtbf"]
    found = problems(
        with_reliability(
            failures={"cosmic": {"mtbf": "1 h"}, "straggler": {"unit": "job"}},
            checkpoint={"pause": "1 s"},
            restart={"hot_spares": 2},
        )
    )
    assert "needs unit" in found["reliability.failures.cosmic"]
    assert set(found) == {
        "reliability.failures.cosmic",
        "reliability.failures.straggler",
        "reliability.checkpoint.pause",
        "reliability.restart.repair_time",
    }
    assert "reliability.stragglers" in problems(
        with_reliability(stragglers={"slowdown": 2, "detection": "1 h"})
    )
    assert "reliability.chekpoint" in problems(with_reliability(chekpoint={}))


def test_disabled_reliability_leaves_no_goodput():
    s = scenario_from_dict(with_reliability(enabled=False))
    assert simulate_goodput(s, 1.0, DAY) is None


# ---------------------------------------------------------------------------------- Llama 3


@pytest.fixture(scope="module")
def llama3():
    scenario = load_scenario(LLAMA3)
    return simulate_goodput(scenario, LLAMA3_STEP_S, math.inf, runs=100, seed=0)


def test_llama3_window_unexpected_interruptions_are_419_within_poisson_spread(llama3):
    assert llama3.model.window_s == 54 * DAY
    assert llama3.expected_unplanned == pytest.approx(419)
    unplanned = np.array(
        [
            sum(n for k, n in r.interruptions.items() if k not in ("maintenance", "straggler"))
            for r in llama3.runs
        ]
    )
    assert abs(unplanned.mean() - 419) < 3 * math.sqrt(419 / len(unplanned))
    assert 0.6 < unplanned.var(ddof=1) / unplanned.mean() < 1.4  # Poisson: variance = mean
    assert np.mean(np.abs(unplanned - 419) <= 2 * math.sqrt(419)) >= 0.9  # ~95% within 2 sigma
    for cause, count in PAPER_COUNTS.items():
        assert abs(llama3.interruptions[cause] - count) < 4 * math.sqrt(count / len(unplanned)), (
            cause
        )


def test_llama3_effective_training_time_above_90_percent(llama3):
    m = llama3.model
    # 405e9-class model x 14 bytes = 5.7 TB, 2.8 s at 2 TB/s; 346 MB per GPU (paper: 1 MB to 4 GB).
    assert m.checkpoint_bytes / m.num_gpus < 4e9
    assert m.save_s == pytest.approx(m.checkpoint_bytes / 2e12)
    assert m.restart_s == pytest.approx(600 + m.load_s)
    assert llama3.ettr.mean() > 0.90
    # The first-order closed form (unplanned failures only) within a point of the simulation.
    assert 1 - llama3.ettr.mean() == pytest.approx(llama3.first_order_waste, abs=0.01)


def test_llama3_above_90_percent_hinges_on_the_restart_assumption():
    data = load_scenario(LLAMA3).data()
    data["reliability"]["restart"] = {"initialization": "20 min"}  # Kokolis et al.'s upper end
    g = simulate_goodput(scenario_from_dict(data), LLAMA3_STEP_S, math.inf, runs=20, seed=0)
    assert g.ettr.mean() < 0.90


# ---------------------------------------------------------------------------------- report, CLI, sweep


def test_run_reports_goodput_in_json_and_text(capsys):
    assert main(["run", "llama2-7b-zero3-8xa100", "--runs", "5", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    g = report["training"]["goodput"]
    assert (g["runs"], g["seed"], len(g["wall_days_runs"])) == (5, 3, 5)
    assert g["wall_days"]["p50"] >= report["training"]["days"]
    json.dumps(report, allow_nan=False)  # no NaN or infinity in the contract
    assert main(["run", "llama2-7b-zero3-8xa100", "--runs", "5"]) == 0
    text = capsys.readouterr().out
    assert "Goodput over the run (5 Monte Carlo runs" in text and "effective training time" in text
    assert main(["run", "llama2-7b-zero3-8xa100", "--runs", "0"]) == 2
    assert main(["run", "llama2-7b-zero3-8xa100", "--no-goodput", "--json"]) == 0
    skipped = json.loads(capsys.readouterr().out)
    assert "goodput" not in skipped["training"]
    assert skipped["training"]["days"] == report["training"]["days"]
    assert main(["run", "llama2-7b-zero3-8xa100", "--no-goodput", "--runs", "5"]) == 2
    assert "--no-goodput" in capsys.readouterr().err


def test_plan_train_reports_wall_clock_days(capsys):
    assert main(["plan", "train", "llama2-7b-zero3-8xa100", "--tokens", "2e12", "--runs", "5"]) == 0
    out = capsys.readouterr().out
    assert "wall p50" in out and "ETTR" in out


def test_goodput_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    report = tmp_path / "report.json"
    assert main(["run", "llama2-7b-zero3-8xa100", "--runs", "5", "--json-out", str(report)]) == 0
    assert main(["plot", "--goodput", str(report), "--out", str(tmp_path / "plots")]) == 0
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "completion_time.png",
        "time_lost.png",
    }
    assert main(["plot", "--goodput", str(tmp_path / "missing.json")]) == 2


def test_sweep_over_a_reliability_field(tmp_path):
    base = {**TINY, "reliability": {"failure_rate_scale": 2000, "runs": 5}}
    sweep = sweep_from_dict({"base": base, "axes": {"reliability.checkpoint.interval": [10, 1000]}})
    out = tmp_path / "r.jsonl"
    run_sweep(sweep, out, jobs=1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row, steps in zip(rows, (10, 1000)):
        assert row["checkpoint_interval_s"] == pytest.approx(steps * row["step_time_s"])
        assert row["wall_days_p50"] > row["days"]
    assert rows[0]["effective_training_time_ratio"] != rows[1]["effective_training_time_ratio"]
    with pytest.raises(UserError) as exc:
        sweep_from_dict({"base": base, "axes": {"reliability.checkpoint.intervl": [10]}})
    assert exc.value.problems[0].path == "axes.reliability.checkpoint.intervl"
