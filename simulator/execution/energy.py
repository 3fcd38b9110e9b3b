"""Power and energy from the simulated step's timeline: what every GPU draws at each instant,
summed over the rank classes with their hosts and the site's PUE.

Each rank class's GPU is, at every instant of the step, in one of four activities, each with
its draw (system/hardware/power.py gives the figures and their sources):
- running kernels on its compute stream. A compute task's kernels are not timed one by one on
  the timeline, so its time is split by op class in proportion: the share of compute-bound
  kernels (GEMM, attention) among the stage's kernel time (the step breakdown's rows,
  execution/breakdown.py; launch overhead counts as memory-bound) draws the compute-bound
  power, the rest the memory-bound power; an optimizer task is memory-bound throughout. The
  blend is also what a power meter sees: a transformer layer's kernels last microseconds to
  milliseconds, well below the board's power-management and telemetry periods (tens of ms);
- communication only: a collective of the class moving data (from the moment its last
  participant arrives, as the engine starts it, to its end), a tensor-parallel collective
  folded into a compute task (its first inline_comm_s, as step.py counts it), or a PCIe copy
  of an offloaded optimizer;
- waiting: everything else (pipeline bubbles, a collective's wait for slower ranks, the end
  of the step after the class's last task).
Where activities overlap (a collective beside a kernel), the GPU draws the larger of their
powers: the board's power limit caps the sum, and a kernel beside NCCL's few SMs is what draws.

The cluster's power at each instant is the sum over rank classes of ranks x their GPU's draw,
plus every host's constant draw, times the PUE: its integral over the step is the step's
energy, and its maximum less its minimum is the step's swing (synchronised waits of all GPUs).
The swing's period is the step's time over the number of separate low phases in it: stretches
where the cluster draws within LOW_PHASE of the swing above its minimum (a definition, not a
fitted figure), one running over the step's end into the next step's start counted once.
The same sum split by activity (PowerSeries: the GPUs' watts drawing compute-bound kernels,
memory-bound ones, communicating and waiting; a blended kernel level's draw split as share x
compute-bound draw + (1 - share) x memory-bound draw) is the step's power over time by activity.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from simulator.execution.breakdown import StepBreakdown
from simulator.execution.step import StepResult, union
from simulator.execution.timeline import ClassTimeline, RankClass
from simulator.spec.specs import ClusterSpec
from simulator.system.hardware.power import HOST_W_PER_GPU, GPUPower, capped

# A low phase of the step: the cluster's draw within this share of the swing above its minimum.
LOW_PHASE = 0.1

# Activities, in the order of the shares each power level carries.
ACTIVITIES = ("compute", "memory", "comm", "idle")


@dataclass(frozen=True, kw_only=True)
class PowerTimeline:
    """One GPU's draw over the step: watts[i] from edges[i] to edges[i + 1]."""

    edges: tuple[float, ...]
    watts: tuple[float, ...]
    seconds: dict[str, float]  # time in each activity (ACTIVITIES); they sum to the step
    # watts[i] by activity (ACTIVITIES; each row sums to watts[i]); empty: not split
    split: tuple[tuple[float, float, float, float], ...] = ()

    def energy_j(self) -> float:
        return float(np.dot(np.diff(self.edges), self.watts)) if self.watts else 0.0

    @property
    def peak_w(self) -> float:
        return max(self.watts, default=0.0)


@dataclass(frozen=True, kw_only=True)
class Level:
    """A power level: its draw and how its time splits into activities (shares sum to 1)."""

    watts: float
    shares: tuple[float, float, float, float]  # compute, memory, comm, idle
    spans: tuple[tuple[float, float], ...]
    # the watts by activity (they sum to watts); None: shares x watts
    draws: tuple[float, float, float, float] | None = None

    @property
    def split(self) -> tuple[float, float, float, float]:
        if self.draws is not None:
            return self.draws
        c, m, n, i = (self.watts * s for s in self.shares)
        return (c, m, n, i)


