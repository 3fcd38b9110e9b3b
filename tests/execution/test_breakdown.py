"""One GPU's step by op class: kernel times worked out by hand on a tiny model with a stand-in
compute model whose GEMMs run at a round rate, and properties of real steps (the rows tile the
step; their compute is what the engine schedules; exposed communication is the metrics')."""

from __future__ import annotations

import pytest

from simulator.execution import breakdown as breakdown_mod
from simulator.execution import step as step_mod
from simulator.execution.breakdown import ROWS, framework_kernels_s, pass_classes, step_breakdown
from simulator.execution.memory import stage_memory
from simulator.execution.metrics import step_metrics
from simulator.execution.opclass import class_times, op_split
from simulator.execution.pipeline import stage_order
from simulator.execution.step import compute_model, simulate_step
from simulator.execution.strategies.common import stage_work
from simulator.model.ops import Op
from simulator.system.compute import ComputeModel
from tests.helpers import cluster_of, make_scenario

RATE = 1e14  # FLOP/s of every GEMM and attention kernel: "peak x efficiency" of the stand-in
BW = 1e12  # bytes/s of every memory-bound kernel
LAUNCH = 1e-5  # fixed seconds per kernel


class RoundClock(ComputeModel):
    """A compute model with round numbers: launch + FLOPs / RATE (or bytes / BW)."""

    def op_time_s(self, op: Op) -> float:
        return LAUNCH + (op.bytes_moved / BW if op.kind == "memory" else op.flops / RATE)

    def launch_overhead_s(self, op: Op) -> float:
        return LAUNCH


# A 2-layer GPT (gelu MLP, learned positions, tied embedding, final norm), hidden 256 in 4 heads
# of 64, MLP 1024, vocabulary 1000; micro-batches of 2 x 128 tokens, no dropout.
L, H, F, V, S, B = 2, 256, 1024, 1000, 128, 2
T = B * S  # 256 tokens per micro-batch
TINY = {
    "architecture": {
        "num_layers": L,
        "hidden_size": H,
        "num_heads": 4,
        "ffn_hidden_size": F,
        "vocab_size": V,
        "max_position_embeddings": S,
    }
}
# Forward GEMMs of a block: QKV (T x 3H x H), output projection (T x H x H), MLP up (T x F x H)
# and down (T x H x F), 2 m n k FLOPs each: 2 x 256 x (4 x 256^2 + 2 x 256 x 1024) = 402,653,184.
BLOCK_GEMM_FLOPS = 2 * T * (3 * H * H + H * H + H * F + F * H)
HEAD_GEMM_FLOPS = 2 * T * V * H  # the logits: 131,072,000
# Causal flash attention skips half of 4 b s^2 h: 2 x 2 x 128^2 x 256 = 16,777,216 FLOPs; its
# backward does 2.5x that.
FLASH_FLOPS = 2 * B * S * S * H
# Kernels of one micro-batch: a block's forward is 2 norms, 4 GEMMs, flash attention, the
# activation and 2 residual adds (10); its backward doubles each GEMM (14); full recomputation
# re-runs the forward (10). The embedding is 1 kernel each way; the head's final norm, logits
# and cross-entropy are 3 forward and 4 backward (dgrad and wgrad of the logits).
KERNELS_PER_MICRO_BATCH = {"none": L * (10 + 14) + 2 + 7, "full": L * (10 + 14 + 10) + 2 + 7}


def tiny(checkpointing: str = "none", accum: int = 2, strategy: str = "ddp"):
    return make_scenario(
        TINY,
        {
            "strategy": strategy,
            "micro_batch_size": B,
            "seq_len": S,
            "grad_accum_steps": accum,
            "activation_checkpointing": checkpointing,
            "flash_attention": True,
            "dropout": False,
        },
        cluster_of(2),
    )


def clock(scenario) -> RoundClock:
    cm = compute_model(scenario)
    return RoundClock(gpu=cm.gpu, gemm_dtype=cm.gemm_dtype, attention_dtype=cm.attention_dtype)


def test_op_split_sums_to_the_op_time():
    cm = clock(tiny())
    op = Op("x", "matmul", 2e9, 10**6, (1024, 1024, 1024))
    assert op_split(cm, op) == pytest.approx((2e9 / RATE, LAUNCH))
    assert sum(op_split(cm, op)) == pytest.approx(cm.op_time_s(op))


