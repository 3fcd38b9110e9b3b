"""Out-of-sample validation: published runs that no constant was fitted to, predicted within
their tolerance. The cases ship with the package (simulator/data/validation/) with their
sources; the slow ones (hundreds of pipeline stages and micro-batches) run in CI's slow pass."""

from __future__ import annotations

import pytest

from simulator.studies.cases import predict, shipped_cases

CASES = [c for name in ("throughput", "model_parallel", "frameworks") for c in shipped_cases(name)
         if c.role == "validation"]


def _marks(case):
    # A known miss is expected to fail (strict: should it start passing, its note must go).
    return ([pytest.mark.slow] if case.slow else []) + \
        ([pytest.mark.xfail(strict=True, reason=case.known_miss)] if case.known_miss else [])


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_published_throughput_out_of_sample(case, capsys):
    predicted = predict(case)
    error = predicted / case.published - 1
    with capsys.disabled():
        print(f"\nOUT-OF-SAMPLE {case.id}: {case.metric} published {case.published:,} predicted "
              f"{predicted:,.1f} ({100 * error:+.1f}%, tolerance {100 * case.tolerance:.0f}%)")
    assert abs(error) <= case.tolerance, case.source
