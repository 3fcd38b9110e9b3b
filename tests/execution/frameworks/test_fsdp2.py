"""The pytorch-fsdp2 profile: per-parameter sharding padded on dim 0 to the world size, the
all-gather copy-out on the compute stream, no rate limiter; sizes worked out by hand."""

from __future__ import annotations

import math

from simulator.execution.memory import memory_breakdown
from simulator.execution.step import simulate_step
from simulator.system.hardware import END_TO_END_FITTED_A100, KERNEL_LAUNCH_S
from tests.helpers import cluster_of, make_scenario

# Hidden 1000 does not divide by 16 GPUs: every parameter whose first dimension is 1000 is
# padded to 1008 rows (ceil(1000 / 16) = 63 per rank); the MLP's up projection (4000 rows) is not.
ARCH = {
    "num_layers": 2,
    "hidden_size": 1000,
    "num_heads": 8,
    "vocab_size": 1003,
    "max_position_embeddings": 128,
}
N = 16
BLOCK = 12 * 1000**2 + 13 * 1000  # GPT block with biases and LayerNorms: 12 h^2 + 13 h
# FSDP2, per parameter: q, k, v, o weights (1000 rows x 1000), down (1000 x 4000), up (4000 x 1000);
# nine vectors of 1000 (two norms' weight and bias, q/k/v/o/down biases) and up's bias of 4000.
BLOCK_FSDP2 = 4 * 1008 * 1000 + 1008 * 4000 + 4000 * 1000 + 9 * 1008 + 4000
ROOT = 1003 * 1000 + 128 * 1000 + 2 * 1000  # tied word table, positions, final LayerNorm
ROOT_FSDP2 = 1008 * 1000 + 128 * 1000 + 2 * 1008


def scenario(framework, **training):
    t = {
        "framework": framework,
        "strategy": "zero3",
        "seq_len": 128,
        "dropout": False,
        "flash_attention": False,
        **training,
    }
    return make_scenario(model={"architecture": ARCH}, training=t, cluster=cluster_of(N))


def gathers(step):
    return {c["bytes"]: c["count"] for c in step.collectives if c["op"] == "all_gather"}


def test_fsdp2_pads_each_parameter_where_fsdp_pads_the_flat_parameter():
    # FSDP1's FlatParameter is padded once to a multiple of n (_flat_param.py); FSDP2 pads each
    # parameter's dim 0 (_fsdp_param.py _init_sharded_param).
    fsdp = simulate_step(scenario("pytorch-fsdp"))
    fsdp2 = simulate_step(scenario("pytorch-fsdp2"))
    assert gathers(fsdp) == {math.ceil(BLOCK / N) * N * 2: 4, math.ceil(ROOT / N) * N * 2: 1}
    assert gathers(fsdp2) == {BLOCK_FSDP2 * 2: 4, ROOT_FSDP2 * 2: 1}
    rs = {c["bytes"] for c in fsdp2.collectives if c["op"] == "reduce_scatter"}
    assert rs == {BLOCK_FSDP2 * 2, ROOT_FSDP2 * 2}


def test_fsdp2_stores_its_padded_shards():
    mem = memory_breakdown(scenario("pytorch-fsdp2"))
    local = (2 * BLOCK_FSDP2 + ROOT_FSDP2) // N
    assert (mem.params_bytes, mem.grads_bytes, mem.optimizer_bytes) == (
        2 * local,
        2 * local,
        12 * local,
    )


def test_fsdp2_copies_out_each_gathered_block_on_the_compute_stream():
    # foreach_all_gather_copy_out (wait_for_unshard) splits the flat output into the parameters:
    # a memory-bound kernel reading the padded output and writing the parameters, before each
    # block's forward and (resharded) backward.
    step = simulate_step(scenario("pytorch-fsdp2"))
    tasks = step.classes[0].schedule.tasks
    copies = [t for t in tasks if "copy-out" in t.name]
    assert len(copies) == 2 * 2 and {t.stream for t in copies} == {"compute"}
    nbytes = (BLOCK_FSDP2 + BLOCK) * 2
    expected = (
        KERNEL_LAUNCH_S + nbytes / 1.7e12
    ) / END_TO_END_FITTED_A100  # A100-80GB STREAM 1.7 TB/s
    assert all(abs(t.duration_s - expected) < 1e-12 for t in copies)
    # The output buffer (padded) is freed once the parameters (unpadded) are written.
    assert {(t.alloc_bytes, t.free_bytes) for t in copies} == {(BLOCK * 2, BLOCK_FSDP2 * 2)}


def test_fsdp2_next_gather_waits_for_the_copy_out_not_a_rate_limiter():
    # FSDP1's limit_all_gathers holds block i's all-gather until block i-2's forward freed it;
    # FSDP2's all-gather streams wait for the previous copy-out instead.
    tasks = simulate_step(scenario("pytorch-fsdp2")).classes[0].schedule.tasks
    second = next(i for i, t in enumerate(tasks) if t.name == "mb0 all_gather layers.1 (forward)")
    copy_in = tasks[second].deps[0]
    assert [tasks[d].name for d in tasks[copy_in].deps] == [
        "mb0 all_gather copy-out layers.0 (forward)"
    ]


def test_fsdp2_without_reshard_after_forward_gathers_each_block_once():
    step = simulate_step(scenario("pytorch-fsdp2", fsdp2={"reshard_after_forward": False}))
    assert sum(gathers(step).values()) == 2 + 1


def test_fsdp2_reduce_dtype_fp32_doubles_the_reduce_scatter():
    # MixedPrecisionPolicy(reduce_dtype=torch.float32): gradients go on the wire in fp32.
    step = simulate_step(scenario("pytorch-fsdp2", fsdp2={"reduce_dtype": "fp32"}))
    rs = {c["bytes"] for c in step.collectives if c["op"] == "reduce_scatter"}
    assert rs == {BLOCK_FSDP2 * 4, ROOT_FSDP2 * 4}