def test_class_times_sorts_ops_by_kind():
    cm = clock(tiny())
    ops = [
        Op("g", "matmul", 1e12, 0, (128, 128, 128)),
        Op("a", "attention", 3e12, 0),
        Op("m", "memory", 0.0, 5 * 10**12),
    ]
    got = class_times(cm, ops)
    assert (got.gemm_s, got.attention_s, got.memory_s) == pytest.approx((0.01, 0.03, 5.0))
    assert got.overhead_s == pytest.approx(3 * LAUNCH)
    assert got.total_s == pytest.approx(cm.ops_time_s(ops))


@pytest.mark.parametrize("checkpointing", ["none", "full"])
def test_stage_kernels_by_class_by_hand(checkpointing):
    s, accum = tiny(checkpointing, accum=3), 3
    got = pass_classes(stage_work(s, clock(s), 0), stage_order(s, 0))
    # Forward 1x, backward 2x the forward GEMM FLOPs; full recomputation runs the forward again.
    passes = 4 if checkpointing == "full" else 3
    gemm = accum * (L * passes * BLOCK_GEMM_FLOPS + 3 * HEAD_GEMM_FLOPS) / RATE
    attention = accum * L * ((2 if checkpointing == "full" else 1) + 2.5) * FLASH_FLOPS / RATE
    assert got.gemm_s == pytest.approx(gemm, rel=1e-12)
    assert got.attention_s == pytest.approx(attention, rel=1e-12)
    assert got.overhead_s == pytest.approx(accum * KERNELS_PER_MICRO_BATCH[checkpointing] * LAUNCH)


def test_full_checkpointing_gemm_is_four_forward_passes_per_layer():
    # (1 forward + 1 recompute + 2 backward) x a layer's forward GEMM time, per micro-batch.
    s = tiny("full", accum=1)
    chunk = stage_work(s, clock(s), 0)[0]
    for block in chunk.blocks:
        per_layer = block.fwd_classes.gemm_s + block.recompute_classes.gemm_s
        per_layer += block.bwd_classes.gemm_s
        assert per_layer == pytest.approx(4 * BLOCK_GEMM_FLOPS / RATE, rel=1e-12)


@pytest.fixture
def round_clock(monkeypatch):
    """The step and the breakdown both on the round-number compute model."""

    def make(scenario, slowdown=1.0):
        cm = clock(scenario)
        return RoundClock(
            gpu=cm.gpu,
            gemm_dtype=cm.gemm_dtype,
            attention_dtype=cm.attention_dtype,
            slowdown=slowdown,
        )

    monkeypatch.setattr(step_mod, "compute_model", make)
    monkeypatch.setattr(breakdown_mod, "compute_model", make)


def test_a_step_with_full_checkpointing_by_hand(round_clock):
    s, accum = tiny("full", accum=2), 2
    step = simulate_step(s, stage_memory(s))
    bd = step_breakdown(s, step)
    assert bd.gemm_s == pytest.approx(
        accum * (L * 4 * BLOCK_GEMM_FLOPS + 3 * HEAD_GEMM_FLOPS) / RATE, rel=1e-12
    )
    assert bd.attention_s == pytest.approx(accum * L * 4.5 * FLASH_FLOPS / RATE, rel=1e-12)
    # DDP's AdamW (torch.optim's default foreach) updates every parameter in eight passes over
    # the fp32 parameter p, gradient g and states s (4 bytes each): decay 2p, first moment
    # 2s + g, second moment 2s and 2s + g, the denominator's sqrt, div and add 2s each, addcdiv
    # 2p + 2s: 80 bytes. Gradient clipping (on by default) first reads every gradient the
    # optimizer sees, fp32 under mixed precision, for the norm (4 bytes) and then scales it
    # (read and write, 8 bytes), as torch's clip_grad_norm_: 92 bytes, in three kernels (norm,
    # scale, update).
    assert bd.optimizer_s == pytest.approx(s.model.params * 92 / BW, rel=1e-12)
    assert bd.overhead_s == pytest.approx((accum * KERNELS_PER_MICRO_BATCH["full"] + 3) * LAUNCH)
    assert bd.compute_s == pytest.approx(step.compute_s, rel=1e-9)
    assert sum(seconds for _k, _l, seconds in bd.rows()) == pytest.approx(step.time_s, rel=1e-9)


