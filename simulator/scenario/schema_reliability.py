"""The `reliability` section of a scenario file: failures, checkpoints, restarts and slow nodes
over a whole training run (pydantic, the YAML edge). Every field is optional; the defaults and
their sources are in simulator/spec/reliability.py, filled in by scenario/reliability.py.

Quantities are unit strings as elsewhere ("30 min", "2 TB/s", "5 TB"); this module has its own
small unit validators so that it does not import schema.py, which imports it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simulator.core.units import UnitError, parse_bandwidth, parse_bytes, parse_duration
from simulator.spec.reliability import DEFAULT_RUNS, UNITS

MAX_RUNS = 100_000


def _parsed(parser, example: str, positive: bool = True):
    """A unit string -> the internal unit; bare numbers are refused (as in schema.py)."""

    def check(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"give a unit, e.g. {example!r} (a bare number is ambiguous)")
        try:
            parsed = parser(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if positive and parsed <= 0:
            raise ValueError(f"{value!r} must be above zero")
        return parsed

    return BeforeValidator(check)


def _text(example: str) -> Any:
    return Field(json_schema_extra={"type": "string", "examples": [example]})


Duration = Annotated[float, _parsed(parse_duration, "30 min"), _text("30 min")]
DurationOrZero = Annotated[float, _parsed(parse_duration, "30 s", positive=False), _text("30 s")]
Bandwidth = Annotated[float, _parsed(parse_bandwidth, "2 TB/s"), _text("2 TB/s")]
Size = Annotated[int, _parsed(parse_bytes, "5 TB"), _text("5 TB")]


def _choice(names):
    lower = BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)
    return Annotated[Literal[tuple(names)], lower]  # type: ignore[misc]


def _interval(value: Any) -> Any:
    """Steps (an integer), a duration string, or 'optimal'."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("give whole steps (an integer), a duration such as '30 min', or 'optimal'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("at least 1 step")
        return value
    if isinstance(value, str):
        if value.strip().lower() == "optimal":
            return "optimal"
        try:
            seconds = parse_duration(value)
        except UnitError as exc:
            raise ValueError(f"{exc}, whole steps or 'optimal'") from None
        if seconds <= 0:
            raise ValueError("the interval must be above zero")
        return value.strip()
    raise ValueError("give whole steps (an integer), a duration such as '30 min', or 'optimal'")


Interval = Annotated[int | str, BeforeValidator(_interval)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rate(Strict):
    mtbf: Duration | None = Field(None, description="mean time between failures of ONE unit, e.g. '50000 h'")
    failures_per_1000_unit_days: float | None = Field(
        None, ge=0, le=1e9, allow_inf_nan=False,
        description="failures per 1,000 unit-days (per 1,000 node-days for unit host, Kokolis et al.'s r_f)")

    @model_validator(mode="after")
    def _one_rate(self):
        if self.mtbf is not None and self.failures_per_1000_unit_days is not None:
            raise ValueError("give mtbf or failures_per_1000_unit_days, not both")
        return self


class FailureSection(_Rate):
    """One failure class. A default class (gpu, host, nic, switch, software, maintenance) keeps
    the Llama 3 values of the fields not given; a new name needs a unit and a rate."""

    unit: _choice(UNITS) | None = Field(None, description="what the rate is per: gpu, host or job")
    weibull_shape: float | None = Field(None, gt=0, le=20, allow_inf_nan=False,
                                        description="shape of the Weibull times between the job's failures "
                                        "of this class (1: Poisson, the default)")
    takes_host: bool | None = Field(None, description="the failed host is out until repaired (a hot spare "
                                    "replaces it)")
    planned: bool | None = Field(None, description="announced in advance: checkpoint first, no lost work")


class CheckpointSection(Strict):
    size: Size | None = Field(None, description="whole checkpoint (default: the model's weights and "
                              "optimizer states, e.g. 14 bytes/param for mixed-precision Adam)")
    mode: _choice(("sync", "async")) = Field("sync", description="async: the step pauses only to copy the "
                                             "state to host memory; the write goes on in the background")
    interval: Interval = Field("optimal", description="steps (an integer), a duration ('30 min'), or "
                               "'optimal' (Daly 2006 from the checkpoint cost and the MTBF)")
    write_bandwidth: Bandwidth | None = Field(None, description="aggregate storage write rate (default 2 TB/s)")
    write_bandwidth_per_host: Bandwidth | None = Field(None, description="per host (default 0.98 GB/s)")
    read_bandwidth: Bandwidth | None = Field(None, description="aggregate read rate (default 2 TB/s)")
    read_bandwidth_per_host: Bandwidth | None = Field(None, description="per host (default 0.98 GB/s)")
    pause: Duration | None = Field(None, description="async only: the step's pause (default: the copy of "
                                   "each GPU's share over PCIe)")


class RestartSection(Strict):
    detection: DurationOrZero | None = Field(None, description="time to detect a failure (default 0: "
                                             "included in initialization)")
    initialization: DurationOrZero | None = Field(None, description="rescheduling and re-initialization "
                                                  "(default 10 min); the checkpoint load is added")
    hot_spares: Annotated[int, Field(ge=0, strict=True)] | None = Field(
        None, description="spare hosts (default: unlimited, a failed host is always replaced at once)")
    without_spare: _choice(("wait", "shrink")) = Field("wait", description="with no spare left: wait for a "
                                                       "repair, or continue on fewer hosts")
    repair_time: Duration | None = Field(None, description="time to repair a failed host (needed with "
                                         "hot_spares)")


class StragglerSection(_Rate):
    """Slow nodes appearing over time (give a rate, slowdown and detection)."""

    unit: _choice(UNITS) = "host"
    slowdown: float = Field(gt=1, le=100, allow_inf_nan=False, description="step time multiplier while present")
    detection: Duration = Field(description="time until the slow node is found and removed")

    @model_validator(mode="after")
    def _needs_rate(self):
        if self.mtbf is None and self.failures_per_1000_unit_days is None:
            raise ValueError("give the rate of slow nodes: mtbf or failures_per_1000_unit_days")
        return self


class ReliabilitySection(Strict):
    """Failures, checkpoints and restarts over the whole run (defaults: Llama 3 figures)."""

    enabled: bool = True
    failures: dict[str, FailureSection] = Field(default_factory=dict)
    failure_rate_scale: float = Field(1.0, ge=0, le=1e6, allow_inf_nan=False,
                                      description="multiplies every failure rate")
    checkpoint: CheckpointSection = CheckpointSection()
    restart: RestartSection = RestartSection()
    stragglers: StragglerSection | None = None
    runs: Annotated[int, Field(ge=1, le=MAX_RUNS, strict=True)] = Field(
        DEFAULT_RUNS, description="Monte Carlo runs (seeds)")
    seed: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)] | None = Field(
        None, description="default: training.seed")
    window: Duration | None = Field(None, description="simulate a fixed wall-clock window (e.g. '54 days') "
                                    "instead of the run to completion")
