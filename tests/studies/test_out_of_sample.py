"""Out-of-sample validation: published runs that no constant was fitted to, predicted within
their tolerance. The cases ship with the package (simulator/data/validation/) with their sources."""

from __future__ import annotations

import pytest

from simulator.core.resources import data_dir
from simulator.core.yamlio import read_yaml
from simulator.scenario.load import scenario_from_dict
from simulator.studies.simulate import simulate

CASES_FILE = data_dir("validation") / "throughput.yaml"
CASES = [c for c in read_yaml(CASES_FILE)["cases"] if c["role"] == "validation"]


def _param(case: dict):
    """A case; one with a stated known deviation is expected to miss its tolerance (strictly: if
    it starts to pass, the deviation note is stale)."""
    marks = [pytest.mark.xfail(reason=case["known_deviation"], strict=True)] if "known_deviation" in case else []
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_published_throughput_out_of_sample(case, capsys):
    scenario = scenario_from_dict(case["scenario"], base_dir=CASES_FILE.parent)
    predicted = simulate(scenario)["step"][case["metric"]]
    error = predicted / case["published"] - 1
    with capsys.disabled():
        print(f"\nOUT-OF-SAMPLE {case['id']}: published {case['published']:,} predicted {predicted:,.0f} "
              f"({100 * error:+.1f}%)")
    assert abs(error) <= case["tolerance"], case["source"]


CALIBRATION = [c for c in read_yaml(CASES_FILE)["cases"] if c["role"] == "calibration"]


@pytest.mark.parametrize("case", CALIBRATION, ids=[c["id"] for c in CALIBRATION])
def test_in_sample_throughput_calibration(case, capsys):
    # IN-SAMPLE: the end-to-end factor was fitted to these rows; this only bounds the residuals.
    scenario = scenario_from_dict(case["scenario"], base_dir=CASES_FILE.parent)
    predicted = simulate(scenario)["step"][case["metric"]]
    error = predicted / case["published"] - 1
    with capsys.disabled():
        print(f"\nIN-SAMPLE {case['id']}: published {case['published']:,} predicted {predicted:,.0f} ({100 * error:+.1f}%)")
    assert abs(error) <= case["tolerance"], case["source"]
