"""The energy category of `clustersim accuracy` (simulator/data/validation/energy.yaml): the
metrics read from the report's `energy` section, by hand, and the shipped cases predicted. A
case with a known deviation must miss its tolerance (strict), the others must hold it."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.studies.accuracy import Outcome, summary
from simulator.studies.cases import ENERGY_METRICS, METRICS, energy_metric, predict, shipped_cases
from tests.helpers import case_param

CASES = shipped_cases("energy")

# A hand-made energy section: 2 hosts, a 2 s step, PUE 1.5.
SECTION = {
    "step_j": 1.5 * (20_000.0 + 8_000.0),  # (GPU + host energy) x PUE
    "gpu_energy_j": 20_000.0,
    "host_energy_j": 8_000.0,
    "cluster_power_w": {"avg": 1.5 * 28_000.0 / 2, "peak": 30_000.0, "min": 9_000.0},
    "gpu_power_w": {"avg": 625.0, "peak": 700.0},
    # per host, the PUE taken out (report/energy.py): (20 kJ + 8 kJ) / 2 s / 2 hosts, and the
    # cluster's peak / 1.5 / 2
    "node_power_w": {"avg": 7_000.0, "peak": 10_000.0},
    "hosts": 2,
    "pue": 1.5,
    "run_mwh": 3.0,
    "run_days": 10.0,
}


def test_energy_metrics_by_hand():
    assert set(ENERGY_METRICS) <= set(METRICS)
    assert energy_metric("energy_per_step_j", SECTION) == 42_000.0
    assert energy_metric("gpu_power_avg_w", SECTION) == 625.0
    assert energy_metric("gpu_power_peak_w", SECTION) == 700.0
    assert energy_metric("node_power_avg_w", SECTION) == 7_000.0
    assert energy_metric("node_power_peak_w", SECTION) == 10_000.0
    assert energy_metric("energy_to_train_mwh", SECTION) == 3.0
    # boards alone: 20 kJ / 2 s = 10 kW over 10 days = 2.4 MWh
    assert energy_metric("gpu_energy_to_train_mwh", SECTION) == pytest.approx(2.4)


def test_no_energy_section_or_no_run_is_the_users_mistake():
    with pytest.raises(UserError, match="no energy section"):
        energy_metric("gpu_power_avg_w", None, "my-case")
    with pytest.raises(UserError, match="no run"):
        energy_metric("energy_to_train_mwh", {**SECTION, "run_mwh": None}, "my-case")


def test_the_energy_set_has_each_role_and_every_case_its_choices():
    assert {c.role for c in CASES} == {"calibration", "validation", "comparison"}
    assert all(c.category == "energy" and c.choices for c in CASES)
    # The host draw was derived from Latif et al.'s peak: that row may only be calibration.
    latif = [c for c in CASES if c.id.startswith("latif-")]
    assert [c.role for c in latif] == ["calibration"]


def test_comparisons_are_summarised_apart():
    outcomes = [Outcome(case=c, predicted=c.published * 1.1) for c in CASES]
    roles = [(r["category"], r["role"]) for r in summary(outcomes)]
    assert roles == [("energy", "validation"), ("energy", "calibration"), ("energy", "comparison")]


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_shipped_energy_cases(case):
    error = predict(case) / case.published - 1
    assert abs(error) <= case.tolerance, f"{case.id}: {100 * error:+.1f}%"