def power_timeline(levels: list[Level], idle_w: float, end_s: float) -> PowerTimeline:
    """The draw over [0, end_s]: at each instant the largest level covering it, else idle_w."""
    cuts = {0.0, end_s}
    merged = []
    for level in levels:
        spans = [(max(a, 0.0), min(b, end_s)) for a, b in level.spans]
        spans = union(spans)
        merged.append(spans)
        for a, b in spans:
            cuts.update((a, b))
    edges = np.array(sorted(c for c in cuts if 0.0 <= c <= end_s))
    if len(edges) < 2:
        return PowerTimeline(edges=tuple(edges.tolist()), watts=(), seconds={})
    mids = (edges[:-1] + edges[1:]) / 2
    watts = np.full(len(mids), idle_w)
    winner = np.full(len(mids), -1)
    for k, (level, spans) in enumerate(zip(levels, merged)):
        if not spans:
            continue
        starts = np.array([a for a, _ in spans])
        ends = np.array([b for _, b in spans])
        j = np.searchsorted(starts, mids, side="right") - 1
        covered = (j >= 0) & (mids < ends[np.maximum(j, 0)])
        better = covered & ((level.watts > watts) | (winner < 0))
        watts[better] = level.watts
        winner[better] = k
    dt = np.diff(edges)
    seconds = dict.fromkeys(ACTIVITIES, 0.0)
    seconds["idle"] = float(dt[winner < 0].sum())
    for k, level in enumerate(levels):
        t = float(dt[winner == k].sum())
        for name, share in zip(ACTIVITIES, level.shares):
            seconds[name] += share * t
    splits = np.array([lv.split for lv in levels] + [(0.0, 0.0, 0.0, idle_w)])
    split = tuple(tuple(row) for row in splits[winner].tolist())  # winner -1: the idle row
    return PowerTimeline(
        edges=tuple(edges.tolist()), watts=tuple(watts.tolist()), seconds=seconds, split=split
    )


def compute_bound_share(b: StepBreakdown) -> float:
    """The compute-bound part of the model's kernel time (GEMM and attention over GEMM,
    attention, memory-bound kernels and launch overhead), from the step breakdown."""
    kernels = b.gemm_s + b.attention_s + b.memory_s + b.overhead_s
    return (b.gemm_s + b.attention_s) / kernels if kernels > 0 else 0.0


def transfer_starts(rc: RankClass, collective_times: dict[tuple, tuple[float, float]]) -> dict:
    """Each collective task's (start, end) on the network: its rendezvous key as the engine
    numbers it (engine.py `_Rendezvous.key`: scope, group, op and a send's tag or the group's
    sequence number on the class), looked up in the engine's collective times."""
    seq: Counter = Counter()
    found = {}
    for i, t in enumerate(rc.schedule.tasks):
        coll = t.collective
        if coll is None:
            continue
        scope = coll.peers if coll.peers is not None else (rc.stage,)
        if coll.tag is not None:
            key: tuple = (scope, coll.group.name, coll.op, coll.tag)
        else:
            base = (scope, coll.group.name, coll.op)
            seq[base] += 1
            key = (*base, seq[base])
        if key in collective_times:
            found[i] = collective_times[key]
    return found


def class_levels(
    rc: RankClass, tl: ClassTimeline, starts: dict, power: GPUPower, share: float
) -> list[Level]:
    """The power levels of one rank class's timeline (module doc)."""
    tasks = rc.schedule.tasks
    blended: list[tuple[float, float]] = []
    optimizer: list[tuple[float, float]] = []
    comm: list[tuple[float, float]] = []
    for iv in tl.intervals:
        task = tasks[iv.task]
        if iv.collective:
            begin = max(iv.start_s, starts.get(iv.task, (iv.start_s, iv.end_s))[0])
            comm.append((begin, iv.end_s))
        elif iv.stream == "compute":
            inline = min(task.inline_comm_s, iv.end_s - iv.start_s)
            if inline > 0:
                comm.append((iv.start_s, iv.start_s + inline))
            kernels = (iv.start_s + inline, iv.end_s)
            (optimizer if task.phase == "optimizer" else blended).append(kernels)
        elif iv.stream == "pcie":
            comm.append((iv.start_s, iv.end_s))
    draws = (share * power.compute_w, (1 - share) * power.memory_w, 0.0, 0.0)
    return [
        Level(
            watts=sum(draws), shares=(share, 1 - share, 0.0, 0.0), spans=tuple(blended), draws=draws
        ),
        Level(watts=power.memory_w, shares=(0.0, 1.0, 0.0, 0.0), spans=tuple(optimizer)),
        Level(watts=power.comm_w, shares=(0.0, 0.0, 1.0, 0.0), spans=tuple(comm)),
    ]


