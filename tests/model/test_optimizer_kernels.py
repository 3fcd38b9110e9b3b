"""The optimizer update as its implementation runs it (training.optimizer_implementation). Bytes
per parameter counted by hand from torch/optim/adamw.py `_multi_tensor_adamw`: decay (read and
write the parameter), lerp of the first moment (read and write it, read the gradient), the
second moment's mul and addcmul (read and write it twice, read the gradient once), sqrt into a
new denominator (read the second moment, write it), its div and add (read and write it twice),
addcdiv (read and write the parameter, read the first moment and the denominator)."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.execution.strategies.optimizer import optimizer_update
from simulator.model.optimizer_kernels import unfused_update_bytes_per_param
from simulator.model.precision import PRECISIONS
from tests.helpers import cluster_of, make_scenario

N = 1_000_000  # local parameters


def scenario(**training):
    t = {"strategy": "zero3", "seq_len": 128, **training}
    return make_scenario(model={"preset": "gpt3-125m"}, training=t, cluster=cluster_of(8))


def per_param(s) -> float:
    return optimizer_update(s, N).bytes_moved / N


def test_foreach_adamw_under_mixed_precision_moves_80_bytes():
    # fp32 parameter (the master), fp32 gradient and states: passes of 8, 12, 8, 12, 8, 8, 8, 16
    s = scenario()
    assert s.training.optimizer_implementation == "foreach"  # torch.optim.AdamW's default
    assert per_param(s) == 8 + 12 + 8 + 12 + 8 + 8 + 8 + 16
    # the fused kernel: the fp32 gradient read, the fp32 parameter and both states read and
    # written once
    assert per_param(scenario(optimizer_implementation="fused")) == 4 + 2 * 4 + 2 * 8
    # the for-loop runs the same passes tensor by tensor: the same bytes
    assert per_param(scenario(optimizer_implementation="for-loop")) == 80


@pytest.mark.parametrize(
    ("optimizer", "precision", "framework", "expected"),
    [
        # Adam has no decay pass at its default weight_decay 0: 80 - 8
        ("adam", "bf16-mixed", "pytorch-fsdp", 72),
        # pure bf16: 2-byte parameter, gradient and states: (8 + 12 + 8 + 12 + 8 + 8 + 8 + 16) / 2
        ("adamw", "bf16", "pytorch-fsdp", 40),
        # Megatron and DeepSpeed keep 16-bit weights: the master (4) copied into them (2)
        ("adamw", "bf16-mixed", "megatron", 80 + 4 + 2),
        ("adamw", "bf16-mixed", "deepspeed", 80 + 4 + 2),
        ("adamw", "fp32", "pytorch-fsdp", 80),
    ],
)
def test_bytes_by_optimizer_precision_and_framework(optimizer, precision, framework, expected):
    assert unfused_update_bytes_per_param(optimizer, PRECISIONS[precision], framework) == expected


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        ({}, "foreach"),
        ({"framework": "pytorch-fsdp2"}, "foreach"),
        ({"framework": "megatron", "strategy": "zero1"}, "fused"),  # Apex / TE FusedAdam
        ({"framework": "deepspeed"}, "fused"),  # DeepSpeed's FusedAdam
        ({"optimizer": "sgd"}, "fused"),  # no per-operation table: one pass
        (
            {"framework": "megatron", "strategy": "zero1", "optimizer_implementation": "foreach"},
            "foreach",
        ),
    ],
)
def test_defaults_by_framework(training, expected):
    assert scenario(**training).training.optimizer_implementation == expected


def test_foreach_update_takes_longer_than_fused_by_its_bytes():
    from simulator.system.compute import ComputeModel

    fused, foreach = scenario(optimizer_implementation="fused"), scenario()
    cm = ComputeModel(gpu=fused.cluster.gpu, gemm_dtype="bf16", attention_dtype="bf16")
    t_fused = cm.op_time_s(optimizer_update(fused, N))
    t_foreach = cm.op_time_s(optimizer_update(foreach, N))
    launch = cm.launch_overhead_s(optimizer_update(fused, N))
    assert (t_foreach - launch) / (t_fused - launch) == pytest.approx(80 / 28)


@pytest.mark.parametrize(
    "training",
    [
        {"optimizer": "sgd", "optimizer_implementation": "foreach"},
        {"optimizer": "adam-8bit", "optimizer_implementation": "for-loop"},
        {"optimizer_implementation": "foreach", "offload": {"optimizer": "cpu"}},
    ],
)
def test_unfused_is_refused_where_no_table_or_cpu_update(training):
    with pytest.raises(UserError) as e:
        scenario(**training)
    assert any(p.path == "training.optimizer_implementation" for p in e.value.problems)


@pytest.mark.parametrize(
    ("strategy", "shards"),
    [("ddp", 1), ("hsdp", 4)],  # hsdp: 4-GPU shard groups
)
def test_foreach_denominators_are_held_during_the_update(strategy, shards):
    from simulator.execution.memory import stage_memory
    from simulator.execution.step import simulate_step

    # One 128-token micro-batch of GPT-3 125M: the model states outweigh the activations, so
    # the update's fp32 denominators (4 bytes for every parameter the rank updates, its shard)
    # make the step's peak
    t = {"seq_len": 128, "micro_batch_size": 1, "strategy": strategy}
    if strategy == "hsdp":
        t["shard_group_size"] = shards
    s = scenario(**t)
    mem = stage_memory(s)[0]
    assert mem.peak_op == "optimizer step" and mem.activations_bytes == 0
    local = -(-s.model.params // shards)
    assert mem.buffers_bytes - mem.static_buffers_bytes == local * 4
    assert simulate_step(s).timeline_peak[0] == mem.total_bytes
    fused = stage_memory(scenario(**t, optimizer_implementation="fused"))[0]
    assert fused.peak_op != "optimizer step"


@pytest.mark.parametrize(
    ("framework", "strategy", "pp"),
    [
        ("pytorch-fsdp", "zero1", 2),
        ("pytorch-fsdp", "zero3", 2),
        ("pytorch-fsdp2", "hsdp", 1),  # per-parameter padded shards
        ("pytorch-fsdp2", "zero3", 2),
        ("deepspeed", "zero2", 1),
        ("megatron", "zero1", 2),
        ("megatron-16bit-grads", "zero1", 2),  # fp32 main gradients beside the states
    ],
)
def test_timeline_and_analytic_peaks_agree_with_the_denominators(framework, strategy, pp):
    from simulator.execution.memory import stage_memory
    from simulator.execution.step import simulate_step

    t = {"strategy": strategy, "framework": framework, "seq_len": 128, "micro_batch_size": 1}
    t |= {"optimizer_implementation": "foreach", "parallelism": {"pp": pp}}
    if framework == "megatron-16bit-grads":
        t |= {"framework": "megatron", "megatron": {"grad_reduce_in_fp32": False}}
    if strategy == "hsdp":
        t["shard_group_size"] = 4
    s = scenario(**t)
    mems = stage_memory(s)
    assert any(m.peak_op == "optimizer step" for m in mems)
    assert simulate_step(s).timeline_peak[0] == max(m.total_bytes for m in mems)


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        # Megatron's FusedAdam also writes the 16-bit model weights beside the fp32 master
        ({"framework": "megatron", "strategy": "zero1"}, 4 + 2 * 4 + 2 * 8 + 2),
        ({"framework": "deepspeed", "strategy": "zero1"}, 4 + 2 * 4 + 2 * 8 + 2),
        # pure bf16: the 2-byte gradient, parameter and states
        ({"precision": "bf16", "optimizer_implementation": "fused"}, 2 + 2 * 2 + 2 * 4),
        # SGD without momentum: the gradient read, the parameter read and written
        ({"precision": "fp32", "optimizer": "sgd"}, 4 + 2 * 4),
        ({"precision": "fp32", "optimizer": "sgd-momentum"}, 4 + 2 * 4 + 2 * 4),
    ],
)
def test_fused_update_bytes(training, expected):
    assert per_param(scenario(**training)) == expected
