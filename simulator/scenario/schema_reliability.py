"""The `reliability` section of a scenario file: failures, checkpoints, restarts and slow nodes
over a whole training run (pydantic, the YAML edge). Every field is optional; the defaults and
their sources are in simulator/spec/reliability.py, filled in by scenario/reliability.py.

Quantities are unit strings as elsewhere ("30 min", "2 TB/s", "5 TB"); this module has its own
small unit validators so that it does not import schema.py, which imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BeforeValidator, Field, model_validator

from simulator.core.units import UnitError, fmt_bytes, parse_bandwidth, parse_bytes, parse_duration
from simulator.scenario.schema_types import Strict
from simulator.spec.reliability import DEFAULT_RUNS, UNITS

MAX_RUNS = 100_000
DAY, YEAR = 86400.0, 365.25 * 86400.0

# Bounds of the section's quantities (README, "Goodput"). A rate: no unit (GPU, host or the
# whole job) fails more than once an hour on average. Published per-unit MTBFs are far above it
# (Llama 3's Table 5: ~80,000 h per GPU; a whole 16k-GPU job ~3 h); below it a failure class
# describes no unit in service, and failures_per_1000_unit_days gets the same bound (24,000).
MIN_UNIT_MTBF_S = 3600.0
MAX_FAILURES_PER_1000_UNIT_DAYS = 1000 * DAY / MIN_UNIT_MTBF_S
# Weibull shapes published for times between hardware failures are ~0.5-3 (0.7-0.8 for whole HPC
# systems, Schroeder & Gibson 2006, DSN; wear-out lifetimes up to ~3). Below 0.3 the gaps are so
# dispersed (coefficient of variation above 5.7; 0.01: a mean of 1 with a median of 1e-174) that
# a Monte Carlo cannot estimate their mean; above 5 they are nearly periodic (CV 0.23).
MIN_WEIBULL_SHAPE, MAX_WEIBULL_SHAPE = 0.3, 5.0
# A window or a checkpoint interval beyond 10 years outlasts the accelerators (depreciated over
# ~5 years); a restart step (detection, initialization) beyond 7 days is no restart; a host
# repair beyond a year is a replacement.
MAX_WINDOW_S = 10 * YEAR
MAX_INTERVAL_S = 10 * YEAR
MAX_INTERVAL_STEPS = 10**9
MAX_RESTART_STEP_S = 7 * DAY
MAX_PAUSE_S = 7 * DAY
MAX_REPAIR_S = YEAR
# Checkpoints: 1 MB is the smallest per-GPU share Llama 3 reports (Sec 3.3.1, "1 MB to 4 GB per
# GPU"); 10 PB holds a 600T-parameter model at 16 bytes per parameter.
MIN_CHECKPOINT_BYTES, MAX_CHECKPOINT_BYTES = 10**6, 10**16
# Storage rates: 1 MB/s is below any disk or network file system; 1 PB/s is 140x Tectonic's
# 7 TB/s peak (Llama 3 Sec 3.3.1). The same range per host and in aggregate.
MIN_STORAGE_BW, MAX_STORAGE_BW = 1e6, 1e15
MAX_HOT_SPARES = 1_000_000


def _range_text(low: float | None, high: float | None, show) -> str:
    if low is None:
        return f"above zero and at most {show(high)}"
    if high is None:
        return f"at least {show(low)}"
    return f"from {show(low)} to {show(high)}"


def _parsed(
    parser,
    example: str,
    positive: bool = True,
    low: float | None = None,
    high: float | None = None,
    show=str,
):
    """A unit string -> the internal unit within [low, high] (low None: above zero, or at least
    zero when not `positive`); bare numbers are refused (as in schema.py)."""

    def check(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"give a unit, e.g. {example!r} (a bare number is ambiguous)")
        try:
            parsed = parser(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if positive and parsed <= 0 and low is None:
            raise ValueError(f"{value!r} must be above zero")
        if (low is not None and parsed < low) or (high is not None and not parsed <= high):
            span = (
                f"at least zero and at most {show(high)}"
                if not positive and low is None
                else _range_text(low, high, show)
            )
            raise ValueError(
                f"{value!r} is out of range: expected {span} (README, Goodput: bounds)"
            )
        return parsed

    return BeforeValidator(check)


def _text(example: str) -> Any:
    return Field(json_schema_extra={"type": "string", "examples": [example]})


def _seconds(s: float) -> str:
    for unit, size in (("years", YEAR), ("days", DAY), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:g} {unit}"
    return f"{s:g} s"


def _rate(bw: float) -> str:
    return f"{fmt_bytes(bw)}/s"


def _duration(
    example: str, low: float | None = None, high: float | None = None, positive: bool = True
) -> tuple[BeforeValidator, Any]:
    """The metadata of a duration field: Annotated[float, *_duration(...)]."""
    return _parsed(parse_duration, example, positive, low, high, _seconds), _text(example)


Mtbf: TypeAlias = Annotated[float, *_duration("50000 h", MIN_UNIT_MTBF_S)]
Window: TypeAlias = Annotated[float, *_duration("54 days", high=MAX_WINDOW_S)]
RestartStep: TypeAlias = Annotated[
    float, *_duration("30 s", high=MAX_RESTART_STEP_S, positive=False)
]
Pause: TypeAlias = Annotated[float, *_duration("10 s", high=MAX_PAUSE_S)]
Repair: TypeAlias = Annotated[float, *_duration("3 days", high=MAX_REPAIR_S)]
StragglerDetection: TypeAlias = Annotated[float, *_duration("20 min", high=MAX_RESTART_STEP_S)]
Bandwidth = Annotated[
    float,
    _parsed(parse_bandwidth, "2 TB/s", low=MIN_STORAGE_BW, high=MAX_STORAGE_BW, show=_rate),
    _text("2 TB/s"),
]
Size = Annotated[
    int,
    _parsed(
        parse_bytes, "5 TB", low=MIN_CHECKPOINT_BYTES, high=MAX_CHECKPOINT_BYTES, show=fmt_bytes
    ),
    _text("5 TB"),
]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Fixed choices, case-insensitive.
CheckpointMode: TypeAlias = Annotated[Literal["sync", "async"], BeforeValidator(_lower)]
WithoutSpare: TypeAlias = Annotated[Literal["wait", "shrink"], BeforeValidator(_lower)]

# The units of simulator/spec/reliability.py: a Literal of them at run time, a str to mypy.
if TYPE_CHECKING:
    UnitName: TypeAlias = str
else:
    UnitName = Annotated[Literal[tuple(UNITS)], BeforeValidator(_lower)]


def _interval(value: Any) -> Any:
    """Steps (an integer), a duration string, or 'optimal'."""
    if isinstance(value, (bool, float)):
        raise ValueError("give whole steps (an integer), a duration such as '30 min', or 'optimal'")
    if isinstance(value, int):
        if not 1 <= value <= MAX_INTERVAL_STEPS:
            raise ValueError(f"expected 1 to {MAX_INTERVAL_STEPS:,} steps")
        return value
    if isinstance(value, str):
        if value.strip().lower() == "optimal":
            return "optimal"
        try:
            seconds = parse_duration(value)
        except UnitError as exc:
            raise ValueError(f"{exc}, whole steps or 'optimal'") from None
        if not 0 < seconds <= MAX_INTERVAL_S:
            raise ValueError(
                f"{value!r} is out of range: expected above zero and at most "
                f"{_seconds(MAX_INTERVAL_S)} (README, Goodput: bounds)"
            )
        return value.strip()
    raise ValueError("give whole steps (an integer), a duration such as '30 min', or 'optimal'")


Interval = Annotated[int | str, BeforeValidator(_interval)]


class _Rate(Strict):
    mtbf: Mtbf | None = Field(
        None, description="mean time between failures of ONE unit, e.g. '50000 h' (at least 1 h)"
    )
    failures_per_1000_unit_days: float | None = Field(
        None,
        ge=0,
        le=MAX_FAILURES_PER_1000_UNIT_DAYS,
        allow_inf_nan=False,
        description="failures per 1,000 unit-days (per 1,000 node-days for unit host, Kokolis et al.'s r_f)",
    )

    @model_validator(mode="after")
    def _one_rate(self):
        if self.mtbf is not None and self.failures_per_1000_unit_days is not None:
            raise ValueError("give mtbf or failures_per_1000_unit_days, not both")
        return self


class FailureSection(_Rate):
    """One failure class. A default class (gpu, host, nic, switch, software, maintenance) keeps
    the Llama 3 values of the fields not given; a new name needs a unit and a rate."""

    unit: UnitName | None = Field(None, description="what the rate is per: gpu, host or job")
    weibull_shape: float | None = Field(
        None,
        ge=MIN_WEIBULL_SHAPE,
        le=MAX_WEIBULL_SHAPE,
        allow_inf_nan=False,
        description="shape of the Weibull times between the job's failures "
        "of this class (1: Poisson, the default)",
    )
    takes_host: bool | None = Field(
        None, description="the failed host is out until repaired (a hot spare replaces it)"
    )
    planned: bool | None = Field(
        None, description="announced in advance: checkpoint first, no lost work"
    )


class CheckpointSection(Strict):
    size: Size | None = Field(
        None,
        description="whole checkpoint (default: the model's weights and "
        "optimizer states, e.g. 14 bytes/param for mixed-precision Adam)",
    )
    mode: CheckpointMode = Field(
        "sync",
        description="async: the step pauses only to copy the "
        "state to host memory; the write goes on in the background",
    )
    interval: Interval = Field(
        "optimal",
        description="steps (an integer), a duration ('30 min'), or "
        "'optimal' (Daly 2006 from the checkpoint cost and the MTBF)",
    )
    write_bandwidth: Bandwidth | None = Field(
        None, description="aggregate storage write rate (default 2 TB/s)"
    )
    write_bandwidth_per_host: Bandwidth | None = Field(
        None, description="per host (default 0.98 GB/s)"
    )
    read_bandwidth: Bandwidth | None = Field(
        None, description="aggregate read rate (default 2 TB/s)"
    )
    read_bandwidth_per_host: Bandwidth | None = Field(
        None, description="per host (default 0.98 GB/s)"
    )
    pause: Pause | None = Field(
        None,
        description="async only: the step's pause (default: the copy of "
        "each GPU's share over PCIe)",
    )


class RestartSection(Strict):
    detection: RestartStep | None = Field(
        None, description="time to detect a failure (default 0: included in initialization)"
    )
    initialization: RestartStep | None = Field(
        None,
        description="rescheduling and re-initialization "
        "(default 10 min); the checkpoint load is added",
    )
    hot_spares: Annotated[int, Field(ge=0, le=MAX_HOT_SPARES, strict=True)] | None = Field(
        None,
        description="spare hosts (default: unlimited, a failed host is always replaced at once)",
    )
    without_spare: WithoutSpare = Field(
        "wait", description="with no spare left: wait for a repair, or continue on fewer hosts"
    )
    repair_time: Repair | None = Field(
        None, description="time to repair a failed host (needed with hot_spares)"
    )


class StragglerSection(_Rate):
    """Slow nodes appearing over time (give a rate, slowdown and detection)."""

    unit: UnitName = "host"
    slowdown: float = Field(
        gt=1, le=100, allow_inf_nan=False, description="step time multiplier while present"
    )
    detection: StragglerDetection = Field(
        description="time until the slow node is found and removed"
    )

    @model_validator(mode="after")
    def _needs_rate(self):
        if self.mtbf is None and self.failures_per_1000_unit_days is None:
            raise ValueError("give the rate of slow nodes: mtbf or failures_per_1000_unit_days")
        return self


class ReliabilitySection(Strict):
    """Failures, checkpoints and restarts over the whole run (defaults: Llama 3 figures)."""

    enabled: bool = True
    failures: dict[str, FailureSection] = Field(default_factory=dict)
    failure_rate_scale: float = Field(
        1.0, ge=0, le=1e6, allow_inf_nan=False, description="multiplies every failure rate"
    )
    checkpoint: CheckpointSection = CheckpointSection()
    restart: RestartSection = RestartSection()
    stragglers: StragglerSection | None = None
    runs: Annotated[int, Field(ge=1, le=MAX_RUNS, strict=True)] = Field(
        DEFAULT_RUNS, description="Monte Carlo runs (seeds)"
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)] | None = Field(
        None, description="default: training.seed"
    )
    window: Window | None = Field(
        None,
        description="simulate a fixed wall-clock window (e.g. '54 days') "
        "instead of the run to completion",
    )