@dataclass(frozen=True, kw_only=True)
class PowerSeries:
    """The cluster's power over the step, piecewise constant from edges[i] to edges[i + 1]:
    every GPU's board watts by activity (gpu_w[activity][i], ACTIVITIES; None where a class's
    timeline is not split), the hosts' constant watts, and the facility's total
    cluster_w[i] = pue x (GPU watts + hosts_w)."""

    edges: np.ndarray
    gpu_w: dict[str, np.ndarray] | None
    hosts_w: float
    pue: float
    cluster_w: np.ndarray


@dataclass(frozen=True, kw_only=True)
class StepEnergy:
    """The step's power and energy. Cluster figures are the facility's: (GPUs + hosts) x PUE."""

    time_s: float
    gpus: int
    hosts: int
    host_w: float  # each host's constant draw
    pue: float
    gpu_energy_j: float  # every GPU's board energy over the step
    host_energy_j: float
    step_j: float  # (GPU + host energy) x PUE
    gpu_avg_w: float  # per GPU: its board energy / step time, averaged over the GPUs
    gpu_peak_w: float  # the highest draw of any GPU at any instant
    cluster_avg_w: float
    cluster_peak_w: float
    cluster_min_w: float
    peak_time_s: float  # when the cluster's draw peaks and is lowest in the step
    min_time_s: float
    activity_s: dict[str, float]  # one GPU's step by activity, averaged over the GPUs
    classes: tuple[tuple[str, int, PowerTimeline], ...]  # (name, ranks, one GPU's timeline)
    series: PowerSeries | None = field(default=None, compare=False, repr=False)

    @property
    def swing_w(self) -> float:
        return self.cluster_peak_w - self.cluster_min_w

    @property
    def swing_period_s(self) -> float:
        """How often the cluster's draw falls to its low phase: the step over their count."""
        if self.series is None or not len(self.series.cluster_w):
            return self.time_s
        return self.time_s / low_phases(self.series.cluster_w)


def low_phases(cluster_w: np.ndarray) -> int:
    """The separate low phases of a step's piecewise-constant draw (module doc): at least 1."""
    lo, hi = float(cluster_w.min()), float(cluster_w.max())
    low = cluster_w <= lo + LOW_PHASE * (hi - lo)
    count = int(np.count_nonzero(low[1:] & ~low[:-1])) + int(low[0])
    if low[0] and low[-1] and count > 1:
        count -= 1  # the same wait, across the step's end and the next step's start
    return max(count, 1)


def hosts_and_draw(cluster: ClusterSpec) -> tuple[int, float]:
    """The hosts the GPUs occupy and each one's draw besides its GPUs."""
    hosts = math.ceil(cluster.num_gpus / cluster.gpus_per_host)
    host_w = cluster.power.host_w
    return hosts, host_w if host_w is not None else HOST_W_PER_GPU * cluster.gpus_per_host


def step_energy(
    cluster: ClusterSpec, step: StepResult, share: float, power: GPUPower
) -> StepEnergy:
    """The step's power over time and energy (module doc); `share`: compute_bound_share.
    Under a power cap every activity draws at most the cap (system/hardware/power.py)."""
    power = capped(power, cluster.power_cap_w)
    end = step.time_s
    timelines = []
    for rc, tl in zip(step.classes, step.engine.timelines):
        levels = class_levels(
            rc, tl, transfer_starts(rc, step.engine.collective_times), power, share
        )
        timelines.append((rc.name, rc.ranks, power_timeline(levels, power.idle_w, end)))
    return cluster_energy(cluster, timelines, end)


