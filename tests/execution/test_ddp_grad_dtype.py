"""PyTorch DDP's gradient buckets in their parameters' dtype (strategies/ddp.py): under
torch.autocast the parameters stay fp32, so the buckets and the all-reduce are fp32; torch's
fp16/bf16 compress hooks send a 16-bit copy of each bucket. Bytes counted by hand."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.execution.memory import memory_breakdown
from simulator.execution.step import simulate_step
from tests.helpers import cluster_of, make_scenario


def scenario(**training):
    t = {"strategy": "ddp", "seq_len": 128, "micro_batch_size": 1, **training}
    return make_scenario(model={"preset": "gpt3-125m"}, training=t, cluster=cluster_of(8))


def all_reduced_bytes(s) -> int:
    tasks = simulate_step(s).classes[0].schedule.tasks
    return sum(
        t.collective.size_bytes
        for t in tasks
        if t.collective is not None and t.collective.op == "all_reduce"
    )


@pytest.mark.parametrize(
    ("training", "per_param"),
    [
        ({"precision": "bf16-mixed"}, 4),  # autocast: fp32 parameters, fp32 gradients
        ({"precision": "fp16-mixed"}, 4),
        ({"precision": "bf16-mixed", "ddp_comm_hook": "bf16_compress"}, 2),
        ({"precision": "fp16-mixed", "ddp_comm_hook": "fp16_compress"}, 2),
        ({"precision": "bf16"}, 2),  # pure bf16: the parameters and gradients are bf16
        ({"precision": "fp32"}, 4),
    ],
)
def test_every_gradient_is_all_reduced_once_in_the_bucket_dtype(training, per_param):
    s = scenario(**training)
    assert all_reduced_bytes(s) == s.model.params * per_param


def test_buckets_copy_the_fp32_gradients_unless_they_are_views():
    s = scenario(precision="bf16-mixed")
    view = scenario(precision="bf16-mixed", gradient_as_bucket_view=True)
    held = memory_breakdown(s).static_buffers_bytes - memory_breakdown(view).static_buffers_bytes
    assert held == s.model.params * 4
    # a compress hook casts a copy for the wire: the bucket itself stays fp32
    hooked = scenario(precision="bf16-mixed", ddp_comm_hook="bf16_compress")
    assert memory_breakdown(hooked).static_buffers_bytes == memory_breakdown(s).static_buffers_bytes


@pytest.mark.parametrize(
    "training",
    [
        {"strategy": "zero3", "ddp_comm_hook": "bf16_compress"},
        {"strategy": "ddp", "framework": "megatron", "ddp_comm_hook": "bf16_compress"},
    ],
)
def test_the_hook_is_pytorch_ddp_only(training):
    with pytest.raises(UserError) as e:
        scenario(**training)
    assert any(p.path == "training.ddp_comm_hook" for p in e.value.problems)
