"""A scenario's run, as the goodput simulation sees it: the work to do, the job-level failure
rates, the checkpoint's size and costs, the interval and the restart time. Pure functions.

Checkpoint size (default): the 16-bit weights plus the optimizer states with their fp32 master
copy, (weight bytes + K) x params, K as in the memory model (ZeRO paper accounting): 14 bytes
per parameter for mixed-precision Adam. Gradients are not saved. Megatron-LM's checkpoints hold
the same (the model's 16-bit weights and the optimizer's fp32 main parameters and moments);
PyTorch DCP of an FSDP model saves fp32 parameters instead, 12 bytes per parameter. For Llama 3
405B on 16,384 GPUs this is 346 MB per GPU, within the "1 MB to 4 GB per GPU" of the Llama 3
paper (Sec 3.3.1).

Costs: a synchronous save pauses the job for the whole write; an asynchronous one (PyTorch DCP
async_save) pauses only to copy each GPU's share to host memory over PCIe and writes in the
background, so the snapshot is durable one write later. Writes and reads run at the slower of
the aggregate storage rate and the per-host rate (each host writes its hosts' share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.model.precision import optimizer_state_bytes_per_param
from simulator.spec.reliability import FailureClass, ReliabilitySpec, StragglerSpec
from simulator.spec.specs import Scenario
from simulator.studies.goodput.closed_forms import daly_interval, young_interval


@dataclass(frozen=True, kw_only=True)
class JobClass:
    """A failure class at the job's size: arrivals per second of the whole job."""

    spec: FailureClass
    units: int
    rate_s: float

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, kw_only=True)
class RunModel:
    work_s: float  # failure-free training time (inf in window mode)
    window_s: float | None
    step_s: float
    num_gpus: int
    num_hosts: int
    gpus_per_host: int
    classes: tuple[JobClass, ...]
    straggler: StragglerSpec | None
    straggler_rate_s: float
    checkpoint_bytes: int
    checkpoint_sized_by_model: bool
    mode: str
    save_s: float  # the write of one checkpoint
    pause_s: float  # the job's pause per checkpoint
    commit_lag_s: float  # durable this long after the pause (async: the write)
    interval_s: float  # work between checkpoints (whole steps; inf: none)
    interval_steps: int | None
    interval_raised: bool  # async: raised to the write time
    interval_optimal: bool = False  # Daly's (the scenario gives no interval)
    optimal_interval_s: float  # Daly 2006
    young_interval_s: float
    load_s: float
    detection_s: float
    initialization_s: float
    hot_spares: int | None
    without_spare: str
    repair_s: float | None
    runs: int
    seed: int

    @property
    def restart_s(self) -> float:
        return self.detection_s + self.initialization_s + self.load_s

    @property
    def unplanned_rate_s(self) -> float:
        return sum(c.rate_s for c in self.classes if not c.spec.planned)

    @property
    def mtbf_s(self) -> float:
        rate = self.unplanned_rate_s
        return 1.0 / rate if rate > 0 else math.inf


def checkpoint_bytes(scenario: Scenario) -> int:
    """Weights + optimizer states (with the fp32 master copy) of the whole model."""
    t, m = scenario.training, scenario.model
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, m.hidden_size)
    return round(m.params * (t.precision.weight_bytes + k))


def transfer_s(total_bytes: float, hosts: int, aggregate_bw: float, per_host_bw: float) -> float:
    """Every host moves its share at once: the slower of the aggregate and the per-host limit."""
    return max(total_bytes / aggregate_bw, total_bytes / hosts / per_host_bw)


def units(unit: str, num_gpus: int, num_hosts: int) -> int:
    return {"gpu": num_gpus, "host": num_hosts, "job": 1}[unit]


def job_classes(spec: ReliabilitySpec, num_gpus: int, num_hosts: int) -> tuple[JobClass, ...]:
    out = []
    for f in spec.failures:
        n = units(f.unit, num_gpus, num_hosts)
        out.append(JobClass(spec=f, units=n, rate_s=f.rate_per_unit_s * n * spec.rate_scale))
    return tuple(out)


def _interval(
    spec: ReliabilitySpec, step_s: float, work_s: float, optimal_s: float
) -> tuple[float, int | None]:
    """Work between checkpoints in whole steps (inf when never: no failures and no interval)."""
    c = spec.checkpoint
    if c.interval_steps is not None:
        steps = c.interval_steps
    else:
        target = c.interval_s if c.interval_s is not None else optimal_s
        if math.isinf(target) or target >= work_s:
            return math.inf, None
        steps = max(1, round(target / step_s))
    return steps * step_s, steps


def run_model(
    scenario: Scenario,
    step_s: float,
    work_s: float,
    runs: int | None = None,
    seed: int | None = None,
) -> RunModel:
    """The run of `scenario` whose step takes step_s and whose failure-free training takes work_s."""
    spec = scenario.reliability or ReliabilitySpec()
    c, r = spec.checkpoint, spec.restart
    gpus = scenario.num_gpus
    hosts = max(1, math.ceil(gpus / scenario.cluster.gpus_per_host))
    size = c.size_bytes if c.size_bytes is not None else checkpoint_bytes(scenario)
    save = transfer_s(size, hosts, c.write_bw, c.write_bw_per_host)
    if c.mode == "async":
        # Each GPU copies its share to pinned host memory (device-to-host over PCIe).
        pause = (
            c.pause_s
            if c.pause_s is not None
            else size / gpus / scenario.cluster.gpu.pcie_bw_bytes_per_s
        )
        lag = save
    else:
        pause, lag = save, 0.0
    classes = job_classes(spec, gpus, hosts)
    rate = sum(j.rate_s for j in classes if not j.spec.planned)
    mtbf = 1.0 / rate if rate > 0 else math.inf
    optimal = daly_interval(pause, mtbf) if rate > 0 else math.inf
    work = math.inf if spec.window_s is not None else work_s
    interval, steps = _interval(spec, step_s, work, optimal)
    raised = c.mode == "async" and interval < lag
    if raised:  # the next snapshot waits for the previous write (one write in flight)
        steps = math.ceil(lag / step_s)
        interval = steps * step_s
    st = spec.stragglers
    return RunModel(
        work_s=work,
        window_s=spec.window_s,
        step_s=step_s,
        num_gpus=gpus,
        num_hosts=hosts,
        gpus_per_host=scenario.cluster.gpus_per_host,
        classes=classes,
        straggler=st,
        straggler_rate_s=st.rate_per_unit_s * units(st.unit, gpus, hosts) if st else 0.0,
        checkpoint_bytes=size,
        checkpoint_sized_by_model=c.size_bytes is None,
        mode=c.mode,
        save_s=save,
        pause_s=pause,
        commit_lag_s=lag,
        interval_s=interval,
        interval_steps=steps,
        interval_raised=raised,
        interval_optimal=c.optimal,
        optimal_interval_s=optimal,
        young_interval_s=young_interval(pause, mtbf) if rate > 0 else math.inf,
        load_s=transfer_s(size, hosts, c.read_bw, c.read_bw_per_host),
        detection_s=r.detection_s,
        initialization_s=r.initialization_s,
        hot_spares=r.hot_spares,
        without_spare=r.without_spare,
        repair_s=r.repair_s,
        runs=runs or spec.runs,
        seed=seed
        if seed is not None
        else (spec.seed if spec.seed is not None else scenario.training.seed),
    )
