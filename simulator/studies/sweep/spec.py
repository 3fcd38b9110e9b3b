"""Sweep files: one base scenario varied along dotted-path axes (grid or zip), one result row per point.

A sweep file names a base scenario (a path or an inline mapping), fixed overrides (`set`)
and axes; every path is checked to name a field before any point runs. runner.py runs them.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.resources import scenario_dir
from simulator.core.yamlio import read_yaml
from simulator.studies.sweep.results import OUTPUT_COLUMNS, is_number

SWEEP_KEYS = ("name", "description", "base", "set", "mode", "axes")
MODES = ("grid", "zip")
RANGE_KEYS = ("start", "stop", "step", "factor")
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base scenario mapping, fixed overrides and the axes."""

    name: str
    base: dict[str, Any]
    base_dir: Path | None  # where relative topology paths resolve
    mode: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    fixed: tuple[tuple[str, Any], ...] = ()
    source: str = ""
    protected: tuple[str, ...] = ()  # input files (resolved paths) an output must never replace
    base_file: str | None = None  # the base scenario file (resolved), when base is a path

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.axes]

    @property
    def columns(self) -> list[str]:
        return ["point", *self.paths, *OUTPUT_COLUMNS]

    def points(self) -> list[tuple[Any, ...]]:
        """The axis values of every point, in point order."""
        return expand(self.mode, [values for _, values in self.axes])

    def scenario_dict(self, values: Iterable[Any]) -> dict[str, Any]:
        """The scenario mapping of one point: base, then fixed overrides, then axis values."""
        data = copy.deepcopy(self.base)
        for path, value in [*self.fixed, *zip(self.paths, values)]:
            set_path(data, path, copy.deepcopy(value))
        return data


@dataclass
class SweepSummary:
    total: int
    resumed: int
    computed: int
    status_counts: dict[str, int]
    path: Path


# ---------------------------------------------------------------------------------- the file


def sweep_names() -> list[str]:
    """Shipped sweeps (scenarios/sweeps; simulator/data/scenarios/sweeps in a wheel), by name."""
    return sorted(p.stem for p in (scenario_dir() / "sweeps").glob("*.yaml"))


