"""The model's free constants by name: what `clustersim calibrate` may fit and a calibration
profile sets.

Collective constants live in a `Calibration` (comm/calibration.py), compute constants in a GPU's
`Efficiency` (hardware/gpu.py). A knob reads its value from them and writes a new one; values
are absolute (a profile sets a constant, it does not scale it), so applying a profile twice
changes nothing. Names:

    nccl.<arch>.<link kind>_efficiency   fraction of a link's line rate a ring reaches
    nccl.<arch>.step_latency             s per intra-node algorithm step beyond NCCL's hwLat
    nccl.<arch>.net_step_latency         s per network step beyond NCCL's hwLat
    nccl.<arch>.nvls_efficiency          NVLink SHARP fraction of the NVLink rate (Hopper+)
    nccl.ring_fill_steps                 ring pipeline fill and drain, in steps (LL128, Simple)
    nccl.nvls_round_latency              s of synchronization per NVLS chunk round
    nccl.<family>.<protocol>.base_latency  s once per call (NCCL's baseLat)
    nccl.call_overhead                   s once per call, every algorithm (host and NCCL setup)
    nccl.bandwidth_scale                 share of the modelled link bandwidth reached (every kind)
    compute.<gpu>.gemm | memory | attention | end_to_end   fractions of peak (roofline)
    compute.<gpu>.kernel_launch          s per kernel

Bounds keep a fitted value physical: fractions in (0, 1], latencies >= 0 and below what any
NCCL table or trace shows for one step (tens of microseconds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.system.comm.calibration import ARCHS, FAMILIES, ArchFigures, Calibration
from simulator.system.comm.nccl_tables import PROTOCOLS, US
from simulator.system.hardware.gpu import GPU
from simulator.system.topology.builders.built import LINK_KINDS

COMPUTE_FRACTIONS = ("gemm", "memory", "attention", "end_to_end")
NVLS_ARCHS = ("hopper", "blackwell")


@dataclass(frozen=True, kw_only=True)
class Knob:
    """One free constant: its name, unit and physical bounds."""

    name: str
    unit: str  # "fraction", "ratio", "s" or "steps"
    lower: float
    upper: float
    what: str

    def bounded(self, value: float) -> float:
        return min(max(value, self.lower), self.upper)


def _fraction(name: str, what: str) -> Knob:
    return Knob(name=name, unit="fraction", lower=0.02, upper=1.0, what=what)


def _latency(name: str, what: str, upper_us: float) -> Knob:
    return Knob(name=name, unit="s", lower=0.0, upper=upper_us * US, what=what)


def knob(name: str) -> Knob:
    """The knob of a name; KeyError (with the reason) for a name that is none."""
    parts = name.split(".")
    if parts[0] == "compute" and len(parts) >= 3:
        gpu, field = ".".join(parts[1:-1]), parts[-1]
        if field in COMPUTE_FRACTIONS:
            return _fraction(name, f"{gpu}: {field.replace('_', '-')} fraction of the roofline")
        if field == "kernel_launch":
            return _latency(name, f"{gpu}: fixed cost per kernel", 100.0)
    if parts[0] != "nccl":
        raise KeyError(name)
    if len(parts) == 2 and parts[1] == "ring_fill_steps":
        return Knob(
            name=name, unit="steps", lower=0.0, upper=64.0, what="ring pipeline fill and drain"
        )
    if len(parts) == 2 and parts[1] == "nvls_round_latency":
        return _latency(name, "NVLS synchronization per chunk round", 50.0)
    if name == "nccl.call_overhead":
        # Up to 1 ms: host launch is ~5-10 us and NCCL's per-call setup tens of us; a millisecond
        # per call is a measurement that timed something else (a synchronizing host), not a constant.
        return _latency(name, "overhead once per collective call, beyond NCCL's baseLat", 1000.0)
    if name == "nccl.bandwidth_scale":
        # 0.3 .. 1.2: below a third of the model's bandwidth a link is down or a fallback path ran
        # (a fault to fix, not a constant to fit); above, up to 1.2 lets a faster NCCL build reach
        # the line rate of the NVLinks whose built-in efficiencies are 0.75-0.82 of it.
        return Knob(
            name=name,
            unit="ratio",
            lower=0.3,
            upper=1.2,
            what="share of the modelled link bandwidth reached, on every link kind alike",
        )
    if (
        len(parts) == 4
        and parts[1] in FAMILIES
        and parts[2] in PROTOCOLS
        and parts[3] == "base_latency"
    ):
        return _latency(name, f"{parts[1]}/{parts[2]} latency once per call", 200.0)
    if len(parts) == 3 and parts[1] in ARCHS:
        arch, field = parts[1], parts[2]
        if field.endswith("_efficiency") and field.removesuffix("_efficiency") in LINK_KINDS:
            return _fraction(
                name, f"{arch}: {field.removesuffix('_efficiency')} bandwidth efficiency"
            )
        if field == "nvls_efficiency" and arch in NVLS_ARCHS:
            return _fraction(name, f"{arch}: NVLink SHARP efficiency")
        if field == "step_latency":
            return _latency(name, f"{arch}: latency per intra-node step", 20.0)
        if field == "net_step_latency":
            return _latency(name, f"{arch}: latency per network step", 50.0)
    raise KeyError(name)


def known_names(archs=ARCHS, gpus=()) -> list[str]:
    """Every knob name for these architectures and GPUs (for messages and `did you mean`)."""
    names = ["nccl.ring_fill_steps", "nccl.nvls_round_latency", "nccl.call_overhead"]
    names += ["nccl.bandwidth_scale"]
    names += [f"nccl.{f}.{p}.base_latency" for f in FAMILIES for p in PROTOCOLS]
    for a in archs:
        names += [f"nccl.{a}.{k}_efficiency" for k in LINK_KINDS if k != "ideal"]
        names += [f"nccl.{a}.step_latency", f"nccl.{a}.net_step_latency"]
        names += [f"nccl.{a}.nvls_efficiency"] if a in NVLS_ARCHS else []
    for g in gpus:
        names += [f"compute.{g}.{f}" for f in (*COMPUTE_FRACTIONS, "kernel_launch")]
    return names


def is_compute(name: str) -> bool:
    return name.startswith("compute.")


# --- collectives --------------------------------------------------------------------------------


def comm_value(cal: Calibration, name: str) -> float:
    """The value a calibration has for a collective knob."""
    parts = name.split(".")
    if name == "nccl.call_overhead":
        return cal.call_overhead_s
    if name == "nccl.bandwidth_scale":
        return cal.bandwidth_scale
    if name == "nccl.ring_fill_steps":
        ring = cal.step("ring", "Simple")
        assert ring is not None, "a calibration has figures for every family's Simple protocol"
        return ring.fill_steps
    if name == "nccl.nvls_round_latency":
        nvls = cal.step("nvls", "Simple")
        assert nvls is not None, "a calibration has figures for every family's Simple protocol"
        return nvls.round_s
    if parts[-1] == "base_latency":
        step = cal.step(parts[1], parts[2])
        return step.base_s if step is not None else 0.0
    arch, field = parts[1], parts[2]
    figures = cal.arch(arch)
    if field == "step_latency":
        return figures.step_extra_s
    if field == "net_step_latency":
        return figures.net_step_extra_s
    if field == "nvls_efficiency":
        return figures.nvls_efficiency
    return cal.efficiency(field.removesuffix("_efficiency"), arch)


def with_comm(cal: Calibration, values: Mapping[str, float]) -> Calibration:
    """The calibration with these collective knobs set (compute knobs are ignored)."""
    for name, value in values.items():
        if not is_compute(name):
            cal = _set_comm(cal, name, float(value))
    return cal


def _set_steps(cal: Calibration, keys, **fields) -> Calibration:
    steps = tuple(
        (key, dataclasses.replace(step, **fields) if key in keys else step)
        for key, step in cal.steps
    )
    return dataclasses.replace(cal, steps=steps)


def _set_comm(cal: Calibration, name: str, value: float) -> Calibration:
    parts = name.split(".")
    if name == "nccl.call_overhead":
        return dataclasses.replace(cal, call_overhead_s=value)
    if name == "nccl.bandwidth_scale":
        return dataclasses.replace(cal, bandwidth_scale=value)
    if name == "nccl.ring_fill_steps":
        return _set_steps(cal, {("ring", "LL128"), ("ring", "Simple")}, fill_steps=value)
    if name == "nccl.nvls_round_latency":
        return _set_steps(cal, {("nvls", "Simple"), ("nvls_tree", "Simple")}, round_s=value)
    if parts[-1] == "base_latency":
        return _set_steps(cal, {(parts[1], parts[2])}, base_s=value)
    arch, field = parts[1], parts[2]
    figures = cal.arch(arch)
    if field == "step_latency":
        figures = dataclasses.replace(figures, step_extra_s=value)
    elif field == "net_step_latency":
        figures = dataclasses.replace(figures, net_step_extra_s=value)
    elif field == "nvls_efficiency":
        figures = dataclasses.replace(figures, nvls_efficiency=value)
    else:
        own = dict(figures.link_efficiency)
        own[field.removesuffix("_efficiency")] = value
        figures = dataclasses.replace(figures, link_efficiency=tuple(sorted(own.items())))
    return _set_arch(cal, arch, figures)


def _set_arch(cal: Calibration, arch: str, figures: ArchFigures) -> Calibration:
    archs = dict(cal.archs)
    archs[arch] = figures
    return dataclasses.replace(cal, archs=tuple(archs.items()))


# --- compute ------------------------------------------------------------------------------------


def _gpu_field(name: str) -> tuple[str, str]:
    parts = name.split(".")
    return ".".join(parts[1:-1]), parts[-1]


def gpu_value(gpu: GPU, name: str) -> float:
    """The value a GPU's efficiency has for a compute knob (of any GPU name)."""
    field = _gpu_field(name)[1]
    return (
        gpu.efficiency.kernel_launch_s
        if field == "kernel_launch"
        else getattr(gpu.efficiency, field)
    )


def with_gpu(gpu: GPU, values: Mapping[str, float]) -> GPU:
    """The GPU with the compute knobs named for it (compute.<gpu.name>.*) set; a fitted attention
    fraction times every attention kernel call (the GPU's attention table is set aside)."""
    changes: dict[str, Any] = {}  # Efficiency's float fields, by name
    for name, value in values.items():
        if is_compute(name):
            target, field = _gpu_field(name)
            if target == gpu.name:
                changes["kernel_launch_s" if field == "kernel_launch" else field] = float(value)
    if not changes:
        return gpu
    if "attention" in changes:  # a fitted attention fraction replaces the published table
        changes["attention_table"] = ""
    return dataclasses.replace(gpu, efficiency=dataclasses.replace(gpu.efficiency, **changes))
