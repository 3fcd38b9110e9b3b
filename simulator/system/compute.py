"""Roofline time of each kernel on a GPU, with the catalog's achievable-efficiency factors.

time(op) = [launch + max(flops / (peak(dtype) x efficiency), bytes / (HBM bw x memory efficiency))]
           / end_to_end

An attention kernel's efficiency comes from the GPU's attention table by kernel, sequence length,
masking and pass where it has one (hardware/attention_table.py), else its single fraction.

A GEMM's efficiency is the GPU's best-shape ceiling times its shape's throughput relative to
the best, read from a per-shape table measured on that GPU family (hardware/gemm_table.py).
Without a table, the shape dependence is tile and wave quantization: cuBLAS splits C[m, n]
into output tiles (128 x 128 here) and runs them in waves of one tile per SM; a partly
filled last wave or partly filled tiles do no useful work (NVIDIA Deep Learning Performance
Guide, "Matrix Multiplication Background", sections on tile and wave quantization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.model.ops import Op
from simulator.system.hardware import GPU
from simulator.system.hardware.attention_table import attention_table
from simulator.system.hardware.gemm_table import gemm_table

# cuBLAS / CUTLASS's common large-GEMM output tile (NVIDIA "Matrix Multiplication
# Background" guide, Sec. "Tile quantization": 256x128 and 128x128 tiles are typical).
TILE_M = 128
TILE_N = 128


@dataclass(frozen=True, kw_only=True)
class ComputeModel:
    """A GPU and the datatypes one precision computes in (model/precision.py)."""

    gpu: GPU
    gemm_dtype: str
    attention_dtype: str
    slowdown: float = 1.0  # straggler factor: every kernel takes this many times longer
    # Under a power cap (hardware/power.py `cap_clocks`): the SM clock of compute-bound work
    # as a fraction of the uncapped one (its FLOP time goes as 1 / clock), and the memory-bound
    # time's factor (HBM keeps its own clock: a small part of it follows the SM clock).
    clock: float = 1.0
    memory_slowdown: float = 1.0
    # The fused attention kernel (spec/specs.py ATTENTION_KERNELS); timed from the
    # GPU's attention table where it has one, else at the GPU's single attention fraction.
    attention_kernel: str = "flash-attention-2"

    def op_time_s(self, op: Op) -> float:
        eff = self.gpu.efficiency
        mem_s = op.bytes_moved / (self.gpu.hbm_bw_bytes_per_s * eff.memory) * self.memory_slowdown
        if op.kind == "matmul":
            flop_s = op.flops / (self.gpu.peak(self.gemm_dtype) * self.gemm_efficiency(op))
            flop_s /= self.clock
        elif op.kind == "attention":
            flop_s = op.flops / (
                self.gpu.peak(self.attention_dtype) * self.attention_efficiency(op)
            )
            flop_s /= self.clock
        else:
            flop_s = 0.0  # memory-bound kernels: their FLOPs are negligible beside their bytes
        return self.slowdown * (eff.kernel_launch_s + max(flop_s, mem_s)) / eff.end_to_end

    def launch_overhead_s(self, op: Op) -> float:
        """The per-kernel fixed part of `op_time_s(op)` (launch and inter-kernel gap)."""
        eff = self.gpu.efficiency
        return self.slowdown * eff.kernel_launch_s / eff.end_to_end

    def gemm_efficiency(self, op: Op) -> float:
        """Achieved / peak FLOP/s of one GEMM of this shape in the GEMM datatype."""
        assert op.gemm is not None, "a matmul op carries its GEMM shape"
        eff = self.gpu.efficiency
        ceiling = eff.gemm_for(self.gemm_dtype)
        if eff.gemm_table:
            m, n, k = op.gemm
            rel = gemm_table(eff.gemm_table).relative(self.gemm_dtype, m, n, k, op.batch)
            if rel is not None:
                return ceiling * rel
        return ceiling * gemm_quantization(op, self.gpu)

    def attention_efficiency(self, op: Op) -> float:
        """Achieved / peak FLOP/s of one fused attention kernel call: from the GPU's attention
        table by kernel, sequence length, masking and pass where it has one."""
        eff = self.gpu.efficiency
        if eff.attention_table and op.attn is not None:
            return attention_table(eff.attention_table).efficiency(self.attention_kernel, op.attn)
        return eff.attention

    def ops_time_s(self, ops: list[Op]) -> float:
        return sum(self.op_time_s(op) for op in ops)

    def kernel_sources(self) -> dict[str, str]:
        """Where each op class's kernel time comes from (printed beside the breakdown)."""
        eff = self.gpu.efficiency
        parts = eff.source.split("; ")

        def cited(word: str) -> str:  # the parts of the GPU's source that name the class
            return "; ".join(p for p in parts if word in p) or eff.source

        gemm = "; ".join(p for p in cited("GEMM").split("; ") if "by shape" not in p)
        gemm += "; shapes: tile and wave quantization"
        if eff.gemm_table and self.gemm_dtype in gemm_table(eff.gemm_table).dtypes:
            gemm = f"{cited('ceiling')}; shapes: {gemm_table(eff.gemm_table).source}"
        attention = cited("attention")
        if eff.attention_table:
            attention = f"{self.attention_kernel}: {attention_table(eff.attention_table).source}"
        return {"gemm": gemm, "attention": attention, "memory": cited("STREAM")}


def gemm_quantization(op: Op, gpu: GPU) -> float:
    """Useful fraction of the GEMM's tile-waves: tile quantization x wave quantization."""
    assert op.gemm is not None, "a matmul op carries its GEMM shape"
    m, n, _ = op.gemm
    tiles_m, tiles_n = math.ceil(m / TILE_M), math.ceil(n / TILE_N)
    tile_eff = (m * n) / (tiles_m * TILE_M * tiles_n * TILE_N)
    tiles = tiles_m * tiles_n * op.batch
    waves = math.ceil(tiles / gpu.sm_count)
    wave_eff = tiles / (waves * gpu.sm_count)
    return tile_eff * wave_eff