def sweep_path(name_or_path: str | Path) -> Path:
    """A sweep file by path, or a shipped sweep by name (`clustersim scenarios` lists them)."""
    text = str(name_or_path)
    path = Path(text)
    if path.exists() or text.endswith((".yaml", ".yml")):
        return path
    shipped = scenario_dir() / "sweeps" / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    raise UserError(
        Problem(
            "SWEEP", f"no sweep file or shipped sweep {text!r}", did_you_mean(text, sweep_names())
        )
    )


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; UserError names the file and every problem."""
    path = sweep_path(path)
    data = read_yaml(path)
    if "model" in data and "axes" not in data:
        raise UserError(
            Problem(
                "",
                "this is a scenario file (it has a model section and no axes), not a sweep",
                f"run it with: clustersim run {path}",
            ),
            str(path),
        )
    try:
        sweep = sweep_from_dict(data, path.parent, default_name=path.stem)
    except UserError as exc:
        raise exc.with_source(str(path)) from None
    return dataclasses.replace(
        sweep, source=str(path), protected=(str(path.resolve()), *sweep.protected)
    )


def sweep_from_dict(
    data: dict[str, Any], sweep_dir: Path | None = None, default_name: str = "sweep"
) -> Sweep:
    """Validate a sweep mapping; `base` given as a path is relative to sweep_dir."""
    problems: list[Problem] = []
    for key in data:
        if key not in SWEEP_KEYS:
            problems.append(Problem(str(key), "unknown key", did_you_mean(str(key), SWEEP_KEYS)))
    mode = data.get("mode", "grid")
    if mode not in MODES:
        problems.append(
            Problem("mode", f"expected grid or zip, got {mode!r}", did_you_mean(str(mode), MODES))
        )
    base, base_dir, protected = _base(data.get("base"), sweep_dir, problems)
    fixed = _fixed(data.get("set", {}), problems)
    axes = _axes(data.get("axes"), problems)
    if mode == "zip" and len({len(v) for _, v in axes}) > 1:
        lengths = ", ".join(f"{p}: {len(v)}" for p, v in axes)
        problems.append(
            Problem(
                "axes",
                f"zip needs axes of equal length, got {lengths}",
                "give each axis the same number of values, or use mode: grid",
            )
        )
    if not problems and mode == "grid" and math.prod(len(v) for _, v in axes) > MAX_POINTS:
        problems.append(
            Problem("axes", f"the grid has more than {MAX_POINTS:,} points", "split the sweep")
        )
    if problems:
        raise UserError(problems)
    sweep = Sweep(
        name=str(data.get("name", default_name)),
        base=base,
        base_dir=base_dir,
        mode=mode,
        axes=tuple(axes),
        fixed=tuple(fixed),
        protected=protected,
        base_file=protected[0] if protected else None,
    )
    _check_paths(sweep)
    return sweep


def _base(value: Any, sweep_dir: Path | None, problems: list[Problem]):
    if value is None:
        problems.append(
            Problem(
                "base",
                "required key is missing",
                "give a scenario file (relative to the sweep file) or an inline scenario",
            )
        )
        return {}, sweep_dir, ()
    if isinstance(value, dict):
        return copy.deepcopy(value), sweep_dir, ()
    if not isinstance(value, str):
        problems.append(
            Problem("base", f"expected a file path or a mapping, got {type(value).__name__}")
        )
        return {}, sweep_dir, ()
    path = (sweep_dir / value) if sweep_dir is not None else Path(value)
    try:
        return read_yaml(path), path.parent, (str(path.resolve()),)
    except UserError as exc:
        problems.extend(Problem("base", f"{value}: {p.message}", p.hint) for p in exc.problems)
        return {}, sweep_dir, ()


def _fixed(value: Any, problems: list[Problem]) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        problems.append(
            Problem(
                "set", f"expected a mapping of dotted paths to values, got {type(value).__name__}"
            )
        )
        return []
    return [(str(path), v) for path, v in value.items()]


def _axes(value: Any, problems: list[Problem]) -> list[tuple[str, tuple[Any, ...]]]:
    if not isinstance(value, dict) or not value:
        problems.append(
            Problem(
                "axes",
                "expected a mapping of dotted paths to lists of values",
                "e.g. axes: {training.strategy: [ddp, zero3]}",
            )
        )
        return []
    axes = []
    for path, values in value.items():
        path = str(path)
        if path in OUTPUT_COLUMNS or path == "point":
            problems.append(
                Problem(
                    f"axes.{path}",
                    f"clashes with the output column {path!r}",
                    "sweep a field inside it, e.g. model.preset",
                )
            )
            continue
        try:
            axes.append((path, axis_values(values)))
        except ValueError as exc:
            problems.append(Problem(f"axes.{path}", str(exc)))
    return axes


def axis_values(spec: Any) -> tuple[Any, ...]:
    """An axis' values: a list (with an optional `...` between a progression and its end) or a
    range mapping {start, stop, step | factor}, stop included."""
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in RANGE_KEYS]
        if (
            unknown
            or "start" not in spec
            or "stop" not in spec
            or ("step" in spec) == ("factor" in spec)
        ):
            raise ValueError(
                "a range needs start, stop and one of step or factor, e.g. "
                "{start: 1, stop: 256, factor: 2}"
            )
        return _progression(spec["start"], spec["stop"], spec.get("step"), spec.get("factor"))
    if not isinstance(spec, list) or not spec:
        raise ValueError("expected a non-empty list of values")
    if "..." not in spec:
        return tuple(spec)
    i = spec.index("...")
    head, tail = spec[:i], spec[i + 1 :]
    if len(head) < 3 or len(tail) != 1 or not all(is_number(v) for v in [*head, *tail]):
        raise ValueError(
            "'...' needs three numbers before it and one after, e.g. [1, 2, 4, ..., 256] "
            "(or a range {start: 1, stop: 256, factor: 2})"
        )
    a, b, c = head[:3]
    if b - a == c - b and b != a:
        values = _progression(a, tail[0], step=b - a)
    elif a and b and b / a == c / b and b / a > 0 and b != a:
        values = _progression(a, tail[0], factor=b / a)
    else:
        raise ValueError(f"{a}, {b}, {c} is neither arithmetic nor geometric; list every value")
    if list(values[: len(head)]) != head or values[-1] != tail[0]:
        raise ValueError(
            f"the progression from {a}, {b}, {c} does not reach {tail[0]}; list every value"
        )
    return values


def _progression(start, stop, step=None, factor=None) -> tuple[Any, ...]:
    if not all(is_number(v) for v in (start, stop, step or 1, factor or 2)):
        raise ValueError("range values must be numbers")
    if (step is not None and step <= 0) or (factor is not None and factor <= 1) or stop < start:
        raise ValueError("a range needs start <= stop and step > 0 or factor > 1")
    if factor is not None and start <= 0:
        raise ValueError("a geometric range needs start > 0")
    values, x, i = [], start, 0
    while x <= stop * (1 + 1e-12):
        values.append(x)
        i += 1
        if i > MAX_POINTS:
            raise ValueError(f"the range has more than {MAX_POINTS:,} values")
        x = start + i * step if step is not None else x * factor
    integral = (
        all(isinstance(v, int) for v in (start, stop, step or 1))
        and float(factor or 2).is_integer()
    )
    return tuple(round(v) if integral else v for v in values)


def expand(mode: str, axes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Point values: grid = cartesian product, the last axis varying fastest; zip = i-th values."""
    if mode == "zip":
        return list(zip(*axes))
    return list(itertools.product(*axes))


