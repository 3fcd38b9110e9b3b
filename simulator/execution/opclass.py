"""Kernel time by op class: GEMM (ops of kind "matmul"), attention (fused flash-attention
kernels), memory-bound (element-wise, norms, softmax, copies) and the per-kernel fixed
overhead (launch and inter-kernel gap), for the step's breakdown (execution/breakdown.py).

The overhead is the part of `ComputeModel.op_time_s(op)` that `ComputeModel.launch_overhead_s`
names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simulator.model.ops import Op
from simulator.system.compute import ComputeModel

# Op kind -> its class (the optimizer update, also of kind "memory", is counted apart by the
# breakdown: it is built in strategies/common.py, not in these op lists).
KIND_CLASS = {"matmul": "gemm", "attention": "attention", "memory": "memory"}


@dataclass(frozen=True, kw_only=True)
class ClassTimes:
    """Seconds of kernel time per op class; overhead_s is the kernels' fixed per-kernel part."""

    gemm_s: float = 0.0
    attention_s: float = 0.0
    memory_s: float = 0.0
    overhead_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.gemm_s + self.attention_s + self.memory_s + self.overhead_s

    def __add__(self, other: ClassTimes) -> ClassTimes:
        return ClassTimes(
            gemm_s=self.gemm_s + other.gemm_s,
            attention_s=self.attention_s + other.attention_s,
            memory_s=self.memory_s + other.memory_s,
            overhead_s=self.overhead_s + other.overhead_s,
        )

    def scaled(self, k: float) -> ClassTimes:
        return ClassTimes(
            gemm_s=k * self.gemm_s,
            attention_s=k * self.attention_s,
            memory_s=k * self.memory_s,
            overhead_s=k * self.overhead_s,
        )


def op_split(cm: ComputeModel, op: Op) -> tuple[float, float]:
    """`cm.op_time_s(op)` as (kernel part, per-kernel fixed overhead part); they sum to it."""
    launch = cm.launch_overhead_s(op)
    return cm.op_time_s(op) - launch, launch


def class_times(cm: ComputeModel, ops: Iterable[Op]) -> ClassTimes:
    """The ops' time by class (their sum is `cm.ops_time_s(ops)` up to rounding)."""
    by_class = {"gemm": 0.0, "attention": 0.0, "memory": 0.0}
    overhead = 0.0
    for op in ops:
        kernel, launch = op_split(cm, op)
        by_class[KIND_CLASS[op.kind]] += kernel
        overhead += launch
    return ClassTimes(
        gemm_s=by_class["gemm"],
        attention_s=by_class["attention"],
        memory_s=by_class["memory"],
        overhead_s=overhead,
    )


def total(times: Iterable[ClassTimes]) -> ClassTimes:
    out = ClassTimes()
    for t in times:
        out = out + t
    return out
