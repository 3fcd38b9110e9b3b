"""`Params`: typed access to a topology file's mappings, collecting every problem with its path."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any

from simulator.core.errors import Problem, did_you_mean
from simulator.core.units import UnitError, parse_bandwidth, parse_duration
from simulator.system.topology.builders.limits import MAX_LINK_BW, MAX_LINK_LATENCY, MIN_LINK_BW

_MISSING = object()


class Params:
    """Typed access to one YAML mapping; problems are appended, never raised, so all are reported."""

    def __init__(self, data: Any, path: str, problems: list[Problem]):
        self.path, self.problems = path, problems
        if not isinstance(data, dict):
            problems.append(Problem(path, f"expected a mapping, got {type(data).__name__}"))
            data = {}
        self.data: dict[Any, Any] = data
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        """The dotted path of `key` in the file, as problems report it."""
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is _MISSING:
            self.problems.append(Problem(self.where(key), "required field is missing"))
        return default

    def int(
        self,
        key: str,
        default: Any = _MISSING,
        minimum: int = 1,
        maximum: int | None = None,
        why: str = "",
    ) -> int:
        """An integer in [minimum, maximum]; out of range, the problem says why the bound is there
        and the smallest value is returned (so nothing large is built before the error is raised)."""
        value = self._get(key, default)
        if value is default:
            return 1 if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problems.append(
                Problem(self.where(key), f"expected an integer >= {minimum}, got {value!r}")
            )
            return max(minimum, 1)
        if maximum is not None and value > maximum:
            self.problems.append(
                Problem(self.where(key), f"{value:,} is above the maximum {maximum:,}", why)
            )
            return max(minimum, 1)
        return value

    def float(
        self, key: str, default: Any = _MISSING, minimum: float = 0.0, maximum: float = float("inf")
    ) -> float:
        value = self._get(key, default)
        if value is default:
            return 1.0 if value is _MISSING else value
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not minimum <= value <= maximum
        ):
            bound = (
                f">= {minimum:g}" if maximum == float("inf") else f"from {minimum:g} to {maximum:g}"
            )
            self.problems.append(
                Problem(self.where(key), f"expected a number {bound}, got {value!r}")
            )
            return 1.0
        return float(value)

    def _unit(
        self,
        key: str,
        default: Any,
        parse: Callable,
        example: str,
        low: builtins.float,
        high: builtins.float,
        shown: Callable[[builtins.float], str],
    ) -> builtins.float:
        """A quantity with its unit, within [low, high]; a default (already internal units) is
        returned as is, a bare number in the file is refused (which unit would it be?)."""
        value = self._get(key, default)
        if value is _MISSING:
            return 1.0
        if self.data.get(key) is None:
            return default
        try:
            parsed = parse(value)
        except UnitError as exc:
            self.problems.append(Problem(self.where(key), str(exc)))
            return 1.0
        if not low <= parsed <= high:
            self.problems.append(
                Problem(
                    self.where(key),
                    f"{value!r} is outside {shown(low)} .. {shown(high)}",
                    f"for example {example!r}; check the unit",
                )
            )
            return 1.0
        return parsed

    def bw(self, key: str, default: Any = _MISSING) -> builtins.float:
        """A bandwidth in bytes/s per direction ('300 GB/s', '200 Gb/s'), within MIN/MAX_LINK_BW."""
        return self._unit(
            key,
            default,
            parse_bandwidth,
            "300 GB/s",
            MIN_LINK_BW,
            MAX_LINK_BW,
            lambda x: f"{x / 1e9:g} GB/s",
        )

    def duration(self, key: str, default: Any = _MISSING) -> builtins.float:
        """A latency in seconds ('0.35 us'), from 0 to MAX_LINK_LATENCY."""
        return self._unit(
            key, default, parse_duration, "1 us", 0.0, MAX_LINK_LATENCY, lambda x: f"{x:g} s"
        )

    def bool(self, key: str, default: Any = _MISSING) -> builtins.bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.problems.append(Problem(self.where(key), f"expected true or false, got {value!r}"))
            return bool(default) if default is not _MISSING else False
        return value

    def choice(self, key: str, choices: tuple, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value not in choices:
            if value is not _MISSING:
                self.problems.append(
                    Problem(
                        self.where(key),
                        f"unknown value {value!r}",
                        did_you_mean(str(value), [str(c) for c in choices]),
                    )
                )
            return choices[0]
        return value

    def sub(self, key: str, required: builtins.bool = True) -> Params | None:
        value = self._get(key, _MISSING if required else None)
        if value is None or value is _MISSING:
            return None
        return Params(value, self.where(key), self.problems)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    def finish(self, extra_allowed: tuple = ()) -> None:
        """Report keys nobody read (misspelt parameters) with a suggestion."""
        known = set(self.used) | set(extra_allowed)
        for key in self.data:
            if key not in known:
                self.problems.append(
                    Problem(
                        self.where(str(key)),
                        "unknown field",
                        did_you_mean(str(key), sorted(known)),
                    )
                )
