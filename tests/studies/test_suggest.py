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
    # The more-GPUs hint's count really fits, and the next smaller candidate count does not.
    hint = next(h for h in hints if h.startswith("fits with zero3"))
    assert "activation_checkpointing: full" in hint
    n = int(hint.rsplit(">= ", 1)[1].split()[0])
    fixed = derive(s, {"training.strategy": "zero3", "training.activation_checkpointing": "full"})
    assert memory_breakdown(with_gpus(fixed, n)).fits
    smaller = [c for c in gpu_count_candidates(8) if c < n]
    assert not memory_breakdown(with_gpus(fixed, smaller[-1])).fits
    # The same count as the planner's search (plan min-gpus).
    assert min_gpus(fixed).count == n


def test_a_model_parallel_layout_is_suggested_for_long_sequences():
    # The model-parallelism issue's case: Llama-2-70B at 4,096 tokens without recomputation.
    # Activations alone are 80 layers x sbh(34 + 5as/h) = 80 x 4096 x 8192 x 34 B ~ 91 GB per GPU
    # without the flash term, beyond 80 GB at any ZeRO-3 degree; tp 8 with SP divides them by 8.
    assert 80 * 4096 * 8192 * 34 > 80 * 2**30
    s = make_scenario(model={"preset": "llama2-70b"}, training={"strategy": "ddp", "seq_len": 4096})
    hint = next(h for h in fit_suggestions(s) if h.startswith("fits with tp 8, sequence_parallel"))
    strategy = hint.split(" and ")[1].split()[0]
    n = int(hint.rsplit(">= ", 1)[1].split()[0])
    fixed = derive(
        s,
        {
            "training.strategy": strategy,
            "training.parallelism.tp": 8,
            "training.parallelism.sequence_parallel": True,
        },
    )
    assert memory_breakdown(with_gpus(fixed, n)).fits
    smaller = [c for c in gpu_count_candidates(8) if c < n and c % 8 == 0]
    assert not memory_breakdown(with_gpus(fixed, smaller[-1])).fits
