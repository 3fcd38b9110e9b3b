"""A scenario's power figures at the YAML edge: a GPU's draw by activity (given over the TDP's
shared fractions or the catalog GPU's) and the per-GPU power cap's valid range."""

from __future__ import annotations

import dataclasses

from simulator.core.errors import Problem
from simulator.scenario.schema_power import GPUPowerSection
from simulator.system import hardware
from simulator.system.hardware.power import GPUPower, from_tdp


def gpu_power(
    p: GPUPowerSection, base: GPUPower | None, where: str, problems: list[Problem]
) -> GPUPower | None:
    """A GPU's draw by activity: the given figures over the TDP's shared fractions (a `tdp`
    given) or over the catalog GPU's (`base`)."""
    if p.tdp is not None:
        base = from_tdp(p.tdp, p.source)
    if base is None:
        problems.append(Problem(where, "a GPU's power needs its tdp", "add tdp, e.g. tdp: '700 W'"))
        return None
    given: dict[str, float] = {
        k: v
        for k, v in (
            ("compute_w", p.compute),
            ("memory_w", p.memory),
            ("comm_w", p.comm),
            ("idle_w", p.idle),
        )
        if v is not None
    }
    if not given:
        return base
    source = f"{base.source}; given: {', '.join(sorted(given))} ({p.source})"
    return dataclasses.replace(base, source=source, **given)  # type: ignore[arg-type]


def power_cap(cap: float | None, gpu: hardware.GPU, problems: list[Problem]) -> float | None:
    """The per-GPU power cap: above the GPU's waiting draw (the floor of the clock / power
    curve, system/hardware/power.py) and at most its TDP (a board's limit cannot be raised)."""
    if cap is None:
        return None
    if gpu.power is None:
        problems.append(
            Problem(
                "cluster.power_cap",
                f"GPU {gpu.name} has no power figures to cap",
                "give the GPU's power (tdp at least) in cluster.power.gpu",
            )
        )
        return None
    lo, hi = gpu.power.idle_w, gpu.power.tdp_w
    if not lo < cap <= hi:
        problems.append(
            Problem(
                "cluster.power_cap",
                f"a power cap of {cap:g} W is outside {gpu.name}'s range: above {lo:g} W (its "
                f"waiting draw) and at most {hi:g} W (its TDP)",
                f"give a cap between {lo:g} W and {hi:g} W, e.g. '{round(0.7 * hi):d} W'",
            )
        )
        return None
    return cap
