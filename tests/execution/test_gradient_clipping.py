"""Gradient clipping by the global norm before the optimizer step (training.gradient_clipping):
the norm reads every local gradient; torch's clip_grad_norm_ (PyTorch DDP / FSDP / FSDP2) and
DeepSpeed's unscale-and-clip then scale every gradient (a read and a write); Megatron-Core
scales only when the norm exceeds max_norm, which a steady step is costed without. Bytes
counted by hand; defaults from each framework."""

from __future__ import annotations

import pytest

from simulator.execution.strategies.optimizer import gradient_clipping_ops, optimizer_ops
from tests.helpers import cluster_of, make_scenario

N = 1_000_000  # local parameters


def scenario(**training):
    t = {"strategy": "zero1", "seq_len": 128, **training}
    return make_scenario(model={"preset": "gpt3-125m"}, training=t, cluster=cluster_of(8))


def clip_bytes(s) -> list[int]:
    return [op.bytes_moved for op in gradient_clipping_ops(s, N)]


def test_pytorch_reads_for_the_norm_then_scales_every_gradient():
    s = scenario()  # pytorch-fsdp, bf16-mixed: the optimizer's gradients are fp32 (4 bytes)
    assert s.training.gradient_clipping
    assert clip_bytes(s) == [4 * N, 2 * 4 * N]
    # pure bf16 training (no fp32 master): 2-byte gradients
    assert clip_bytes(scenario(precision="bf16")) == [2 * N, 2 * 2 * N]
    # the update comes after the clipping kernels
    assert [op.name for op in optimizer_ops(s, N)] == [
        "gradient norm",
        "gradient clip scale",
        "optimizer step",
    ]


def test_megatron_only_reads_for_the_norm():
    s = scenario(framework="megatron")  # bf16-mixed: fp32 main_grad
    assert s.training.gradient_clipping
    assert clip_bytes(s) == [4 * N]


@pytest.mark.parametrize(
    ("training", "on"),
    [
        ({"framework": "deepspeed"}, False),  # DeepSpeed's gradient_clipping defaults to 0
        ({"framework": "deepspeed", "gradient_clipping": True}, True),
        ({"gradient_clipping": False}, False),
    ],
)
def test_defaults_and_overrides(training, on):
    s = scenario(**training)
    assert s.training.gradient_clipping is on
    assert bool(clip_bytes(s)) is on
    assert optimizer_ops(s, N)[-1].name == "optimizer step"
