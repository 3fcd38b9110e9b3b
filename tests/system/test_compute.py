"""The roofline compute model, worked by hand: tile and wave quantization, the compute- and
memory-bound regimes, launch overhead, the end-to-end factor and stragglers."""

from __future__ import annotations

import dataclasses
import math

import pytest

from simulator.model.ops import Op
from simulator.system.compute import ComputeModel, gemm_quantization
from simulator.system.hardware import get_gpu

# The catalog A100 reads its GEMM shapes from a measured table (test_gemm_table.py); these
# hand calculations work the fallback for a GPU without one: tile and wave quantization.
_CATALOG_A100 = get_gpu("a100-80gb")
A100 = dataclasses.replace(
    _CATALOG_A100, efficiency=dataclasses.replace(_CATALOG_A100.efficiency, gemm_table="")
)
EFF = A100.efficiency


def gemm(m: int, n: int, k: int, batch: int = 1) -> Op:
    return Op(
        "g",
        "matmul",
        2.0 * m * n * k * batch,
        (m * k + k * n + m * n) * 2 * batch,
        (m, n, k),
        batch,
    )


def test_wave_quantization_by_hand():
    # 4096 x 4096 output in 128 x 128 tiles = 32 x 32 = 1,024 tiles; A100 has 108 SMs, so
    # ceil(1024 / 108) = 10 waves of 108 slots, of which 1,024 are used: 1024 / 1080.
    assert gemm_quantization(gemm(4096, 4096, 4096), A100) == pytest.approx(1024 / 1080)


def test_tile_quantization_by_hand():
    # m = 4,097 needs 33 tile rows: the useful fraction of the tiles is 4097 / (33 x 128);
    # 33 x 32 = 1,056 tiles fill ceil(1056 / 108) = 10 waves: 1056 / 1080.
    q = gemm_quantization(gemm(4097, 4096, 4096), A100)
    assert q == pytest.approx((4097 / (33 * 128)) * (1056 / 1080))


def test_batched_gemm_counts_every_tile():
    # 96 heads x (2048 x 2048 scores in 16 x 16 = 256 tiles) = 24,576 tiles: 228 waves of 108
    # hold 24,624 slots.
    assert gemm_quantization(gemm(2048, 2048, 128, batch=96), A100) == pytest.approx(24576 / 24624)


def test_compute_bound_gemm_time_by_hand():
    cm = ComputeModel(gpu=A100, gemm_dtype="bf16", attention_dtype="bf16")
    op = gemm(4096, 4096, 4096)
    flop_s = 2 * 4096**3 / (312e12 * EFF.gemm * (1024 / 1080))
    assert cm.op_time_s(op) == pytest.approx((EFF.kernel_launch_s + flop_s) / EFF.end_to_end)


def test_memory_bound_op_time_by_hand():
    cm = ComputeModel(gpu=A100, gemm_dtype="bf16", attention_dtype="bf16")
    op = Op("norm", "memory", 5.0 * 2**20, 2 * 2**30)  # reads and writes 2 GiB
    mem_s = 2 * 2**30 / (2039e9 * EFF.memory)
    assert cm.op_time_s(op) == pytest.approx((EFF.kernel_launch_s + mem_s) / EFF.end_to_end)


def test_thin_k_gemm_is_memory_bound():
    # m = n = 8192, k = 8: 2 x 8192^2 x 8 = 1.07 GFLOP on (2 x 8192 x 8 + 8192^2) x 2 bytes
    # = 134.5 MB, about 8 FLOP/byte, far below the A100 ridge point
    # (312e12 x 0.82 / (2039e9 x 0.83), about 150 FLOP/byte): the HBM term wins.
    cm = ComputeModel(gpu=A100, gemm_dtype="bf16", attention_dtype="bf16")
    op = gemm(8192, 8192, 8)
    mem_s = (2 * 8192 * 8 + 8192**2) * 2 / (2039e9 * EFF.memory)
    assert cm.op_time_s(op) == pytest.approx((EFF.kernel_launch_s + mem_s) / EFF.end_to_end)


def test_straggler_slowdown_scales_every_kernel():
    fast = ComputeModel(gpu=A100, gemm_dtype="bf16", attention_dtype="bf16")
    slow = ComputeModel(gpu=A100, gemm_dtype="bf16", attention_dtype="bf16", slowdown=1.5)
    op = gemm(1024, 1024, 1024)
    assert slow.op_time_s(op) == pytest.approx(1.5 * fast.op_time_s(op))
    assert math.isclose(fast.ops_time_s([op, op]), 2 * fast.op_time_s(op))
