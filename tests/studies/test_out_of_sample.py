"""Out-of-sample validation: published runs that no constant was fitted to, predicted within
their tolerance. The cases ship with the package (simulator/data/validation/) with their
sources; the slow ones (hundreds of pipeline stages and micro-batches) run in CI's slow pass.
A case with a stated known deviation is a strict xfail: if it starts to pass, the note is stale.
The calibration rows of the same files are checked apart, labelled in-sample."""

from __future__ import annotations

import pytest

from simulator.studies.cases import Case, predict, shipped_cases
from tests.helpers import case_param

FILES = ("throughput", "model_parallel", "frameworks", "memory")
CASES = [c for name in FILES for c in shipped_cases(name) if c.role == "validation"]
CALIBRATION = [c for name in FILES for c in shipped_cases(name) if c.role == "calibration"]


def _check(case: Case, label: str, capsys) -> None:
    predicted = predict(case)
    error = predicted / case.published - 1
    with capsys.disabled():
        print(
            f"\n{label} {case.id}: {case.metric} published {case.published:,} predicted "
            f"{predicted:,.1f} ({100 * error:+.1f}%, tolerance {100 * case.tolerance:.0f}%)"
        )
    assert abs(error) <= case.tolerance, case.source


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_published_throughput_out_of_sample(case, capsys):
    _check(case, "OUT-OF-SAMPLE", capsys)


@pytest.mark.parametrize("case", [case_param(c) for c in CALIBRATION])
def test_in_sample_throughput_calibration(case, capsys):
    # IN-SAMPLE: the end-to-end factor was fitted to these rows; this only bounds the residuals.
    _check(case, "IN-SAMPLE", capsys)
