"""The memory model's shortcuts give what the plain computation gives: the peak found from each
stage's distinct walk events (memory_peak.walk_events) equals a walk over every pass of the stage's
order; the memoized layouts, parameter units and activation formulas equal fresh ones."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.execution import layout, memory, memory_peak
from simulator.execution.frameworks import strategy_for
from simulator.execution.pipeline import stage_order
from simulator.model import activations as act_math
from simulator.model.architecture import _parameter_units, parameter_units
from simulator.scenario.load import derive
from tests.helpers import make_scenario


def _walked_peak(scenario, stage: int) -> memory_peak.Moment:
    """peak_moment as a walk over every pass of the stage's order (the reference)."""
    t, par = scenario.training, scenario.training.parallel
    strategy = strategy_for(t)
    pb, gb = t.precision.weight_bytes, t.precision.grad_bytes
    lay = layout.model_layout(scenario.model, par, stage)
    acts = layout.stage_activations(scenario, lay)
    static = strategy.static_buffer_bytes(scenario, lay, pb, gb)
    within = memory_peak._chunk_moments(scenario, strategy, lay, acts, static, pb, gb)
    live: dict[tuple[int, int], int] = {}
    total, best_bytes, best, carry = 0, -1, None, 0

    def consider(moment, extra):
        nonlocal best, best_bytes
        if moment is not None and total + moment.bytes + extra > best_bytes:
            best = (dataclasses.replace(moment, buffers_bytes=moment.buffers_bytes + extra), total)
            best_bytes = total + moment.bytes + extra

    for p in stage_order(scenario, stage):
        full, moment, edges = within[p.chunk]
        if p.forward:
            consider(edges[0], carry)
            live[p.micro_batch, p.chunk] = full
            total += full
            carry = 0
            continue
        total -= live.pop((p.micro_batch, p.chunk))
        consider(moment, 0)
        consider(edges[1], carry)
        carry = edges[2]
    assert best is not None
    moment, others = best
    moment = dataclasses.replace(moment, activations_bytes=moment.activations_bytes + others)
    step = strategy.step_transient_bytes(scenario, lay, pb, gb)
    if step and static + step > moment.bytes:
        return memory_peak.Moment(
            label="optimizer step",
            activations_bytes=0,
            buffers_bytes=static + step,
            static_buffers_bytes=static,
        )
    return moment


def _moe(**training):
    return make_scenario(
        model={"preset": "mixtral-8x7b"},
        training={
            "framework": "megatron",
            "strategy": "zero1",
            "seq_len": 4096,
            "micro_batch_size": 1,
            "global_batch_size": 256,
            "moe": {"dispatcher": "alltoall"},
            **training,
        },
        cluster={"topology": "h100-ndr-cluster", "num_hosts": 8},
    )


def _dense(framework: str = "megatron", strategy: str = "zero1"):
    return make_scenario(
        model={"preset": "llama2-7b"},
        training={
            "framework": framework,
            "strategy": strategy,
            "seq_len": 4096,
            "micro_batch_size": 1,
            "global_batch_size": 64,
        },
        cluster={"topology": "h100-ndr-cluster", "num_hosts": 4},
    )


def _pipelined(s, pp: int, v: int, schedule: str, m: int, ckpt: str = "none", more=None, **par):
    return derive(
        s,
        {
            **(more or {}),
            "training.global_batch_size": None,
            "training.grad_accum_steps": m,
            "training.activation_checkpointing": ckpt,
            "training.parallelism": {
                "pp": pp,
                **par,
                "pipeline": {"schedule": schedule, "virtual_stages": v},
            },
        },
    )


CASES = [
    (_moe, {"pp": 4, "v": 1, "schedule": "1f1b", "m": 8, "ep": 8}),
    (_moe, {"pp": 4, "v": 2, "schedule": "interleaved-1f1b", "m": 8, "ep": 4, "ckpt": "selective"}),
    (_moe, {"pp": 2, "v": 4, "schedule": "interleaved-1f1b", "m": 6, "ep": 8, "ckpt": "full"}),
    (_moe, {"pp": 4, "v": 1, "schedule": "gpipe", "m": 5, "ep": 2}),
    (_dense, {"pp": 4, "v": 1, "schedule": "1f1b", "m": 7}),
    (_dense, {"pp": 2, "v": 2, "schedule": "interleaved-1f1b", "m": 4, "ckpt": "selective"}),
    (_dense, {"pp": 1, "v": 1, "schedule": "1f1b", "m": 3, "ckpt": "full"}),
    # FSDP2 states pass edges (gradients a backward leaves in its last reduce-scatters).
    (lambda: _dense("pytorch-fsdp2", "zero3"), {"pp": 1, "v": 1, "schedule": "1f1b", "m": 4}),
    (
        lambda: _dense("pytorch-fsdp2", "zero3"),
        {"pp": 1, "v": 1, "schedule": "1f1b", "m": 2, "ckpt": "full"},
    ),
]


@pytest.mark.parametrize(("make", "shape"), CASES)
def test_peak_from_distinct_events_equals_the_walk_over_every_pass(make, shape):
    s = _pipelined(make(), **shape)
    for stage in range(s.training.parallel.pp):
        assert memory_peak.peak_moment(s, stage) == _walked_peak(s, stage)


def test_combined_1f1b_peak_equals_the_walk():
    # Validation allows the combined order without a pipeline (with pp > 1 it needs interleaving).
    more = {"training.moe.overlap": "1f1b"}
    s = _pipelined(_moe(), 1, 1, "1f1b", 8, more=more, ep=8)
    assert s.training.moe.overlap == "1f1b"
    for stage in range(1):
        assert memory_peak.peak_moment(s, stage) == _walked_peak(s, stage)


def test_memoized_layouts_units_and_activations_equal_fresh_ones():
    s = _pipelined(_moe(), 4, 2, "interleaved-1f1b", 8, ep=4, ckpt="selective")
    m, par = s.model, s.training.parallel
    fresh = layout._layouts.__wrapped__(m, *layout._layout_key(par))
    assert tuple(layout.model_layouts(m, par)) == fresh
    assert layout.model_layout(m, par, 3) == fresh[3]
    assert layout.model_layouts(m, par) is not layout.model_layouts(m, par)  # a list of its own
    arch = m.arch
    assert parameter_units(arch, 2, 4, 1) == list(_parameter_units.__wrapped__(arch, 2, 4, 1))
    kw = {
        "seq_len": 4096,
        "micro_batch": 2,
        "flash_attention": True,
        "tp": 2,
        "sp": True,
        "index": 1,
        "ep": 4,
    }
    for ckpt in ("none", "selective", "full"):
        assert act_math.activation_bytes_per_layer(
            arch, checkpointing=ckpt, **kw
        ) == act_math.activation_bytes_per_layer.__wrapped__(arch, checkpointing=ckpt, **kw)
    for stage, lay in enumerate(fresh):
        reps, kind_of = lay.kinds
        assert [reps[k].kind for k in kind_of] == [b.kind for b in lay.blocks]
        assert memory.stage_memory(s)[stage].stage == stage
