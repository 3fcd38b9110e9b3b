"""`Params`: typed access to a topology file's mappings, collecting every problem with its path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.core.errors import Problem, did_you_mean
from simulator.core.units import UnitError, parse_bandwidth, parse_duration

_MISSING = object()


class Params:
    """Typed access to one YAML mapping; problems are appended, never raised, so all are reported."""

    def __init__(self, data: Any, path: str, problems: list[Problem]):
        self.path, self.problems = path, problems
        if not isinstance(data, dict):
            problems.append(Problem(path, f"expected a mapping, got {type(data).__name__}"))
            data = {}
        self.data, self.used = data, set()

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

    def int(self, key: str, default: Any = _MISSING, minimum: int = 1) -> int:
        value = self._get(key, default)
        if value is default:
            return 1 if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problems.append(
                Problem(self.where(key), f"expected an integer >= {minimum}, got {value!r}")
            )
            return max(minimum, 1)
        return value

    def float(self, key: str, default: Any = _MISSING, minimum: float = 0.0) -> float:
        value = self._get(key, default)
        if value is default:
            return 1.0 if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            self.problems.append(
                Problem(self.where(key), f"expected a number >= {minimum}, got {value!r}")
            )
            return 1.0
        return float(value)

    def _unit(self, key: str, default: Any, parse: Callable, example: str) -> float:
        value = self._get(key, default)
        if value is _MISSING:
            return 1.0
        try:
            return parse(value)
        except UnitError as exc:
            self.problems.append(Problem(self.where(key), str(exc), f"for example {example!r}"))
            return 1.0

    def bw(self, key: str, default: Any = _MISSING) -> float:
        """A positive bandwidth in bytes/s ('300 GB/s', '200 Gb/s')."""
        return self._unit(key, default, parse_bandwidth, "300 GB/s")

    def duration(self, key: str, default: Any = _MISSING) -> float:
        return self._unit(key, default, parse_duration, "1 us")

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.problems.append(
                Problem(self.where(key), f"expected true or false, got {value!r}")
            )
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

    def sub(self, key: str, required: bool = True) -> Params | None:
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
