"""One GPU's step time by op class: GEMM, attention, memory-bound kernels, the optimizer step,
the per-kernel fixed overhead, the compute slowed by collectives holding SMs (interference),
exposed communication, and the rest (pipeline bubble, waits).

The compute rows are analytic: the kernels one GPU of a pipeline stage runs in one step, summed
from the op lists the schedule's tasks are timed from (strategies/common.py `stage_work`), over
the stage's passes (pipeline.py `stage_order`: grad_accum_steps micro-batches per step through each
of its chunks; a backward pass adds the recompute of activation checkpointing), plus the
optimizer step once. Their total is the compute the engine schedules on that GPU's compute
stream (StepResult.compute_s), with the interference row (what NCCL kernels holding SMs added
to that stream: the engine measures it, execution/engine.py), except where:
- the optimizer is offloaded: its CPU step and PCIe copies are the optimizer row, but they do
  not run on the compute stream;
- the slowest rank class is a straggler or a jittered sample: the rows are a nominal GPU's of
  its stage (what it waits for the slower ones counts in "other").
A framework's own compute-stream kernels (FSDP2's all-gather copy-out) are memory-bound copies
without an op list: they are read from the schedule (their whole time, launch included) and
counted as memory-bound.

Exposed communication is the step's (StepResult.exposed_comm_s, as in the metrics); "other" is
the step time less every row above, floored at 0 (other_clamped_s says by how much it was
negative, which a step whose rows overlap one another, as an offloaded optimizer's CPU step
and the communication may, can give).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simulator.execution.opclass import ClassTimes, op_split, total
from simulator.execution.pipeline import Pass, stage_order
from simulator.execution.schedule import Schedule
from simulator.execution.step import StepResult, compute_model
from simulator.execution.strategies.common import (
    ChunkWork,
    stage_work,
)
from simulator.execution.strategies.optimizer import offload_times_s, optimizer_ops
from simulator.spec.specs import Scenario
from simulator.system.compute import ComputeModel

# The rows in report order: (JSON key, label).
ROWS = (
    ("gemm_s", "GEMM"),
    ("attention_s", "attention"),
    ("memory_s", "memory-bound"),
    ("optimizer_s", "optimizer"),
    ("overhead_s", "overhead (kernel launch)"),
    ("interference_s", "compute slowed by NCCL's SMs"),
    ("exposed_comm_s", "exposed communication"),
    ("other_s", "other (pipeline bubble, waits)"),
)
# Relative residue of "other" below 0 that is float rounding (a step the rows tile exactly).
ROUNDING = 1e-9
# Compute-task phases whose kernels come from the model's op lists; others are a framework's.
MODEL_PHASES = ("forward", "backward", "recompute", "optimizer")


@dataclass(frozen=True, kw_only=True)
class StepBreakdown:
    stage: int  # the pipeline stage of the GPU broken down
    gemm_s: float
    attention_s: float
    memory_s: float
    optimizer_s: float
    overhead_s: float
    interference_s: float  # compute-stream time added while collectives hold SMs
    exposed_comm_s: float
    other_s: float
    other_clamped_s: float  # how far below 0 the step less the other rows was (0: it was not)
    optimizer_on_gpu: bool  # False: offloaded (CPU step and PCIe copies, off the compute stream)
    sources: dict[str, str]  # op class -> where its kernel times come from

    @property
    def compute_s(self) -> float:
        """The rows that run on the compute stream (what StepResult.compute_s measures)."""
        optimizer = self.optimizer_s if self.optimizer_on_gpu else 0.0
        return (
            self.gemm_s
            + self.attention_s
            + self.memory_s
            + self.overhead_s
            + self.interference_s
            + optimizer
        )

    def rows(self) -> list[tuple[str, str, float]]:
        """(key, label, seconds) in report order; they sum to the step time (unless clamped)."""
        return [(key, label, getattr(self, key)) for key, label in ROWS]


def pass_classes(chunks: dict[int, ChunkWork], order: Iterable[Pass]) -> ClassTimes:
    """The kernels of the stage's passes by op class: a forward pass runs its chunk's units'
    forward, a backward pass their recompute (activation checkpointing) and backward."""
    return total(
        u.fwd_classes if p.forward else u.recompute_classes + u.bwd_classes
        for p in order
        for u in chunks[p.chunk].units
    )


def optimizer_split(
    scenario: Scenario, cm: ComputeModel, params: int | None
) -> tuple[float, float]:
    """The optimizer step of `params` parameters as (optimizer time, per-kernel overhead)."""
    if params is None:
        return 0.0, 0.0
    if scenario.training.offload.optimizer:
        return sum(offload_times_s(scenario, cm.gpu, params)), 0.0
    parts = [op_split(cm, op) for op in optimizer_ops(scenario, params)]
    return sum(k for k, _ in parts), sum(o for _, o in parts)


def framework_kernels_s(schedule: Schedule) -> float:
    """Compute-stream kernels outside the model's op lists (a framework's copies)."""
    return sum(
        t.duration_s
        for t in schedule.tasks
        if t.stream == "compute" and t.collective is None and t.phase not in MODEL_PHASES
    )


def step_breakdown(scenario: Scenario, step: StepResult) -> StepBreakdown:
    """The breakdown of one GPU of the stage of the slowest rank class (by compute time)."""
    busy = step.compute_busy_s
    slowest = max(range(len(busy)), key=busy.__getitem__) if busy else 0
    stage = step.classes[slowest].stage
    first = next(i for i, c in enumerate(step.classes) if c.stage == stage)
    nominal = step.classes[first]  # a stage's first class
    cm = compute_model(scenario)
    kernels = pass_classes(stage_work(scenario, cm, stage), stage_order(scenario, stage))
    optimizer_s, optimizer_launch_s = optimizer_split(
        scenario, cm, nominal.schedule.optimizer_params
    )
    parts = {
        "gemm_s": kernels.gemm_s,
        "attention_s": kernels.attention_s,
        "memory_s": kernels.memory_s + framework_kernels_s(nominal.schedule),
        "optimizer_s": optimizer_s,
        "overhead_s": kernels.overhead_s + optimizer_launch_s,
        "interference_s": (step.interference_s[first] if step.interference_s else 0.0),
        "exposed_comm_s": step.exposed_comm_s,
    }
    rest = step.time_s - sum(parts.values())
    # Rows that tile the step exactly leave a rounding residue of either sign: not a clamp.
    clamped = -rest if rest < -ROUNDING * step.time_s else 0.0
    return StepBreakdown(
        stage=stage,
        **parts,
        other_s=max(rest, 0.0),
        other_clamped_s=clamped,
        optimizer_on_gpu=not scenario.training.offload.optimizer,
        sources=_sources(cm, scenario.training.kernels),
    )


def _sources(cm: ComputeModel, kernels: str) -> dict[str, str]:
    """The kernel sources, the memory-bound class's with the implementation's kernels."""
    sources = dict(cm.kernel_sources())
    if "memory" in sources:
        sources["memory"] += f"; norms, RoPE, activations and loss as {kernels} kernels run them"
    return sources
