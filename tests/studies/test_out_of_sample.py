"""Out-of-sample validation: published runs that no constant was fitted to, predicted within
their tolerance. The cases ship with the package (simulator/data/validation/) with their
sources; the slow ones (hundreds of pipeline stages and micro-batches) run in CI's slow pass."""

from __future__ import annotations

import pytest

from simulator.studies.cases import predict, shipped_cases

CASES = [c for name in ("throughput", "model_parallel") for c in shipped_cases(name) if c.role == "validation"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_published_throughput_out_of_sample(case, capsys):
    predicted = predict(case)
    error = predicted / case.published - 1
    with capsys.disabled():
        print(f"\nOUT-OF-SAMPLE {case.id}: {case.metric} published {case.published:,} predicted "
              f"{predicted:,.1f} ({100 * error:+.1f}%, tolerance {100 * case.tolerance:.0f}%)")
    assert abs(error) <= case.tolerance, case.source