def set_path(data: dict[str, Any], path: str, value: Any) -> list[str]:
    """Set a dotted path in nested mappings (numeric parts index lists); the missing mappings it
    created on the way, as dotted paths."""
    parts, created = path.split("."), []
    node: Any = data
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth]) or "(top level)"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(
                    Problem(
                        path, f"{here} is a list of {len(node)}; {part!r} is not an index in it"
                    )
                )
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            kind = {str: "string", bool: "boolean", int: "number", float: "number"}.get(
                type(node), "value"
            )
            raise UserError(
                Problem(
                    path,
                    f"{here} is a {kind}, not a mapping",
                    f"sweep {here} itself, or make it a mapping in the base",
                )
            )
        if depth == len(parts) - 1:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
                created.append(".".join(parts[: depth + 1]))
            node = node[key]
    return created


def _check_paths(sweep: Sweep) -> None:
    """Every set/axis path names a field: set them all (first values) and validate the base.
    Unknown keys are errors of the sweep file; other problems are per-point results."""
    from simulator.scenario.load import scenario_from_dict

    first = sweep.points()[0]
    where = {path: f"set.{path}" for path, _ in sweep.fixed} | {p: f"axes.{p}" for p in sweep.paths}
    problems: list[Problem] = []
    created: dict[str, str] = {}  # a mapping made on the way to a path -> that path's owner
    data = copy.deepcopy(sweep.base)
    for path, value in [*sweep.fixed, *zip(sweep.paths, first)]:
        try:
            created |= dict.fromkeys(set_path(data, path, copy.deepcopy(value)), where[path])
        except UserError as exc:
            problems.append(Problem(where[path], exc.problems[0].message, exc.problems[0].hint))
    try:
        scenario_from_dict(data, base_dir=sweep.base_dir)
    except UserError as exc:
        for p in exc.problems:
            if p.path in created:  # e.g. training.strategy.x made training.strategy a mapping
                problems.append(
                    Problem(
                        created[p.path], f"names no field ({p.path} is not a section: {p.message})"
                    )
                )
            if p.message != "unknown key":
                continue
            owner = next(
                (w for path, w in where.items() if path == p.path or path.startswith(p.path + ".")),
                None,
            )
            problems.append(
                Problem(owner, f"names no field ({p.path}: unknown key)", p.hint)
                if owner
                else Problem(f"base.{p.path}", "unknown key", p.hint)
            )
    except Exception:  # noqa: BLE001, S110  (a simulator failure is reported per point, as status error)
        pass
    if problems:
        raise UserError(problems)
