"""Acceptance: a profile fitted to one public 8x A100 nccl-tests table (Azure ND A100 v4, shipped
as nccl-tests output) predicts another source's 8x A100 table (stas00/ml-engineering, the
validation rows of collectives.yaml, nothing fitted to them) at least as well as the built-in
constants. Both errors are printed (pytest -s)."""

from __future__ import annotations

import statistics

from simulator.scenario.calibration import load_profile
from simulator.studies.cases import predict, shipped_cases

STAS00 = [
    c
    for c in shipped_cases("collectives")
    if c.id.startswith("nccl-stas00-a100-") and c.role == "validation"
]


def test_azure_a100_profile_predicts_the_stas00_a100_table(a100_profile, capsys):
    assert len(STAS00) == 11
    profile = load_profile(a100_profile)
    before = [predict(c) / c.published - 1 for c in STAS00]
    after = [predict(c, calibration=profile) / c.published - 1 for c in STAS00]
    with capsys.disabled():
        print(
            "\nOUT-OF-SAMPLE stas00 8x A100 all_reduce busbw: built-in constants -> Azure-fitted profile"
        )
        for c, b, a in zip(STAS00, before, after):
            print(
                f"  {c.collective['size']:>12} B  published {c.published:7.2f}  {100 * b:+6.1f}% -> {100 * a:+6.1f}%"
            )
        print(
            f"  median |error| {100 * statistics.median(map(abs, before)):.2f}% -> "
            f"{100 * statistics.median(map(abs, after)):.2f}%; max {100 * max(map(abs, before)):.2f}% -> "
            f"{100 * max(map(abs, after)):.2f}%"
        )
    # Improves the typical error; holds the worst one (the 128 MiB row, where both tables dip and
    # the model has no dip) within 1.5 points.
    assert statistics.median(map(abs, after)) <= statistics.median(map(abs, before))
    assert max(map(abs, after)) <= max(map(abs, before)) + 0.015
    assert all(abs(a) <= c.tolerance for c, a in zip(STAS00, after))
