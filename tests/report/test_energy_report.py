"""The report's energy section: fixed JSON names, text lines and sweep columns."""

from __future__ import annotations

import pytest

from simulator.report.energy import energy_columns, energy_lines
from simulator.report.text import render_text
from simulator.studies.simulate import simulate
from tests.helpers import cluster_of, make_scenario

KEYS = {
    "step_j",
    "per_token_j",
    "run_mwh",
    "gpu_power_w",
    "cluster_power_w",
    "swing_w",
    "cost_usd",
    "co2_t",
}


@pytest.fixture(scope="module")
def report():
    s = make_scenario(
        training={"strategy": "ddp", "micro_batch_size": 1, "seq_len": 1024, "tokens": 1e9},
        cluster={**cluster_of(8), "power": {"grid_kg_co2_per_kwh": 0.5}},
    )
    return simulate(s, goodput=False, interval=False)


def test_json_names_and_consistency(report):
    e = report["energy"]
    assert KEYS <= set(e)
    assert set(e["gpu_power_w"]) >= {"avg", "peak"} and set(e["cluster_power_w"]) >= {"avg", "peak"}
    step = report["step"]
    assert e["per_token_j"] == pytest.approx(e["step_j"] / step["tokens_per_step"])
    assert e["cluster_power_w"]["avg"] == pytest.approx(e["step_j"] / step["time_s"])
    assert e["swing_w"] == pytest.approx(e["cluster_power_w"]["peak"] - e["cluster_power_w"]["min"])
    # the swing recurs a whole number of times per step
    phases = step["time_s"] / e["swing_period_s"]
    assert phases >= 1 and phases == pytest.approx(round(phases))
    # per host, at its power supplies: the cluster's draw without the PUE, over the hosts; a
    # host's average is its 8 GPUs' average draw and its own constant draw
    hosts, pue, node = e["hosts"], e["pue"], e["node_power_w"]
    assert node["avg"] * hosts * pue == pytest.approx(e["cluster_power_w"]["avg"])
    assert node["peak"] * hosts * pue == pytest.approx(e["cluster_power_w"]["peak"])
    assert node["avg"] == pytest.approx(8 * e["gpu_power_w"]["avg"] + e["host_power_w"])
    # no goodput run: the failure-free days at the step's average power
    assert e["run_days"] == pytest.approx(report["training"]["days"])
    assert e["run_mwh"] == pytest.approx(
        e["cluster_power_w"]["avg"] * e["run_days"] * 86400 / 3.6e9
    )
    assert e["co2_t"] == pytest.approx(e["run_mwh"] * 1e3 * 0.5 / 1e3)
    assert e["cost_usd"] is None  # no GPU-hour or electricity price
    assert sum(e["activity_s"].values()) == pytest.approx(step["time_s"])


def test_text_and_columns(report):
    text = render_text(report)
    assert "Energy (each GPU's draw by activity" in text
    assert energy_lines(report)[2].startswith("  per step")
    cols = energy_columns(report)
    assert cols == {
        "energy_per_token_j": report["energy"]["per_token_j"],
        "cluster_power_avg_w": report["energy"]["cluster_power_w"]["avg"],
        "run_mwh": report["energy"]["run_mwh"],
    }
    assert energy_columns({}) == dict.fromkeys(cols)
