"""The deepspeed profile: ZeRO-3 states, buffers and collectives, and ZeRO-1/2 buckets, with
expected values from DeepSpeed's documented mechanics (deepspeed/runtime/zero/) by hand."""

from __future__ import annotations

import math

import pytest

from simulator.execution.memory import memory_breakdown
from simulator.execution.step import simulate_step
from tests.helpers import cluster_of, make_scenario

# Llama-2-7B (HF LlamaForCausalLM): every dimension (4096, 11008, 32000) divides by 8, so each
# parameter's partition is exactly numel / 8.
LLAMA_P = 6_738_415_616
LLAMA_VOCAB_TABLE = 32_000 * 4_096  # embed_tokens and (untied) lm_head, each
LLAMA_NORMS = (2 * 32 + 1) * 4_096  # RMSNorm weights: two per block and the final one


def llama(framework="deepspeed", strategy="zero3", gpus=8, **training):
    t = {
        "framework": framework,
        "strategy": strategy,
        "seq_len": 4096,
        "dropout": False,
        **training,
    }
    return make_scenario(model={"preset": "llama2-7b"}, training=t, cluster=cluster_of(gpus))


def ops(step, op):
    return [c for c in step.collectives if c["op"] == op]


def test_zero3_model_states_match_deepspeeds_estimator():
    # estimate_zero3_model_states_mem_needs (stage3.py), no offload: 18 bytes per parameter / N on
    # each GPU = 2 (16-bit parameter partition) + 4 (fp32 master) + 8 (Adam m, v) + 4 (fp32
    # gradients). Here the fp32 gradients exist in the optimizer step (one sub_group_size tile,
    # 1e9 >= P/8), beside the 16-bit gradient partition DeepSpeed keeps in its flat buffer
    # (grad_partitions_flat_buffer), which the estimator does not count.
    s = llama()
    mem = memory_breakdown(s)
    local = LLAMA_P // 8
    assert (mem.params_bytes, mem.grads_bytes, mem.optimizer_bytes) == (
        2 * local,
        2 * local,
        12 * local,
    )
    from simulator.execution.frameworks import strategy_for
    from simulator.execution.layout import model_layout

    step_buffer = strategy_for(s.training).step_transient_bytes(s, model_layout(s.model), 2, 2)
    assert mem.params_bytes + mem.optimizer_bytes + step_buffer == 18 * LLAMA_P // 8


def test_zero3_static_buffers_are_the_ipg_bucket_and_the_persistent_parameters():
    # stage3.py allocates __ipg_bucket_flat_buffer of reduce_bucket_size (5e8) 16-bit elements
    # at start; norms (4,096 <= stage3_param_persistence_threshold 1e5) stay whole on every GPU.
    mem = memory_breakdown(llama())
    assert mem.static_buffers_bytes == 500_000_000 * 2 + LLAMA_NORMS * 2


def test_zero3_without_prefetch_or_reuse_holds_only_the_module_running():
    # stage3_prefetch_bucket_size 0 and stage3_max_reuse_distance 0: a module's parameters are
    # gathered at its hook and released after it. The peak is the head's backward (all
    # activations, the logits): its lm_head gathered, and the head's gradients (lm_head and the
    # final norm) before they go into the bucket.
    mem = memory_breakdown(
        llama(deepspeed={"stage3_prefetch_bucket_size": 0, "stage3_max_reuse_distance": 0})
    )
    assert mem.peak_op == "backward head"
    assert mem.buffers_bytes == mem.static_buffers_bytes + 2 * LLAMA_VOCAB_TABLE + 2 * (
        LLAMA_VOCAB_TABLE + 4_096
    )


def test_zero3_reduce_scatters_reduce_bucket_size_buckets():
    # Gradients fill 5e8-element buckets; one reduce-scatter per bucket: ceil(P / 5e8) = 14.
    s = llama()
    step = simulate_step(s, memory_breakdown(s))
    assert (
        sum(c["count"] for c in ops(step, "reduce_scatter"))
        == math.ceil(LLAMA_P / 500_000_000)
        == 14
    )
    # A bucket larger than the model: one reduce-scatter per micro-batch (ZeRO-3 reduces each).
    s = llama(grad_accum_steps=2, deepspeed={"reduce_bucket_size": 1e10})
    step = simulate_step(s, memory_breakdown(s))
    assert [c["count"] for c in ops(step, "reduce_scatter")] == [2]
    assert ops(step, "reduce_scatter")[0]["bytes"] == LLAMA_P * 2


