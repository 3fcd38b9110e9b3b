"""GEMM efficiency by shape from the shipped per-shape tables: measured points are returned as
measured, interpolation stays between its neighbours, sizes outside the table follow the
documented rule, and held-out points are predicted from their neighbours."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.model.ops import Op
from simulator.system.compute import ComputeModel, gemm_quantization
from simulator.system.hardware import get_gpu
from simulator.system.hardware.gemm_table import (
    GEMM_TABLES,
    gemm_table,
    held_out_errors,
    parse_table,
)

H100 = get_gpu("h100-sxm-80gb")
A100 = get_gpu("a100-80gb")


def gemm(m: int, n: int, k: int, batch: int = 1) -> Op:
    return Op("g", "matmul", 2.0 * m * n * k * batch, (m * k + k * n + m * n) * 2, (m, n, k), batch)


def test_every_catalog_table_loads_with_its_source():
    for name in GEMM_TABLES:
        table = gemm_table(name)
        assert "bf16" in table.dtypes
        assert ("OpenXLA" in table.source) or ("SimuMax" in table.source)


def test_a_measured_shape_is_returned_as_measured():
    # OpenXLA sm_90 table: b=1, m=n=k=4096 bf16 at 780.19 TFLOP/s; its best bf16 row is
    # b=4, m=4096, n=2048, k=4096 at 804.72 TFLOP/s.
    table = gemm_table("h100-sxm-xla")
    assert table.relative("bf16", 4096, 4096, 4096) == pytest.approx(780.19 / 804.72, rel=1e-4)


def test_shapes_measured_under_several_layouts_take_their_geometric_mean():
    text = "# t\nb,m,n,k,bf16_tflops\n1,512,512,512,100\n1,512,512,512,400\n1,1024,1024,1024,800\n"
    table = parse_table("t", text)
    assert table.relative("bf16", 512, 512, 512) == pytest.approx(200 / 800)


def test_an_unmeasured_dtype_has_no_table_value():
    assert gemm_table("h100-sxm-xla").relative("fp8", 4096, 4096, 4096) is None


def test_below_the_smallest_size_the_kernel_takes_as_long():
    # m = 128 is half the smallest measured m (256): the same kernel time for half the work.
    table = gemm_table("h100-sxm-xla")
    full = table.relative("bf16", 256, 1024, 1024)
    assert table.relative("bf16", 128, 1024, 1024) == pytest.approx(full / 2)


def test_above_the_largest_size_the_throughput_stays_at_the_edge():
    table = gemm_table("h100-sxm-xla")
    edge = table.relative("bf16", 4096, 4096, 4096)
    assert table.relative("bf16", 65536, 4096, 4096) == pytest.approx(edge)


@settings(max_examples=60, deadline=None)
@given(st.floats(8.0, 12.0), st.floats(8.0, 12.0), st.floats(8.0, 12.0))
def test_interpolation_stays_within_the_table(lm, ln, lk):
    table = gemm_table("b200-xla")
    rel = table.relative("bf16", int(2**lm), int(2**ln), int(2**lk))
    vals = 2.0 ** (table.log_tflops["bf16"] - table.log_tflops["bf16"].max())
    assert rel is not None and vals.min() * 0.999 <= rel <= 1.0


@pytest.mark.parametrize(
    ("name", "median_bound"), [("h100-sxm-xla", 0.08), ("a100-pcie-simumax", 0.05)]
)
def test_held_out_points_are_predicted_from_their_neighbours(name, median_bound):
    # Leave each measured point of training-sized GEMMs (m, n, k >= 1024) out and predict it
    # from the rest: the median error bounds what interpolating between measured shapes costs
    # (the XLA grid steps by 2x per dimension, so this is its worst spacing).
    errors, training_sized = held_out_errors(gemm_table(name), "bf16")
    assert np.median(errors[training_sized]) < median_bound


def test_a_table_gpu_runs_the_ceiling_times_the_shape():
    cm = ComputeModel(gpu=H100, gemm_dtype="bf16", attention_dtype="bf16")
    rel = 780.19 / 804.72
    assert cm.gemm_efficiency(gemm(4096, 4096, 4096)) == pytest.approx(
        H100.efficiency.gemm * rel, rel=1e-4
    )


def test_without_a_table_the_shape_is_tile_and_wave_quantization():
    bare = dataclasses.replace(A100, efficiency=dataclasses.replace(A100.efficiency, gemm_table=""))
    cm = ComputeModel(gpu=bare, gemm_dtype="bf16", attention_dtype="bf16")
    op = gemm(4096, 4096, 4096)
    assert cm.gemm_efficiency(op) == pytest.approx(
        A100.efficiency.gemm * gemm_quantization(op, A100)
    )


def test_fp8_on_hopper_falls_back_to_quantization():
    # The sm_90 table's fp8 rows are left out (they exceed the dense fp8 peak).
    cm = ComputeModel(gpu=H100, gemm_dtype="fp8", attention_dtype="bf16")
    op = gemm(4096, 4096, 4096)
    assert cm.gemm_efficiency(op) == pytest.approx(
        H100.efficiency.gemm_for("fp8") * gemm_quantization(op, H100)
    )
