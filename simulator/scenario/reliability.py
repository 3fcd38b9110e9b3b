"""The scenario's `reliability` section -> ReliabilitySpec: defaults filled in (Llama 3 failure
classes, Tectonic bandwidths, the restart assumption; spec/reliability.py cites each), rates in
failures per unit per second, and the checks that need several fields at once."""

from __future__ import annotations

import dataclasses
from typing import Any

from simulator.core.errors import Problem
from simulator.core.units import parse_duration
from simulator.scenario.schema_reliability import (
    MIN_UNIT_MTBF_S,
    CheckpointSection,
    FailureSection,
    ReliabilitySection,
    RestartSection,
    StragglerSection,
)
from simulator.spec.reliability import (
    RESERVED_CAUSES,
    SECONDS_PER_DAY,
    CheckpointSpec,
    FailureClass,
    ReliabilitySpec,
    RestartSpec,
    StragglerSpec,
    default_failures,
)


def rate_per_unit_s(mtbf_s: float | None, per_1000_unit_days: float | None) -> float | None:
    """Failures per unit per second from an MTBF or a count per 1,000 unit-days."""
    if mtbf_s is not None:
        return 1.0 / mtbf_s
    if per_1000_unit_days is not None:
        return per_1000_unit_days / (1000 * SECONDS_PER_DAY)
    return None


def resolve_reliability(section: ReliabilitySection, problems: list[Problem]) -> ReliabilitySpec:
    """The validated section with defaults; problems are added at their field paths."""
    failures = _failures(section.failures, problems)
    _check_scaled_rates(failures, section.failure_rate_scale, problems)
    return ReliabilitySpec(
        enabled=section.enabled,
        failures=failures,
        rate_scale=section.failure_rate_scale,
        checkpoint=_checkpoint(section.checkpoint, problems),
        restart=_restart(section.restart, problems),
        stragglers=_stragglers(section.stragglers),
        runs=section.runs,
        seed=section.seed,
        window_s=section.window,
    )


def _failures(
    given: dict[str, FailureSection], problems: list[Problem]
) -> tuple[FailureClass, ...]:
    classes = {c.name: c for c in default_failures()}
    for name, f in given.items():
        path = f"reliability.failures.{name}"
        rate = rate_per_unit_s(f.mtbf, f.failures_per_1000_unit_days)
        base = classes.get(name)
        if name in RESERVED_CAUSES:
            problems.append(
                Problem(
                    path,
                    f"{name!r} names time lost otherwise (slow nodes, periodic checkpoints, "
                    "slow running)",
                    "give the failure class another name",
                )
            )
            continue
        if base is None:
            missing = [
                k
                for k, v in (("unit", f.unit), ("mtbf or failures_per_1000_unit_days", rate))
                if v is None
            ]
            if missing:
                problems.append(
                    Problem(
                        path,
                        f"a new failure class needs {' and '.join(missing)}",
                        "the default classes are " + ", ".join(classes),
                    )
                )
                continue
            assert f.unit is not None and rate is not None  # neither is missing
            base = FailureClass(
                name=name, unit=f.unit, rate_per_unit_s=rate, source="scenario file"
            )
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("unit", f.unit),
                ("rate_per_unit_s", rate),
                ("weibull_shape", f.weibull_shape),
                ("takes_host", f.takes_host),
                ("planned", f.planned),
            )
            if v is not None
        }
        if changes and base.source != "scenario file":
            changes["source"] = f"scenario file ({', '.join(changes)}); otherwise {base.source}"
        classes[name] = dataclasses.replace(base, **changes)
    return tuple(classes.values())


def _check_scaled_rates(
    failures: tuple[FailureClass, ...], scale: float, problems: list[Problem]
) -> None:
    """The scale keeps every class within the field's bound: at most one failure per unit-hour."""
    worst = max(failures, key=lambda f: f.rate_per_unit_s, default=None)
    if worst is None or worst.rate_per_unit_s * scale <= 1.0 / MIN_UNIT_MTBF_S:
        return
    limit = 1.0 / (MIN_UNIT_MTBF_S * worst.rate_per_unit_s)
    problems.append(
        Problem(
            "reliability.failure_rate_scale",
            f"{scale:g} makes class {worst.name!r} fail every "
            f"{1.0 / (worst.rate_per_unit_s * scale) / 60:.3g} min per {worst.unit}: "
            "expected at most one failure per unit-hour (README, Goodput: bounds)",
            f"at most {limit:.4g} with these classes",
        )
    )


def _checkpoint(c: CheckpointSection, problems: list[Problem]) -> CheckpointSpec:
    steps = c.interval if isinstance(c.interval, int) else None
    seconds = (
        parse_duration(c.interval)
        if isinstance(c.interval, str) and c.interval != "optimal"
        else None
    )
    if c.pause is not None and c.mode != "async":
        problems.append(
            Problem(
                "reliability.checkpoint.pause",
                "a pause is given for a synchronous checkpoint",
                "set mode: async, or leave pause out (a sync save pauses for the whole write)",
            )
        )
    defaults = CheckpointSpec()
    return CheckpointSpec(
        size_bytes=c.size,
        mode=c.mode,
        interval_steps=steps,
        interval_s=seconds,
        write_bw=c.write_bandwidth or defaults.write_bw,
        write_bw_per_host=c.write_bandwidth_per_host or defaults.write_bw_per_host,
        read_bw=c.read_bandwidth or defaults.read_bw,
        read_bw_per_host=c.read_bandwidth_per_host or defaults.read_bw_per_host,
        pause_s=c.pause,
    )


def _restart(r: RestartSection, problems: list[Problem]) -> RestartSpec:
    if r.hot_spares is not None and r.repair_time is None:
        problems.append(
            Problem(
                "reliability.restart.repair_time",
                "hot_spares is given without a repair time",
                "give repair_time (how long a failed host is out), e.g. '3 days'; no "
                "published default exists",
            )
        )
    if r.hot_spares is None and r.without_spare == "shrink":
        problems.append(
            Problem(
                "reliability.restart.without_spare",
                "shrink applies only with a finite number of hot_spares",
                "give hot_spares (0 for none) and repair_time",
            )
        )
    defaults = RestartSpec()
    return RestartSpec(
        detection_s=r.detection if r.detection is not None else defaults.detection_s,
        initialization_s=r.initialization
        if r.initialization is not None
        else defaults.initialization_s,
        hot_spares=r.hot_spares,
        without_spare=r.without_spare,
        repair_s=r.repair_time,
    )


def _stragglers(s: StragglerSection | None) -> StragglerSpec | None:
    if s is None:
        return None
    rate = rate_per_unit_s(s.mtbf, s.failures_per_1000_unit_days)
    assert rate is not None  # StragglerSection._needs_rate requires a rate
    return StragglerSpec(
        unit=s.unit,
        rate_per_unit_s=rate,
        slowdown=s.slowdown,
        detection_s=s.detection,
    )
