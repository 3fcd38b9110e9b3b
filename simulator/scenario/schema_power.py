"""The scenario's power figures: `cluster.power` (hosts, PUE, electricity price, grid carbon
intensity, and the GPU's draw by activity) and a custom GPU's `power`. Defaults and their
sources: system/hardware/power.py. Powers are strings with units ("700 W", "2.8 kW")."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import Field

from simulator.core.units import UnitError
from simulator.scenario.schema_types import Strict, _unit, _unit_schema

# The largest power one GPU or host can be given: 1 MW (a typo beyond it, not a board).
MAX_POWER_W = 1e6
_POWER_RE = re.compile(r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<prefix>[kM]?)W$")
_PREFIX = {"": 1.0, "k": 1e3, "M": 1e6}


def parse_power(value: str) -> float:
    """'700 W' -> 700.0; '2.8 kW' -> 2800.0."""
    if not isinstance(value, str):
        raise UnitError(f"expected a power such as '700 W' or '2.8 kW', got {value!r}")
    m = _POWER_RE.match(value.strip())
    if not m:
        raise UnitError(f"expected a power such as '700 W' or '2.8 kW', got {value!r}")
    watts = float(m["num"]) * _PREFIX[m["prefix"]]
    if not math.isfinite(watts):
        raise UnitError(f"expected a finite power, got {value!r}")
    return watts


Power = Annotated[
    float,
    _unit(parse_power, "700 W", 0.0, MAX_POWER_W),
    _unit_schema("700 W", r"^[0-9.]+(e[-+]?[0-9]+)?\s*[kM]?W$"),
]


class GPUPowerSection(Strict):
    """A GPU's draw by activity; what is not given follows the TDP's shared fractions
    (compute-bound 100%, memory-bound 60%, communication 30%, waiting 10%)."""

    tdp: Power | None = Field(None, description="the board's rated power, e.g. '700 W'")
    compute: Power | None = Field(None, description="compute-bound kernels (GEMM, attention)")
    memory: Power | None = Field(None, description="memory-bound kernels")
    comm: Power | None = Field(None, description="a collective in flight, compute idle")
    idle: Power | None = Field(None, description="waiting: pipeline bubbles, waits for others")
    source: str = "user-defined"


class PowerSection(Strict):
    """The site's power figures (defaults: system/hardware/power.py)."""

    host: Power | None = Field(
        None,
        description="each host's draw besides its GPUs (CPUs, memory, NICs, switches, fans); "
        "default 350 W per GPU slot (Latif et al. 2024)",
    )
    pue: float | None = Field(
        None, ge=1, le=5, allow_inf_nan=False, description="facility / IT power; default 1.1"
    )
    electricity_usd_per_kwh: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    grid_kg_co2_per_kwh: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    gpu: GPUPowerSection | None = Field(
        None, description="override the GPU's draw by activity (catalog or custom)"
    )
