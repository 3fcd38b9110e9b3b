"""OOM suggestions: each is checked with the memory model on a validated derived scenario, and
the GPU count agrees with `plan min-gpus` (one search)."""

from __future__ import annotations

from simulator.execution.memory import memory_breakdown
from simulator.scenario.load import derive, with_gpus
from simulator.studies.search import gpu_count_candidates, min_gpus
from simulator.studies.suggest import fit_suggestions
from tests.helpers import make_scenario


def test_suggestions_are_checked_with_the_model():
    s = make_scenario(model={"preset": "llama2-70b"}, training={"strategy": "ddp", "seq_len": 4096})
    hints = fit_suggestions(s)
    assert hints and all(h.startswith("fits with") for h in hints)
    # The last hint's GPU count really fits, and the next smaller candidate count does not.
    assert "zero3" in hints[-1] and "activation_checkpointing: full" in hints[-1]
    n = int(hints[-1].rsplit(">= ", 1)[1].split()[0])
    fixed = derive(s, {"training.strategy": "zero3", "training.activation_checkpointing": "full"})
    assert memory_breakdown(with_gpus(fixed, n)).fits
    smaller = [c for c in gpu_count_candidates(8) if c < n]
    assert not memory_breakdown(with_gpus(fixed, smaller[-1])).fits
    # The same count as the planner's search (plan min-gpus).
    assert min_gpus(fixed).count == n
