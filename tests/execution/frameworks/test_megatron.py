"""The megatron profile: Megatron-Core's gradient buffer, buckets and distributed optimizer, with
expected values from its documented defaults (docs dist_optimizer.md table, ddp config)."""

from __future__ import annotations

import math

import pytest

from simulator.execution.memory import memory_breakdown
from simulator.execution.step import simulate_step
from tests.helpers import cluster_of, make_scenario

P = 1_200_000_000  # a bare 1.2B model: P / 8 and P / 128 are whole
D = 8


def scenario(strategy="ddp", precision="bf16-mixed", **training):
    t = {
        "framework": "megatron",
        "strategy": strategy,
        "precision": precision,
        "optimizer": "adam",
        **training,
    }
    return make_scenario(
        model={"params": P, "num_layers": 24, "hidden_size": 2048},
        training=t,
        cluster=cluster_of(D),
    )


@pytest.mark.parametrize(
    "precision, strategy, bytes_per_param",
    [
        # Megatron-Core docs (dist_optimizer.md): bytes per parameter, d = data-parallel size.
        ("bf16-mixed", "ddp", 18),
        ("bf16-mixed", "zero1", 6 + 12 / D),  # bf16 params, fp32 grads
        ("fp16-mixed", "ddp", 20),
        ("fp16-mixed", "zero1", 4 + 16 / D),  # fp16 params and grads
        ("fp32", "ddp", 16),
        ("fp32", "zero1", 8 + 8 / D),  # fp32 params and grads
    ],
)
def test_model_states_follow_the_distributed_optimizer_table(precision, strategy, bytes_per_param):
    mem = memory_breakdown(scenario(strategy, precision))
    assert mem.model_states_bytes == pytest.approx(bytes_per_param * P, abs=1)


def collectives(s):
    return [(c["op"], c["count"], c["bytes"]) for c in simulate_step(s).collectives]


def test_ddp_all_reduces_the_fp32_buffer_once_after_backward():
    # overlap_grad_reduce false (default): the whole buffer is one bucket; bf16 training reduces
    # in fp32 (Megatron-LM forces accumulate_allreduce_grads_in_fp32 for bf16).
    assert collectives(scenario()) == [("all_reduce", 1, 4 * P)]
    assert collectives(scenario(precision="fp16-mixed")) == [("all_reduce", 1, 2 * P)]
    assert collectives(scenario(megatron={"grad_reduce_in_fp32": False})) == [
        ("all_reduce", 1, 2 * P)
    ]


def test_distributed_optimizer_reduce_scatters_and_gathers_the_weights():
    # Reduce-scatter of the fp32 gradient buffer, all-gather of the bf16 weight buffer, each padded
    # to lcm(dp, 128) elements (P is a multiple of 128 already).
    assert sorted(collectives(scenario("zero1"))) == [
        ("all_gather", 1, 2 * P),
        ("reduce_scatter", 1, 4 * P),
    ]


def test_overlap_grad_reduce_uses_buckets_of_the_default_size():
    # bucket_size default with overlap: max(40M, 1M x dp) = 40M parameters; a bucket closes once
    # it holds at least that many (whole parameters), so ceil(P / (40M + largest)) <= buckets <=
    # ceil(P / 40M); every bucket but the last is at least 40M fp32 elements.
    s = scenario(megatron={"overlap_grad_reduce": True})
    step = simulate_step(s)
    sizes = sorted((c["bytes"] for c in step.collectives for _ in range(c["count"])), reverse=True)
    largest = 2048 * 4 * 2048 * 2  # an MLP matrix, at most (the bare model's are fitted to P / 24)
    assert math.ceil(P / (40e6 + largest)) <= len(sizes) <= math.ceil(P / 40e6)
    assert all(b >= 4 * 40_000_000 for b in sizes[:-1])
    # Issued during backward, not after it.
    tasks = step.classes[0].schedule.tasks
    first = next(i for i, t in enumerate(tasks) if t.collective is not None)
    assert any(t.phase == "backward" for t in tasks[first + 1 :])


def test_overlap_param_gather_gathers_the_weights_before_the_forward():
    s = scenario("zero1", megatron={"overlap_grad_reduce": True, "overlap_param_gather": True})
    tasks = simulate_step(s).classes[0].schedule.tasks
    first_block = next(t for t in tasks if t.phase == "forward" and "layers.0" in t.name)
    assert any(
        tasks[d].collective and tasks[d].collective.op == "all_gather" for d in first_block.deps
    )


def test_megatron_with_tensor_and_pipeline_parallelism():
    s = make_scenario(
        model={"preset": "gpt3-350m", "vocab_size": 50432},
        training={
            "framework": "megatron",
            "strategy": "zero1",
            "grad_accum_steps": 4,
            "parallelism": {"tp": 2, "pp": 2},
        },
        cluster=cluster_of(8),
    )
    ops = {c["op"] for c in simulate_step(s).collectives}
    assert {"reduce_scatter", "all_gather", "send"} <= ops
