"""The report's warning when the simulated step peaks above the analytic verdict."""

from __future__ import annotations

import pytest

from simulator.studies.simulate import simulate
from tests.helpers import cluster_of, make_scenario


def _hsdp(hidden: int, seq: int, gpu: str | None = None):
    # HSDP with 2-way sharding on 8 GPUs: each block's reduce-scatter is followed by an
    # all-reduce across replicas on the same stream.
    return make_scenario(
        model={
            "architecture": {
                "num_layers": 5,
                "hidden_size": hidden,
                "num_heads": hidden // 64,
                "vocab_size": 1000,
                "max_position_embeddings": seq,
            }
        },
        training={
            "strategy": "hsdp",
            "shard_group_size": 2,
            "micro_batch_size": 1,
            "seq_len": seq,
            "activation_checkpointing": "none",
            "flash_attention": False,
        },
        cluster=cluster_of(8, gpu),
    )


def test_a_timeline_above_the_verdict_is_reported():
    # Short blocks (sequence 128) on H100s: communication is slower than compute, so
    # reduce-scatters queue and hold their gradients longer than the analytic walk's one in
    # flight. (Tiny GEMMs take as long as the smallest measured shape: hidden 4096 keeps the
    # gradients large enough for the network to fall behind.)
    report = simulate(_hsdp(4096, 128, "h100-sxm-80gb"), goodput=False)
    mem = report["memory"]
    assert mem["timeline_peak_bytes"] > mem["per_gpu"]["total_bytes"]
    assert any("above the analytic verdict" in w for w in report["warnings"])


def test_no_warning_when_the_timeline_is_within_the_verdict():
    report = simulate(make_scenario(), goodput=False)
    assert report["memory"]["timeline_peak_bytes"] <= report["memory"]["per_gpu"]["total_bytes"]
    assert not any("analytic verdict" in w for w in report["warnings"])


def test_the_step_breakdown_in_the_json():
    report = simulate(make_scenario(), goodput=False, interval=False)
    step = report["step"]
    bd = step["breakdown"]
    rows = ["gemm_s", "attention_s", "memory_s", "optimizer_s", "overhead_s", "interference_s"]
    rows += ["exposed_comm_s", "other_s"]
    assert set(bd) == {*rows, "stage", "other_clamped_s", "optimizer_offloaded", "sources"}
    assert sum(bd[k] for k in rows) == pytest.approx(step["time_s"], rel=1e-9)
    assert bd["exposed_comm_s"] == step["exposed_comm_s"]
    assert set(bd["sources"]) == {"gemm", "attention", "memory"}
    assert not bd["optimizer_offloaded"] and bd["other_clamped_s"] == 0
