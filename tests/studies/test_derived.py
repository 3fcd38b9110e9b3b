"""Scenarios the planner derives are validated again: GPU counts that are not valid for the
scenario as written are skipped and said, never simulated with phantom settings."""

from __future__ import annotations

import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.execution.memory import memory_breakdown
from simulator.scenario.load import with_gpus
from simulator.studies import planner
from simulator.studies.search import gpu_count_candidates, min_gpus
from tests.helpers import make_scenario


def test_a_straggler_on_rank_15_makes_fewer_than_16_gpus_invalid():
    s = make_scenario(
        training={"strategy": "zero3"},
        cluster={
            "topology": "a100-hdr-superpod",
            "num_hosts": 2,
            "num_gpus": 16,
            "stragglers": [{"rank": 15, "slowdown": 2.0}],
        },
    )
    with pytest.raises(UserError, match="rank 15 does not exist"):
        with_gpus(s, 1)
    found = min_gpus(s)
    # gpt3-125m fits on one GPU, but counts below 16 cannot hold rank 15.
    assert found.count == 16 and "rank 15 does not exist" in found.invalid_note
    plan = planner.min_gpus_plan(s, ("zero3",))
    assert plan.compare_at == 16 and plan.compared[0].fits


def test_hsdp_at_a_count_its_shard_group_does_not_divide_is_reported_not_run():
    s = make_scenario(
        model={"preset": "llama2-7b"},
        training={"strategy": "hsdp", "shard_group_size": 16, "activation_checkpointing": "full"},
        cluster={"topology": "a100-hdr-superpod", "num_hosts": 4},
    )
    plan = planner.min_gpus_plan(s, ("hsdp", "zero3"), compare_at=24)
    hsdp, zero3 = plan.compared
    assert not hsdp.fits and "does not split into groups of 16" in hsdp.note
    assert zero3.fits and zero3.step_time_s > 0 and plan.fastest == "zero3"


def test_min_gpus_equals_a_brute_force_scan():
    s = make_scenario(
        model={"preset": "llama2-13b"},
        training={"strategy": "zero3"},
        cluster={"topology": "a100-hdr-superpod", "num_hosts": 4},
    )
    brute = next(n for n in gpu_count_candidates(8, 512) if memory_breakdown(with_gpus(s, n)).fits)
    assert min_gpus(s, cap=512).count == brute


def test_planner_keeps_the_batch_per_gpu_when_global_batch_was_given(capsys):
    s = make_scenario(
        training={"strategy": "zero3", "global_batch_size": 64, "micro_batch_size": 2},
        cluster={"topology": "a100-hdr-superpod", "num_hosts": 2},
    )
    assert s.training.grad_accum_steps == 64 // (2 * 16)
    derived = with_gpus(s, 8)  # weak scaling: micro-batch and accumulation kept per GPU
    assert derived.training.grad_accum_steps == 2 and derived.global_batch_size == 2 * 2 * 8


def test_plan_min_gpus_json_has_no_zero_bytes_for_strategies_that_never_fit(capsys):
    import json

    assert (
        main(["plan", "min-gpus", "llama2-7b-zero3-8xa100", "--strategies", "ddp", "--json"]) == 0
    )
    row = json.loads(capsys.readouterr().out)["at_minimum"][0]
    assert row["fits"] is False and row["mem_total_bytes"] is None