def cluster_energy(
    cluster: ClusterSpec, timelines: list[tuple[str, int, PowerTimeline]], end_s: float
) -> StepEnergy:
    """The rank classes' timelines (each for `ranks` GPUs) with the hosts and the PUE."""
    gpus = sum(ranks for _, ranks, _ in timelines)
    hosts, host_w = hosts_and_draw(cluster)
    pue = cluster.power.pue
    edges = np.unique(np.concatenate([np.array(p.edges) for _, _, p in timelines] + [[0, end_s]]))
    edges = edges[(edges >= 0) & (edges <= end_s)]
    mids = (edges[:-1] + edges[1:]) / 2
    gpu_w = np.zeros(len(mids))
    by_activity: np.ndarray | None = np.zeros((len(mids), len(ACTIVITIES)))
    for _, ranks, p in timelines:
        if p.watts:
            at = np.searchsorted(np.array(p.edges), mids, side="right") - 1
            at = np.clip(at, 0, len(p.watts) - 1)
            gpu_w += ranks * np.array(p.watts)[at]
            if by_activity is not None and len(p.split) == len(p.watts):
                by_activity += ranks * np.array(p.split)[at]
            else:
                by_activity = None
    site_w = pue * (gpu_w + hosts * host_w)
    series = PowerSeries(
        edges=edges,
        gpu_w=None if by_activity is None else dict(zip(ACTIVITIES, by_activity.T)),
        hosts_w=hosts * host_w,
        pue=pue,
        cluster_w=site_w,
    )
    gpu_j = sum(ranks * p.energy_j() for _, ranks, p in timelines)
    host_j = hosts * host_w * end_s
    activity = {
        a: sum(ranks * p.seconds.get(a, 0.0) for _, ranks, p in timelines) / max(gpus, 1)
        for a in ACTIVITIES
    }
    hi = int(np.argmax(site_w)) if len(site_w) else 0
    lo = int(np.argmin(site_w)) if len(site_w) else 0
    return StepEnergy(
        time_s=end_s,
        gpus=gpus,
        hosts=hosts,
        host_w=host_w,
        pue=pue,
        gpu_energy_j=gpu_j,
        host_energy_j=host_j,
        step_j=pue * (gpu_j + host_j),
        gpu_avg_w=gpu_j / gpus / end_s if gpus and end_s > 0 else 0.0,
        gpu_peak_w=max((p.peak_w for _, _, p in timelines), default=0.0),
        cluster_avg_w=pue * (gpu_j + host_j) / end_s if end_s > 0 else 0.0,
        cluster_peak_w=float(site_w[hi]) if len(site_w) else 0.0,
        cluster_min_w=float(site_w[lo]) if len(site_w) else 0.0,
        peak_time_s=float(edges[hi]) if len(site_w) else 0.0,
        min_time_s=float(edges[lo]) if len(site_w) else 0.0,
        activity_s=activity,
        classes=tuple(timelines),
        series=series,
    )


@dataclass(frozen=True, kw_only=True)
class RunEnergy:
    """The whole run: its time, energy, cost and CO2 (None where no price or intensity)."""

    run_s: float
    basis: str  # which run time: the goodput run's wall clock or the failure-free days
    run_mwh: float
    cost_usd: float | None
    cost_basis: str | None
    electricity_usd: float | None
    co2_t: float | None


def run_energy(cluster: ClusterSpec, step: StepEnergy, run_s: float, basis: str) -> RunEnergy:
    """The run at the step's average facility power for `run_s` seconds. Cost: the GPU-hour
    price where given (a rental's price covers its power), else electricity price x energy."""
    mwh = step.cluster_avg_w * run_s / 3.6e9
    kwh = mwh * 1e3
    p = cluster.power
    electricity = kwh * p.electricity_usd_per_kwh if p.electricity_usd_per_kwh is not None else None
    if cluster.price_per_gpu_hour is not None:
        cost: float | None = cluster.price_per_gpu_hour * cluster.num_gpus * run_s / 3600
        cost_basis: str | None = "GPU-hour price x GPUs x run hours"
    else:
        cost = electricity
        cost_basis = "electricity price x energy" if electricity is not None else None
    co2 = kwh * p.grid_kg_co2_per_kwh / 1e3 if p.grid_kg_co2_per_kwh is not None else None
    return RunEnergy(
        run_s=run_s,
        basis=basis,
        run_mwh=mwh,
        cost_usd=cost,
        cost_basis=cost_basis,
        electricity_usd=electricity,
        co2_t=co2,
    )