def test_a_pipeline_breaks_down_its_slowest_stage_by_hand(round_clock):
    # 1F1B over 2 stages of one block each: the last stage also runs the head (the logits), so
    # it is the slowest; it runs 4 micro-batches' forward and backward.
    s = make_scenario(
        TINY,
        {
            "strategy": "ddp",
            "micro_batch_size": B,
            "seq_len": S,
            "grad_accum_steps": 4,
            "flash_attention": True,
            "dropout": False,
            "parallelism": {"pp": 2},
        },
        cluster_of(2),
    )
    step = simulate_step(s, stage_memory(s))
    bd = step_breakdown(s, step)
    assert bd.stage == 1
    assert bd.gemm_s == pytest.approx(4 * 3 * (BLOCK_GEMM_FLOPS + HEAD_GEMM_FLOPS) / RATE)
    assert bd.compute_s == pytest.approx(max(step.compute_busy_s), rel=1e-9)
    assert bd.other_s > 0  # the last stage waits for the first's forwards (the bubble)


# A small model through each kind of schedule: strategies, frameworks (FSDP2 adds copy kernels,
# DeepSpeed ZeRO-3 times sub-layers apart), pipelines with tensor parallelism, recomputation.
SMALL = {"preset": "gpt3-125m", "vocab_size": 50432}  # padded for tp 2
CASES = {
    "ddp accum 2": ({"strategy": "ddp", "grad_accum_steps": 2}, 4),
    "zero3 selective": ({"strategy": "zero3", "activation_checkpointing": "selective"}, 4),
    "fsdp2": ({"strategy": "zero3", "framework": "pytorch-fsdp2"}, 4),
    "deepspeed zero3 full": (
        {"strategy": "zero3", "framework": "deepspeed", "activation_checkpointing": "full"},
        4,
    ),
    "tp2 pp2 1f1b": (
        {
            "strategy": "ddp",
            "grad_accum_steps": 4,
            "parallelism": {"tp": 2, "pp": 2, "sequence_parallel": True},
        },
        8,
    ),
    "pp2 interleaved": (
        {
            "strategy": "ddp",
            "grad_accum_steps": 4,
            "parallelism": {
                "pp": 2,
                "pipeline": {"schedule": "interleaved-1f1b", "virtual_stages": 2},
            },
        },
        4,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rows_tile_the_step_and_compute_is_the_engines(case):
    training, gpus = CASES[case]
    s = make_scenario(SMALL, {"seq_len": 1024, **training}, cluster_of(gpus))
    step = simulate_step(s, stage_memory(s))
    bd = step_breakdown(s, step)
    rows = {key: seconds for key, _label, seconds in bd.rows()}
    assert list(rows) == [key for key, _label in ROWS]
    assert all(seconds >= 0 for seconds in rows.values())
    assert bd.other_clamped_s == 0
    assert sum(rows.values()) == pytest.approx(step.time_s, rel=1e-9)
    assert bd.exposed_comm_s == step_metrics(s, step).exposed_comm_s
    # The analytic kernels, plus what collectives holding SMs added, are the compute stream's
    # busy time (no stragglers, no jitter); data-parallel traffic overlaps the backward.
    assert bd.compute_s == pytest.approx(step.compute_s, rel=1e-9)
    assert bd.interference_s > 0
    assert bd.gemm_s > bd.attention_s > 0 and bd.memory_s > 0 and bd.optimizer_s > 0
    sources = compute_model(s).kernel_sources()
    assert {k: v for k, v in bd.sources.items() if k != "memory"} == {
        k: v for k, v in sources.items() if k != "memory"
    }
    # The memory-bound class names the implementation's kernels (model/kernels.py).
    assert bd.sources["memory"].startswith(sources["memory"])
    assert f"as {s.training.kernels} kernels" in bd.sources["memory"]
    # FSDP2 copies the all-gather's output into the parameters on the compute stream.
    copies = framework_kernels_s(step.classes[0].schedule)
    assert (copies > 0) == (case == "fsdp2")


def test_offloaded_optimizer_is_its_cpu_step_and_copies():
    s = make_scenario(
        SMALL,
        {"strategy": "zero2", "offload": {"optimizer": "cpu"}, "seq_len": 1024},
        cluster_of(4),
    )
    step = simulate_step(s, stage_memory(s))
    bd = step_breakdown(s, step)
    tasks = step.classes[0].schedule.tasks
    moved = [t.duration_s for t in tasks if t.name.startswith("offload: ")]
    assert len(moved) == 3 and not bd.optimizer_on_gpu
    assert bd.optimizer_s == pytest.approx(sum(moved), rel=1e-12)
    # Off the compute stream: the compute rows without it are the engine's compute.
    assert bd.compute_s == pytest.approx(step.compute_s, rel=1e-9)
    total = sum(seconds for _k, _l, seconds in bd.rows())
    assert total - bd.other_clamped_s == pytest.approx(step.time_s, rel=1e-9)
