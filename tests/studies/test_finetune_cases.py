"""The fine-tuning cases of `clustersim accuracy` (simulator/data/validation/finetune.yaml):
LoRA / QLoRA peak memory and training speed, predicted. A case with a known deviation must miss
its tolerance (strict), the others must hold it."""

from __future__ import annotations

import pytest

from simulator.studies.cases import MEMORY_METRICS, STEP_METRICS, predict, shipped_cases
from tests.helpers import case_param

CASES = shipped_cases("finetune")


def test_the_finetune_set_poses_lora_runs_with_their_choices():
    assert {c.category for c in CASES} == {"memory", "throughput"}
    assert all(c.role == "validation" and c.choices for c in CASES)
    for c in CASES:
        assert c.scenario is not None and c.scenario["training"]["finetune"]["method"] != "full"
        want = MEMORY_METRICS if c.category == "memory" else STEP_METRICS
        assert c.metric in want, c.id
    # The QLoRA paper's headline run is among them.
    assert any(c.id.startswith("qlora-guanaco-65b") for c in CASES)


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_shipped_finetune_cases(case):
    error = predict(case) / case.published - 1
    assert abs(error) <= case.tolerance, f"{case.id}: {100 * error:+.1f}%"