def test_zero3_gathers_per_module_not_per_block():
    # FSDP gathers each block's FlatParameter (2 per block per step, and the root once); ZeRO-3
    # fetches modules (attention, MLP projections) and prefetches bundles of them, so its
    # all-gathers are more and smaller than a block.
    ds = llama()
    fsdp = llama(framework="pytorch-fsdp")
    ds_step, fsdp_step = (
        simulate_step(ds, memory_breakdown(ds)),
        simulate_step(fsdp, memory_breakdown(fsdp)),
    )
    block = 202_383_360  # 4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096
    assert sum(c["count"] for c in ops(fsdp_step, "all_gather")) == 2 * 32 + 1
    assert {c["bytes"] for c in ops(fsdp_step, "all_gather")} == {
        2 * block,
        2 * (2 * LLAMA_VOCAB_TABLE + 4_096),
    }
    gathers = ops(ds_step, "all_gather")
    assert sum(c["count"] for c in gathers) > 2 * 32 + 1
    assert max(c["bytes"] for c in gathers) < 2 * block * 2


def test_deepspeed_and_fsdp_differ_for_the_same_zero3_scenario():
    # Same model, GPUs and batch: different static buffers (FSDP: the unsharded root, parameters
    # and gradients; DeepSpeed: the IPG bucket and the persistent norms), different peaks and
    # step times.
    ds, fsdp = memory_breakdown(llama()), memory_breakdown(llama(framework="pytorch-fsdp"))
    root = 2 * LLAMA_VOCAB_TABLE + 4_096
    assert fsdp.static_buffers_bytes == root * (2 + 2)
    assert ds.static_buffers_bytes == 10**9 + 2 * LLAMA_NORMS
    assert ds.total_bytes != fsdp.total_bytes
    assert simulate_step(llama()).time_s != simulate_step(llama(framework="pytorch-fsdp")).time_s


@pytest.mark.parametrize("stage", ["zero1", "zero2"])
def test_zero12_all_reduce_their_buckets_by_default(stage):
    # average_tensor with reduce_scatter and use_multi_rank_bucket_allreduce (both default true):
    # dist.all_reduce of each reduce_bucket_size bucket; the updated 16-bit partition comes back
    # with one all_gather_into_tensor of the flat group (padded to a multiple of 2 x 8).
    s = llama(strategy=stage)
    step = simulate_step(s, memory_breakdown(s))
    reduces = ops(step, "all_reduce")
    assert not ops(step, "reduce_scatter")
    assert sum(c["count"] for c in reduces) == math.ceil(LLAMA_P / 500_000_000)
    assert max(c["bytes"] for c in reduces) <= 500_000_000 * 2
    assert [(c["count"], c["bytes"]) for c in ops(step, "all_gather")] == [
        (1, math.ceil(LLAMA_P / 16) * 16 * 2)
    ]


def test_zero12_reduce_scatter_without_multi_rank_bucket_allreduce():
    s = llama(strategy="zero2", deepspeed={"use_multi_rank_bucket_allreduce": False})
    step = simulate_step(s, memory_breakdown(s))
    assert ops(step, "reduce_scatter") and not ops(step, "all_reduce")


def test_zero12_communication_volume_is_three_psi_with_all_reduce():
    # Per step each GPU sends 2 Psi (n-1)/n elements in ring all-reduces and Psi (n-1)/n in the
    # weight all-gather: 3 Psi, against the ZeRO paper's 2 Psi with reduce-scatter.
    n = 8
    s = make_scenario(
        model={"params": 1.2e9, "num_layers": 24, "hidden_size": 2048},
        training={"framework": "deepspeed", "strategy": "zero2", "collective_algorithm": "ring"},
        cluster=cluster_of(n),
    )
    step = simulate_step(s, memory_breakdown(s))
    sent = sum(c["bytes_sent_per_rank"] * c["count"] for c in step.collectives)
    assert sent / 2 / (s.model.params * (n - 1) / n) == pytest.approx(3, rel=2e-3)


def test_zero12_overlap_comm_moves_the_reduction_off_the_compute_stream():
    # overlap_comm defaults to false for stages 1-2 (config.py overlap_comm_valid): the bucket
    # reductions run on the compute stream; true puts them on a side stream, with a second IPG
    # buffer (two alternate).
    off, on = llama(strategy="zero2"), llama(strategy="zero2", deepspeed={"overlap_comm": True})
    streams = {
        t.stream
        for t in simulate_step(off).classes[0].schedule.tasks
        if t.collective and t.collective.op == "all_reduce"
    }
    assert streams == {"compute"}
    streams = {
        t.stream
        for t in simulate_step(on).classes[0].schedule.tasks
        if t.collective and t.collective.op == "all_reduce"
    }
    assert streams == {"comm"}
    assert memory_breakdown(off).static_buffers_bytes == 500_000_000 * 2
    assert memory_breakdown(on).static_buffers_bytes == 2 * 500_000_000 * 2
