"""One training step: scenario -> rank classes' schedules -> engine -> step metrics.

Metrics (all per step):
- compute_s: time the compute stream is busy (the slowest rank class);
- comm_s: time at least one collective is in flight on the network;
- exposed_comm_s: time collectives are in flight while the compute stream is idle;
- model FLOPs: the PaLM / Megatron convention, 6N + 12 L h s per token (llm-foundry's MFU);
  hardware FLOPs: every FLOP the kernels execute, recomputation and the flash-attention
  backward's extra QK^T included (HFU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.model import transformer as model_math
from simulator.system.comm.collectives import collective_cost
from simulator.system.compute import ComputeModel
from simulator.execution.engine import EngineResult, RankClass, run
from simulator.core.errors import Problem, ScenarioError
from simulator.execution.memory import PRECISION_BYTES, MemoryBreakdown
from simulator.system.comm.network import BACKENDS
from simulator.execution.schedule import Collective
from simulator.scenario.load import Scenario
from simulator.execution.strategies import STRATEGIES
from simulator.execution.strategies.common import Context, step_work
from simulator.system.topology.graph import Topology, load_topology

# Concurrent groups of one collective (e.g. the 8 rail groups of HSDP's replica all-reduce) are
# all put on the network up to this many; beyond it one representative group is simulated,
# which is exact when the groups use disjoint links (groups inside a host, rail-optimized fabrics).
MAX_CONCURRENT_GROUPS = 16


@dataclass(frozen=True)
class StepResult:
    scenario: Scenario
    engine: EngineResult
    classes: tuple[RankClass, ...]
    time_s: float
    compute_s: float
    comm_s: float
    exposed_comm_s: float
    model_flops_per_gpu: float
    hardware_flops_per_gpu: float
    peak_flops: float
    tokens_per_step: int
    collectives: tuple[dict, ...]
    timeline_peak: tuple[int, float, str]


def model_flops_per_token(scenario: Scenario) -> float:
    m, s = scenario.model, scenario.training.seq_len
    if m.arch is not None:
        return model_math.model_flops_per_token(m.arch, s)
    # PaLM (Chowdhery et al. 2022) App. B: 6N + 12 L h s per token for a bare parameter count.
    return 6.0 * m.params + 12.0 * m.num_layers * m.hidden_size * s


def compute_model(scenario: Scenario, slowdown: float = 1.0) -> ComputeModel:
    cm = ComputeModel.for_precision(scenario.cluster.gpu, scenario.training.precision, slowdown)
    gpu = scenario.cluster.gpu
    for dtype in {cm.gemm_dtype, cm.attention_dtype}:
        if not gpu.supports(dtype):
            have = ", ".join(sorted(gpu.peak_flops))
            raise ScenarioError(Problem("training.precision", f"{gpu.name} has no {dtype} units (it has {have})",
                                        "pick a precision the GPU supports, e.g. fp16-mixed on V100"))
    return cm


def group_ranks(scenario: Scenario, group: str) -> list[tuple[int, ...]]:
    """Every concurrent instance of a collective group, as GPU indices."""
    n = scenario.cluster.num_gpus
    if group == "dp":
        return [tuple(range(n))]
    g = scenario.training.shard_group_size
    if group == "shard":
        return [tuple(range(start, start + g)) for start in range(0, n, g)]
    return [tuple(range(local, n, g)) for local in range(g)]  # replica: one rank per shard group


class Comm:
    """Collectives of the step on the topology's network model (fluid sharing or analytic)."""

    def __init__(self, scenario: Scenario, topo: Topology, backend: str = "fluid"):
        self.scenario, self.topo = scenario, topo
        self.algorithm = scenario.training.collective_algorithm
        self.backend_name = backend
        self.network = None  # made on the first collective, for the engine's environment
        self._groups: dict[str, list[tuple[int, ...]]] = {}
        self._costs: dict[tuple[Collective, int], object] = {}

    def groups(self, group: str) -> list[tuple[int, ...]]:
        """The concurrent instances of a group that go on the network (see MAX_CONCURRENT_GROUPS)."""
        if group not in self._groups:
            instances = group_ranks(self.scenario, group)
            self._groups[group] = instances if len(instances) <= MAX_CONCURRENT_GROUPS else instances[:1]
        return self._groups[group]

    def cost(self, coll: Collective, instance: int = 0):
        key = (coll, instance)
        if key not in self._costs:  # a dict hit avoids re-hashing 16k-rank group tuples
            ranks = self.groups(coll.group)[instance]
            self._costs[key] = collective_cost(self.topo, coll.op, ranks, coll.size_bytes, self.algorithm)
        return self._costs[key]

    def start(self, env, coll: Collective):
        if self.network is None or self.network.env is not env:
            self.network = BACKENDS[self.backend_name](env, self.topo)
        net = self.network
        events = [net.start(self.cost(coll, i)) for i in range(len(self.groups(coll.group)))]
        return events[0] if len(events) == 1 else env.all_of(events)


# With compute jitter, this many jittered rank classes stand for the cluster. Each collective
# then waits for the slowest of them; for larger clusters the true maximum over all ranks is
# somewhat larger, so jitter's cost is underestimated there.
JITTER_CLASSES = 16


