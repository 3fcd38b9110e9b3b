"""Tensor-parallel communication overlapped with GEMMs (execution/tp_overlap.py): the three
methods' times worked by hand, the GEMMs found beside each point, and the effect on a step."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.execution.metrics import step_metrics
from simulator.execution.step import simulate_step
from simulator.execution.tp_overlap import (
    BULK,
    PIPELINE,
    RING,
    exposed_s,
    overlap_gemms,
)
from simulator.model.ops import backward_ops
from simulator.model.ops_common import Op
from tests.helpers import make_scenario

MS = 1e-3


def test_ring_exchange_hides_the_all_gather_behind_a_longer_gemm():
    # tp 4: 4 GEMM chunks of 1 ms, 3 exchanges of c / 3. c = 1.5 ms: each exchange 0.5 ms,
    # under its 1 ms chunk: T = 1 + 3 x 1 = 4 ms = g, nothing exposed.
    assert exposed_s(RING, 1.5 * MS, 4 * MS, 4, 132) == pytest.approx(0.0, abs=1e-15)
    # c = 6 ms: each exchange 2 ms: T = 1 + 3 x 2 = 7 ms, 3 ms exposed (c - g x 3/4).
    assert exposed_s(RING, 6 * MS, 4 * MS, 4, 132) == pytest.approx(3 * MS)


def test_pipeline_runs_the_gemm_on_the_sms_the_reduce_scatter_leaves():
    # 4 splits, 16 of 132 SMs held: each GEMM chunk 1 ms x 132/116 = 1.13793 ms; the
    # reduce-scatter's chunks 0.5 ms hide under them but the last: T = 4 x 1.13793 + 0.5.
    chunk = 1.0 * 132 / 116
    assert exposed_s(PIPELINE, 2 * MS, 4 * MS, 8, 132) == pytest.approx((4 * chunk + 0.5 - 4) * MS)


def test_bulk_slows_the_gemm_while_the_collective_holds_sms():
    # 16 of 132 SMs for the 2 ms collective: the GEMM loses 2 x 16/132 ms of progress.
    assert exposed_s(BULK, 2 * MS, 4 * MS, 8, 132) == pytest.approx(2 * 16 / 132 * MS)
    # A collective longer than the slowed GEMM: T = c.
    assert exposed_s(BULK, 10 * MS, 4 * MS, 8, 132) == pytest.approx(6 * MS)


@pytest.mark.parametrize("method", [RING, PIPELINE, BULK])
def test_nothing_to_hide_behind_leaves_the_whole_collective(method):
    assert exposed_s(method, 3 * MS, 0.0, 4, 132) == pytest.approx(3 * MS)


class _FlopsClock:
    """A compute model where an op takes its FLOPs in microseconds."""

    def ops_time_s(self, ops):
        return sum(op.flops for op in ops) * 1e-6


def _gemm(name: str, flops: float) -> Op:
    return Op(name, "matmul", flops, 0, (1, 1, 1))


def _attention_sublayer() -> list[Op]:
    return [
        Op("norm", "norm", 1, 1),
        _gemm("q", 10),
        _gemm("k", 2),
        _gemm("v", 2),
        Op("rope", "rope", 1, 1),
        Op("core", "attention", 50, 1),
        _gemm("o", 8),
        Op("residual", "residual", 1, 1),
    ]


def test_the_gemms_beside_each_point_of_a_sublayer():
    fwd = _attention_sublayer()
    near = overlap_gemms(_FlopsClock(), fwd, backward_ops(fwd))
    # forward: q, k, v after the all-gather (14 us); o before the reduce-scatter (8 us)
    assert near.fwd_before_s == pytest.approx(14e-6)
    assert near.fwd_after_s == pytest.approx(8e-6)
    # backward: o's input gradient after the all-gather (8 us); the reduce-scatter of the
    # input gradient beside q, k, v's weight gradients (14 us)
    assert near.bwd_before_s == pytest.approx(8e-6)
    assert near.bwd_after_s == pytest.approx(14e-6)


def test_a_frozen_base_leaves_the_input_gradients_reduce_scatter_exposed():
    # LoRA: q, k, v frozen have no weight gradient to hide it behind (TE's ub_overlap_rs_dgrad
    # is off by default, and in MLPerf's LoRA configs)
    fwd = _attention_sublayer()
    bwd = backward_ops(fwd, frozen=frozenset({"q", "k", "v"}))
    near = overlap_gemms(_FlopsClock(), fwd, bwd)
    assert near.bwd_after_s == 0.0
    assert exposed_s(BULK, 3 * MS, near.bwd_after_s, 4, 132) == pytest.approx(3 * MS)


def _llama_tp8(overlap: bool):
    return make_scenario(
        model={"preset": "llama2-70b"},
        training={
            "strategy": "zero1",
            "framework": "megatron",
            "micro_batch_size": 1,
            "seq_len": 4096,
            "grad_accum_steps": 2,
            "activation_checkpointing": "selective",
            "flash_attention": True,
            "parallelism": {
                "tp": 8,
                "pp": 4,
                "sequence_parallel": True,
                "tp_comm_overlap": overlap,
            },
        },
        cluster={"topology": "dgx-h100", "num_hosts": 4},
    )


def test_the_overlap_shortens_the_step_by_at_most_its_tensor_parallel_communication():
    off, on = _llama_tp8(False), _llama_tp8(True)
    r_off, r_on = simulate_step(off), simulate_step(on)

    def inline_s(r) -> float:
        return sum(t.inline_comm_s for rc in r.classes for t in rc.schedule.tasks)

    saved = step_metrics(off, r_off).time_s - step_metrics(on, r_on).time_s
    assert 0 < inline_s(r_on) < inline_s(r_off)
    assert 0 < saved <= inline_s(r_off) - inline_s(r_on) + 1e-9


def test_the_overlap_needs_sequence_parallelism():
    with pytest.raises(UserError, match="tp_comm_overlap"):
        make_scenario(
            training={"parallelism": {"tp": 2, "tp_comm_overlap": True}},
            cluster={"topology": "dgx-a100", "num_gpus": 2},
        )
