"""One training step: scenario -> rank classes' schedules -> engine -> the step's raw timeline.

Rank classes keep the cost independent of the GPU count: a homogeneous cluster is one class;
stragglers with the same slowdown share a class; compute jitter splits the others into at
most JITTER_CLASSES seeded classes. Metrics (MFU, tokens/s, days) come from metrics.py.
"""

from __future__ import annotations

import dataclasses
import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from simulator.execution.collectives import Comm
from simulator.execution.context import SimContext
from simulator.execution.engine import run
from simulator.execution.frameworks import strategy_for
from simulator.execution.memory import MemoryBreakdown, stage_memory
from simulator.execution.pipeline import stage_order
from simulator.execution.schedule import Collective, Schedule
from simulator.execution.strategies.common import Context, stage_work
from simulator.execution.timeline import EngineResult, RankClass
from simulator.spec.specs import Scenario
from simulator.system.compute import ComputeModel
from simulator.system.hardware.attention_table import kernels_of
from simulator.system.hardware.power import cap_clocks

# With compute jitter, this many jittered rank classes stand for the cluster. Each collective
# then waits for the slowest of them; for larger clusters the true maximum over all ranks is
# somewhat larger, so jitter's cost is underestimated there.
JITTER_CLASSES = 16


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """The simulated step: its timeline, busy times and the collectives it ran."""

    engine: EngineResult
    classes: tuple[RankClass, ...]
    time_s: float
    compute_s: float  # compute stream busy time of the slowest rank class
    comm_s: float  # time at least one collective is in flight
    exposed_comm_s: float  # collectives in flight while the compute stream is idle
    collectives: tuple[dict, ...]
    timeline_peak: tuple[int, float, str]  # (bytes, time, task) of the highest class
    peak_flops: float  # dense peak of the GEMM datatype (MFU's denominator)
    compute_busy_s: tuple[float, ...] = ()  # each class's compute-stream busy time
    # each class's compute-stream time added by collectives holding SMs (engine.py)
    interference_s: tuple[float, ...] = ()


def attention_kernel(scenario: Scenario) -> str:
    """training.attention_kernel, else the framework's on this GPU: Megatron-Core's Transformer
    Engine gives cuDNN's FusedAttention preference over FlashAttention on Hopper and newer
    (transformer_engine/pytorch/attention/dot_product_attention/utils.py get_attention_backend:
    "Disabling FlashAttention to give FusedAttention preference on Hopper+ for performance
    reasons"), taken where the GPU's attention table has cuDNN figures; PyTorch's
    scaled_dot_product_attention (FSDP, FSDP2, DDP) and DeepSpeed run FlashAttention-2."""
    t = scenario.training
    if t.attention_kernel is not None:
        return t.attention_kernel
    table = scenario.cluster.gpu.efficiency.attention_table
    if t.framework.name == "megatron" and "cudnn" in kernels_of(table):
        return "cudnn"
    return "flash-attention-2"


def compute_model(scenario: Scenario, slowdown: float = 1.0) -> ComputeModel:
    p = scenario.training.precision
    c = scenario.cluster
    clocks = cap_clocks(c.gpu.power, c.power_cap_w)  # the power cap (hardware/power.py)
    return ComputeModel(
        gpu=scenario.calibration.gpu(c.gpu),
        gemm_dtype=p.gemm_dtype,
        attention_dtype=p.attention_dtype,
        slowdown=slowdown,
        clock=clocks.compute_clock,
        memory_slowdown=clocks.memory_slowdown,
        attention_kernel=attention_kernel(scenario),
    )