def rank_classes(ctx: Context) -> list[RankClass]:
    """One class for a homogeneous cluster; each straggler is a class of its own, and compute
    jitter splits the rest into JITTER_CLASSES seeded classes."""
    s = ctx.scenario
    build = STRATEGIES[s.strategy]
    static = ctx.memory.static_bytes
    base = build(ctx).build(static)
    stragglers = {st.rank: st.slowdown for st in s.cluster.stragglers}
    normal = s.cluster.num_gpus - len(stragglers)
    classes = []
    jitter = s.training.compute_jitter
    if normal and jitter > 0:
        rng = np.random.default_rng(s.training.seed)
        k = min(normal, JITTER_CLASSES)
        for j in range(k):
            ranks = normal // k + (1 if j < normal % k else 0)
            classes.append(RankClass(f"ranks (jitter sample {j})", _jittered(base, rng, jitter), ranks))
    elif normal:
        classes.append(RankClass("ranks", base, normal))
    for rank, factor in sorted(stragglers.items()):
        slow_cm = dataclasses.replace(ctx.cm, slowdown=factor)
        slow_ctx = dataclasses.replace(ctx, cm=slow_cm, work=step_work(s, slow_cm))
        classes.append(RankClass(f"rank {rank} (x{factor:g} slower)", build(slow_ctx).build(static), 1))
    return classes


def _jittered(schedule, rng: np.random.Generator, sigma: float):
    """Each compute/CPU task's time scaled by 1 + sigma z (z standard normal, floored at 0.1)."""
    z = rng.standard_normal(len(schedule.tasks))
    tasks = tuple(dataclasses.replace(t, duration_s=t.duration_s * max(0.1, 1.0 + sigma * zi))
                  if t.stream in ("compute", "cpu") else t for t, zi in zip(schedule.tasks, z))
    return dataclasses.replace(schedule, tasks=tasks)


def simulate_step(scenario: Scenario, memory: MemoryBreakdown, backend: str = "fluid") -> StepResult:
    topo = degrade(load_topology(scenario.cluster.topology_ref, num_hosts=scenario.cluster.num_hosts),
                   scenario.cluster.degraded_links)
    cm = compute_model(scenario)
    pb, gb, _, _ = PRECISION_BYTES[scenario.training.precision]
    ctx = Context(scenario, memory, cm, step_work(scenario, cm), pb, gb)
    classes = rank_classes(ctx)
    comm = Comm(scenario, topo, backend)
    result = run(classes, comm.start)
    return _metrics(scenario, ctx, classes, result, comm)


def degrade(topo: Topology, links) -> Topology:
    """A copy of the topology with some links at a fraction of their bandwidth (a new object,
    so the per-topology caches of plans and capacities are not shared with the healthy one)."""
    if not links:
        return topo
    index = {edge: i for i, edge in enumerate(topo.edges)}
    bw = topo.bw_bytes_per_s.copy()
    for link in links:
        pairs = [(link.source, link.target)] + ([(link.target, link.source)] if link.both_directions else [])
        for pair in pairs:
            if pair in index:
                bw[index[pair]] *= link.bandwidth_factor
    return dataclasses.replace(topo, bw_bytes_per_s=bw)


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _measure(spans) -> float:
    return sum(b - a for a, b in spans)


def _minus(spans, holes) -> float:
    """Length of `spans` not covered by `holes` (both unions of intervals)."""
    total = 0.0
    for a, b in spans:
        covered = sum(max(0.0, min(b, d) - max(a, c)) for c, d in holes)
        total += (b - a) - covered
    return total


def _metrics(scenario, ctx, classes, result: EngineResult, comm: Comm) -> StepResult:
    comm_spans = _union(list(result.collective_times.values()))
    compute_busy, exposed = [], []
    for tl in result.timelines:
        busy = _union([(iv.start_s, iv.end_s) for iv in tl.intervals if iv.stream == "compute"])
        compute_busy.append(_measure(busy))
        exposed.append(_minus(comm_spans, busy))
    slowest = int(np.argmax(compute_busy))
    tasks = classes[slowest].schedule.tasks
    hw = sum(t.hardware_flops for t in tasks)
    tokens = scenario.global_batch_size * scenario.training.seq_len
    model_flops = model_flops_per_token(scenario) * tokens / scenario.cluster.num_gpus
    peaks = [tl.peak(classes[i].schedule.tasks) for i, tl in enumerate(result.timelines)]
    return StepResult(
        scenario=scenario, engine=result, classes=tuple(classes), time_s=result.step_time_s,
        compute_s=compute_busy[slowest], comm_s=_measure(comm_spans), exposed_comm_s=min(exposed),
        model_flops_per_gpu=model_flops, hardware_flops_per_gpu=hw,
        peak_flops=ctx.cm.gpu.peak(ctx.cm.gemm_dtype), tokens_per_step=tokens,
        collectives=tuple(_collective_summary(tasks, comm)), timeline_peak=max(peaks),
    )


def _collective_summary(tasks, comm: Comm) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for t in tasks:
        c = t.collective
        if c is None:
            continue
        key = (c.op, c.group, c.size_bytes)
        if key not in rows:
            cost = comm.cost(c)
            rows[key] = {"op": c.op, "group": c.group, "algorithm": cost.algorithm, "group_size": cost.group_size,
                         "bytes": c.size_bytes, "count": 0, "time_s": cost.time_s,
                         "busbw_GBps": (cost.busbw_Bps / 1e9) if cost.time_s > 0 else 0.0,
                         "bytes_sent_per_rank": cost.bytes_per_rank_sent}
        rows[key]["count"] += 1
    return sorted(rows.values(), key=lambda r: (r["op"], r["group"], -r["bytes"]))
