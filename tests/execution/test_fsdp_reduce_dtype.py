"""PyTorch FSDP1's MixedPrecision reduce_dtype (training.zero3.reduce_dtype): the post-backward
hook casts each unsharded gradient to it on the post-backward stream, the reduce-scatter moves
reduce_dtype bytes, and the computed gradient stays beside the cast copy until the
reduce-scatter ends (torch/distributed/fsdp/_runtime_utils.py `_post_backward_hook`).
Sizes worked out by hand on the small GPT of test_fsdp2."""

from __future__ import annotations

import math

import pytest

from simulator.core.errors import UserError
from simulator.execution.memory import memory_breakdown
from simulator.execution.step import simulate_step
from tests.execution.frameworks.test_fsdp2 import BLOCK, ROOT, N, scenario

# FSDP1 pads each FlatParameter to a multiple of the world size.
BLOCK_PADDED = math.ceil(BLOCK / N) * N
ROOT_PADDED = math.ceil(ROOT / N) * N


def reduce_scatters(step) -> dict[int, int]:
    return {c["bytes"]: c["count"] for c in step.collectives if c["op"] == "reduce_scatter"}


def test_default_reduces_in_the_gradients_bf16_without_a_cast():
    step = simulate_step(scenario("pytorch-fsdp"))
    assert reduce_scatters(step) == {BLOCK_PADDED * 2: 2, ROOT_PADDED * 2: 1}
    assert not [t for t in step.classes[0].schedule.tasks if "cast gradient" in t.name]


def test_fp32_reduce_doubles_the_reduce_scatter_after_a_cast_on_its_stream():
    step = simulate_step(scenario("pytorch-fsdp", zero3={"reduce_dtype": "fp32"}))
    assert reduce_scatters(step) == {BLOCK_PADDED * 4: 2, ROOT_PADDED * 4: 1}
    tasks = step.classes[0].schedule.tasks
    casts = [t for t in tasks if "cast gradient" in t.name]
    assert len(casts) == 3 and {t.stream for t in casts} == {"comm_rs"}
    # The cast reads 2 and writes 4 bytes per element: at least that over the A100's 2.039 TB/s.
    block_cast = next(t for t in casts if "layers.0" in t.name)
    assert block_cast.duration_s >= BLOCK_PADDED * 6 / 2.039e12
    # Its fp32 copy is allocated by the cast and freed, with the bf16 gradient (held since the
    # block's backward), when the reduce-scatter ends.
    rs = next(t for t in tasks if t.name == block_cast.name.replace("cast gradient for ", ""))
    assert block_cast.alloc_bytes == BLOCK_PADDED * 4
    assert rs.free_bytes == BLOCK * 2 + BLOCK_PADDED * 4
    assert tasks.index(block_cast) in rs.deps


def test_fp32_reduce_holds_the_gradient_in_flight_twice_at_the_peak():
    # Two blocks: at block 0's backward, block 1's gradient is being reduce-scattered: 2 bytes
    # per element by default, 2 (as computed) + 4 (cast) with fp32 reduction.
    base = memory_breakdown(scenario("pytorch-fsdp"))
    fp32 = memory_breakdown(scenario("pytorch-fsdp", zero3={"reduce_dtype": "fp32"}))
    assert fp32.buffers_bytes - base.buffers_bytes == BLOCK * 4
    assert fp32.grads_bytes == base.grads_bytes  # the sharded gradient keeps its dtype


def test_reduce_dtype_is_an_fsdp1_option():
    with pytest.raises(UserError) as e:
        scenario("pytorch-fsdp2", zero3={"reduce_dtype": "fp32"})
    assert any(
        p.path == "training.zero3.reduce_dtype" and "fsdp2.reduce_dtype" in p.hint
        for p in e.value.problems
    )
    with pytest.raises(UserError) as e:
        scenario("pytorch-fsdp", zero3={"reduce_dtype": "fp64"})
    assert any(p.path == "training.zero3.reduce_dtype" for p in e.value.problems)
