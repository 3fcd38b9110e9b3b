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


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_published_throughput_out_of_sample(case, capsys):
    scenario = scenario_from_dict(case["scenario"], base_dir=CASES_FILE.parent)
    predicted = simulate(scenario)["step"][case["metric"]]
    error = predicted / case["published"] - 1
    with capsys.disabled():
        print(f"\nOUT-OF-SAMPLE {case['id']}: published {case['published']:,} predicted {predicted:,.0f} "
              f"({100 * error:+.1f}%)")
    assert abs(error) <= case["tolerance"], case["source"]