def stage_context(
    scenario: Scenario, stage: int, static_bytes: int, cm: ComputeModel, comm: Comm
) -> Context:
    par, t = scenario.training.parallel, scenario.training
    strategy = strategy_for(scenario.training)
    mesh = strategy.mesh(scenario)
    tp_bytes = (
        t.micro_batch_size
        * (t.seq_len // par.cp)
        * scenario.model.hidden_size
        * t.precision.activation_bytes
    )
    groups = {d: mesh.group(d) for d, _ in mesh.dims if d in ("tp", "cp")}
    ep_local = 1  # the expert-parallel ranks on one host (the deepep dispatcher's NVLink hop)
    if scenario.model.arch is not None and scenario.model.arch.moe is not None:
        groups |= strategy.moe_groups(scenario)
        if "ep_local" in groups:
            ep_local = groups["ep_local"].size

    def inline_s(coll: Collective) -> float:
        return comm.cost(coll, (stage,), together=False).time_s

    return Context(
        scenario=scenario,
        static_bytes=static_bytes,
        cm=cm,
        stage=stage,
        chunks=stage_work(
            scenario,
            cm,
            stage,
            ep_local=ep_local,
        ),
        order=stage_order(scenario, stage),
        mesh=mesh,
        tp_bytes=tp_bytes,
        groups=groups,
        inline_s=inline_s,
    )


def rank_classes(
    scenario: Scenario, memory: list[MemoryBreakdown], cm: ComputeModel, comm: Comm
) -> list[RankClass]:
    """Per pipeline stage: one class for its homogeneous ranks, one per distinct straggler
    slowdown among its ranks, and up to JITTER_CLASSES seeded classes for compute jitter."""
    strategy, par = strategy_for(scenario.training), scenario.training.parallel
    mesh = strategy.mesh(scenario)
    stride = mesh.stride("pp")
    classes = []
    for stage in range(par.pp):
        static = memory[stage].static_bytes
        base = stage_context(scenario, stage, static, cm, comm)
        schedule = strategy.schedule(base).build(static)
        mine = [st for st in scenario.cluster.stragglers if (st.rank // stride) % par.pp == stage]
        slow = Counter(st.slowdown for st in mine)
        normal = scenario.num_gpus // par.pp - len(mine)
        where = f"stage {stage} " if par.pp > 1 else ""
        classes += _normal_classes(scenario, schedule, normal, stage, where)
        for factor, count in sorted(slow.items()):
            slow_cm = dataclasses.replace(cm, slowdown=factor)
            ctx = stage_context(scenario, stage, static, slow_cm, comm)
            ranks = sorted(st.rank for st in mine if st.slowdown == factor)
            label = f"rank {ranks[0]}" if count == 1 else f"{count} ranks ({_ranks_text(ranks)})"
            classes.append(
                RankClass(
                    f"{where}{label} (x{factor:g} slower)",
                    strategy.schedule(ctx).build(static),
                    count,
                    stage,
                )
            )
    return classes


def _normal_classes(
    scenario: Scenario, schedule: Schedule, normal: int, stage: int, where: str
) -> list[RankClass]:
    jitter = scenario.training.compute_jitter
    if not normal:
        return []
    if jitter <= 0:
        return [RankClass(f"{where}ranks".strip() if where else "ranks", schedule, normal, stage)]
    seed = scenario.training.seed
    rng = np.random.default_rng(seed if stage == 0 else [seed, stage])
    k = min(normal, JITTER_CLASSES)
    return [
        RankClass(
            f"{where}ranks (jitter sample {j})",
            _jittered(schedule, rng, jitter),
            normal // k + (1 if j < normal % k else 0),
            stage,
        )
        for j in range(k)
    ]


def _ranks_text(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks[:4])) + (", ..." if len(ranks) > 4 else "")


def _jittered(schedule: Schedule, rng: np.random.Generator, sigma: float) -> Schedule:
    """Each compute/CPU task's time scaled by 1 + sigma z (z standard normal, floored at 0.1)."""
    z = rng.standard_normal(len(schedule.tasks))
    tasks = tuple(
        dataclasses.replace(t, duration_s=t.duration_s * max(0.1, 1.0 + sigma * zi))
        if t.stream in ("compute", "cpu") and t.collective is None
        else t
        for t, zi in zip(schedule.tasks, z)
    )
    return dataclasses.replace(schedule, tasks=tasks)


def simulate_step(
    scenario: Scenario,
    memory: MemoryBreakdown | list[MemoryBreakdown] | None = None,
    backend: str = "fluid",
    ctx: SimContext | None = None,
) -> StepResult:
    """Simulate one step. `memory`: every stage's breakdown (stage_memory), computed if not given."""
    with _collector_paused():
        return _simulate_step(scenario, memory, backend, ctx)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a step is built and run: a large step holds
    hundreds of thousands of tasks, intervals and events, all alive until it ends, and the
    collector's passes over them (each a walk over every tracked object) took a quarter of the
    step's time. Reference counting still frees what goes out of use; cycles wait until after.
    At the end the objects made meanwhile go to the oldest generation (freeze, then unfreeze)
    rather than through the young generation's pass that the first allocation after enabling
    would start over all of them (0.4 s of a 2,048-GPU DeepSeek-V3 step under the profiler);
    their cycles are collected by the next full collection."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _simulate_step(
    scenario: Scenario,
    memory: MemoryBreakdown | list[MemoryBreakdown] | None,
    backend: str,
    ctx: SimContext | None,
) -> StepResult:
    ctx = ctx or SimContext()
    if not isinstance(memory, list):
        memory = stage_memory(scenario)
    cm = compute_model(scenario)
    comm = Comm(
        ctx.comm(scenario.cluster, scenario.calibration.comm, nvls=scenario.training.nvls),
        scenario.training.collective_algorithm,
        backend,
    )
    classes = [
        dataclasses.replace(c, sm_count=cm.gpu.sm_count)
        for c in rank_classes(scenario, memory, cm, comm)
    ]
    result = run(classes, comm.start, comm.ctas)
    return _result(classes, result, comm, cm.gpu.peak(cm.gemm_dtype))


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint sorted spans covering the intervals (empty ones dropped): in start order, an
    interval starting at or before the end of the span so far extends it. The same spans, bit
    for bit, as that loop: a span's end is the running maximum of the ends, a new span starts
    where a start passes it."""
    if not intervals:
        return []
    both = np.array(intervals, dtype=float).reshape(-1, 2)
    a, b = both[:, 0], both[:, 1]
    keep = b > a
    a, b = a[keep], b[keep]
    if not len(a):
        return []
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    reach = np.maximum.accumulate(b)
    new = np.empty(len(a), bool)
    new[0] = True
    np.greater(a[1:], reach[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = reach[np.append(starts[1:] - 1, len(a) - 1)]
    return list(zip(a[starts].tolist(), ends.tolist()))


def measure(spans) -> float:
    return sum(b - a for a, b in spans)


def uncovered(spans, holes) -> float:
    """Length of `spans` not covered by `holes`, both disjoint and sorted: one merge pass."""
    total, j = 0.0, 0
    for a, b in spans:
        covered = 0.0
        while j < len(holes) and holes[j][1] <= a:
            j += 1
        k = j
        while k < len(holes) and holes[k][0] < b:
            covered += min(b, holes[k][1]) - max(a, holes[k][0])
            k += 1
        total += (b - a) - covered
    return total


def _result(classes, result: EngineResult, comm: Comm, peak_flops: float) -> StepResult:
    spans = list(result.collective_times.values())
    comm_spans = union(spans)
    compute_busy, exposed, inline_spans = [], [], []
    for rc, tl in zip(classes, result.timelines):
        tasks = rc.schedule.tasks
        busy = union(
            [
                (iv.start_s, iv.end_s)
                for iv in tl.intervals
                if iv.stream == "compute" and not iv.collective
            ]
        )
        # Tensor-parallel collectives folded into compute tasks block the compute stream: exposed.
        inline = [
            (iv.start_s, iv.start_s + tasks[iv.task].inline_comm_s)
            for iv in tl.intervals
            if tasks[iv.task].inline_comm_s > 0
        ]
        inline_spans += inline
        compute_busy.append(measure(busy) - measure(inline))
        exposed.append(uncovered(comm_spans, busy) + measure(inline))
    slowest = int(np.argmax(compute_busy))
    peaks = [tl.peak(classes[i].schedule.tasks) for i, tl in enumerate(result.timelines)]
    return StepResult(
        engine=result,
        classes=tuple(classes),
        time_s=result.step_time_s,
        compute_s=compute_busy[slowest],
        comm_s=measure(union(spans + inline_spans)),
        exposed_comm_s=min(exposed),
        collectives=tuple(_collective_summary(classes, comm)),
        timeline_peak=max(peaks),
        peak_flops=peak_flops,
        compute_busy_s=tuple(compute_busy),
        interference_s=result.interference_s,
    )


def _collective_summary(classes: list[RankClass], comm: Comm) -> list[dict]:
    """Collectives of one rank per pipeline stage (the first class of each), counted together."""
    rows: dict[tuple, dict] = {}
    seen: set[int] = set()
    for rc in classes:
        if rc.stage in seen:
            continue
        seen.add(rc.stage)
        # A send appears at both ends; its receive (on the compute stream) is not counted again.
        for c in (
            c
            for t in rc.schedule.tasks
            for c in (t.collective, *t.inline)
            if c is not None and not (c.op == "send" and (t.stream != "p2p" or t.receive))
        ):
            key = (c.op, c.group.name, c.size_bytes)
            if key not in rows:
                cost = comm.cost(c, c.peers or (rc.stage,), together=False)
                rows[key] = {
                    "op": c.op,
                    "group": "pp" if c.op == "send" else c.group.name,
                    "algorithm": cost.algorithm,
                    "protocol": cost.protocol,
                    "group_size": cost.group_size,
                    "bytes": c.size_bytes,
                    "count": 0,
                    "time_s": cost.time_s,
                    "busbw_GBps": (cost.busbw_Bps / 1e9) if cost.time_s > 0 else 0.0,
                    "bytes_sent_per_rank": cost.bytes_per_rank_sent,
                }
            rows[key]["count"] += 1
    return sorted(rows.values(), key=lambda r: (r["op"], r["group"], -r["bytes"]))
