"""Sweeps: one base scenario varied along dotted-path axes (grid or zip), one result row per point.

    sweep = load_sweep("scenarios/sweeps/llama2-capacity.yaml")
    summary = run_sweep(sweep, "results.csv", jobs=2)

Points run in parallel (a ProcessPoolExecutor, or a Dask cluster through its concurrent.futures
executor); rows are appended to the output as they finish, so an interrupted sweep keeps its
rows and a rerun computes only the missing points. The finished file is rewritten in point
order, atomically, so it is byte-identical whether or not the sweep was interrupted.
This module prints nothing: progress goes to a callback (the CLI draws the bar).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.core.errors import Problem, ScenarioError, did_you_mean
from simulator.studies.sweep.results import OUTPUT_COLUMNS, RESULTS_VERSION, ResultsStore, is_number, output_format
from simulator.core.yamlio import read_yaml

SWEEP_KEYS = ("name", "description", "base", "set", "mode", "axes")
MODES = ("grid", "zip")
RANGE_KEYS = ("start", "stop", "step", "factor")
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base scenario mapping, fixed overrides and the axes."""

    name: str
    base: dict[str, Any]
    base_dir: Path | None                       # where relative topology paths resolve
    mode: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    fixed: tuple[tuple[str, Any], ...] = ()
    source: str = ""
    protected: tuple[str, ...] = ()  # input files (resolved paths) an output must never replace

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

    def fingerprint(self, backend: str) -> str:
        """A hash of everything that decides the rows: a results file of another sweep differs."""
        definition = {"version": RESULTS_VERSION, "clustersim": __version__, "base": self.base,
                      "set": [list(f) for f in self.fixed], "mode": self.mode,
                      "axes": [[p, list(v)] for p, v in self.axes], "network": backend,
                      "columns": self.columns}
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SweepSummary:
    total: int
    resumed: int
    computed: int
    status_counts: dict[str, int]
    path: Path


# ---------------------------------------------------------------------------------- the file


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; ScenarioError names the file and every problem."""
    path = Path(path)
    data = read_yaml(path)
    try:
        sweep = sweep_from_dict(data, path.parent, default_name=path.stem)
    except ScenarioError as exc:
        raise exc.with_source(str(path)) from None
    return dataclasses.replace(sweep, source=str(path), protected=(str(path.resolve()), *sweep.protected))


def sweep_from_dict(data: dict[str, Any], sweep_dir: Path | None = None, default_name: str = "sweep") -> Sweep:
    """Validate a sweep mapping; `base` given as a path is relative to sweep_dir."""
    problems: list[Problem] = []
    for key in data:
        if key not in SWEEP_KEYS:
            problems.append(Problem(str(key), "unknown key", did_you_mean(str(key), SWEEP_KEYS)))
    mode = data.get("mode", "grid")
    if mode not in MODES:
        problems.append(Problem("mode", f"expected grid or zip, got {mode!r}", did_you_mean(str(mode), MODES)))
    base, base_dir, protected = _base(data.get("base"), sweep_dir, problems)
    fixed = _fixed(data.get("set", {}), problems)
    axes = _axes(data.get("axes"), problems)
    if mode == "zip" and len({len(v) for _, v in axes}) > 1:
        lengths = ", ".join(f"{p}: {len(v)}" for p, v in axes)
        problems.append(Problem("axes", f"zip needs axes of equal length, got {lengths}",
                                "give each axis the same number of values, or use mode: grid"))
    if not problems and mode == "grid" and math.prod(len(v) for _, v in axes) > MAX_POINTS:
        problems.append(Problem("axes", f"the grid has more than {MAX_POINTS:,} points", "split the sweep"))
    if problems:
        raise ScenarioError(problems)
    sweep = Sweep(name=str(data.get("name", default_name)), base=base, base_dir=base_dir, mode=mode,
                  axes=tuple(axes), fixed=tuple(fixed), protected=protected)
    _check_paths(sweep)
    return sweep


def _base(value: Any, sweep_dir: Path | None, problems: list[Problem]):
    if value is None:
        problems.append(Problem("base", "required key is missing",
                                "give a scenario file (relative to the sweep file) or an inline scenario"))
        return {}, sweep_dir, ()
    if isinstance(value, dict):
        return copy.deepcopy(value), sweep_dir, ()
    if not isinstance(value, str):
        problems.append(Problem("base", f"expected a file path or a mapping, got {type(value).__name__}"))
        return {}, sweep_dir, ()
    path = (sweep_dir / value) if sweep_dir is not None else Path(value)
    try:
        return read_yaml(path), path.parent, (str(path.resolve()),)
    except ScenarioError as exc:
        problems.extend(Problem("base", f"{value}: {p.message}", p.hint) for p in exc.problems)
        return {}, sweep_dir, ()


def _fixed(value: Any, problems: list[Problem]) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        problems.append(Problem("set", f"expected a mapping of dotted paths to values, got {type(value).__name__}"))
        return []
    return [(str(path), v) for path, v in value.items()]


def _axes(value: Any, problems: list[Problem]) -> list[tuple[str, tuple[Any, ...]]]:
    if not isinstance(value, dict) or not value:
        problems.append(Problem("axes", "expected a mapping of dotted paths to lists of values",
                                "e.g. axes: {training.strategy: [ddp, zero3]}"))
        return []
    axes = []
    for path, values in value.items():
        path = str(path)
        if path in OUTPUT_COLUMNS or path == "point":
            problems.append(Problem(f"axes.{path}", f"clashes with the output column {path!r}",
                                    "sweep a field inside it, e.g. model.preset"))
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
        if unknown or "start" not in spec or "stop" not in spec or ("step" in spec) == ("factor" in spec):
            raise ValueError("a range needs start, stop and one of step or factor, e.g. "
                             "{start: 1, stop: 256, factor: 2}")
        return _progression(spec["start"], spec["stop"], spec.get("step"), spec.get("factor"))
    if not isinstance(spec, list) or not spec:
        raise ValueError("expected a non-empty list of values")
    if "..." not in spec:
        return tuple(spec)
    i = spec.index("...")
    head, tail = spec[:i], spec[i + 1:]
    if len(head) < 3 or len(tail) != 1 or not all(is_number(v) for v in [*head, *tail]):
        raise ValueError("'...' needs three numbers before it and one after, e.g. [1, 2, 4, ..., 256] "
                         "(or a range {start: 1, stop: 256, factor: 2})")
    a, b, c = head[:3]
    if b - a == c - b and b != a:
        values = _progression(a, tail[0], step=b - a)
    elif a and b and b / a == c / b and b / a > 0 and b != a:
        values = _progression(a, tail[0], factor=b / a)
    else:
        raise ValueError(f"{a}, {b}, {c} is neither arithmetic nor geometric; list every value")
    if list(values[:len(head)]) != head or values[-1] != tail[0]:
        raise ValueError(f"the progression from {a}, {b}, {c} does not reach {tail[0]}; list every value")
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
    integral = all(isinstance(v, int) for v in (start, stop, step or 1)) and float(factor or 2).is_integer()
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
                raise ScenarioError(Problem(path, f"{here} is a list of {len(node)}; {part!r} is not an index in it"))
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            kind = {str: "string", bool: "boolean", int: "number", float: "number"}.get(type(node), "value")
            raise ScenarioError(Problem(path, f"{here} is a {kind}, not a mapping",
                                        f"sweep {here} itself, or make it a mapping in the base"))
        if depth == len(parts) - 1:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
                created.append(".".join(parts[:depth + 1]))
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
        except ScenarioError as exc:
            problems.append(Problem(where[path], exc.problems[0].message, exc.problems[0].hint))
    try:
        scenario_from_dict(data, base_dir=sweep.base_dir)
    except ScenarioError as exc:
        for p in exc.problems:
            if p.path in created:  # e.g. training.strategy.x made training.strategy a mapping
                problems.append(Problem(created[p.path], f"names no field ({p.path} is not a section: "
                                                         f"{p.message})"))
            if p.message != "unknown key":
                continue
            owner = next((w for path, w in where.items() if path == p.path or path.startswith(p.path + ".")), None)
            problems.append(Problem(owner, f"names no field ({p.path}: unknown key)", p.hint) if owner
                            else Problem(f"base.{p.path}", "unknown key", p.hint))
    except Exception:  # noqa: BLE001, S110  (a simulator failure is reported per point, as status error)
        pass
    if problems:
        raise ScenarioError(problems)


# ---------------------------------------------------------------------------------- one point


class PointTimeout(BaseException):
    """A point ran past its time limit (a BaseException, so no `except Exception` swallows it)."""


def run_point(task: tuple[int, dict[str, Any], str | None, str, float | None]) -> dict[str, Any]:
    """One point's row (the worker function): status ok | invalid | error, never an exception."""
    point, data, base_dir, backend, timeout_s = task
    from simulator.scenario.load import scenario_from_dict
    from simulator.studies.simulate import simulate

    row: dict[str, Any] = {"point": point}
    try:
        with _TimeLimit(timeout_s):
            scenario = scenario_from_dict(data, base_dir=Path(base_dir) if base_dir else None)
            report = simulate(scenario, backend=backend)
    except ScenarioError as exc:
        return {**row, "status": "invalid", "message": "; ".join(p.render() for p in exc.problems)}
    except PointTimeout:
        return {**row, "status": "error", "message": f"timed out after {timeout_s:g} s"}
    except Exception as exc:  # noqa: BLE001  (a simulator bug in one point must not end the sweep)
        return {**row, "status": "error", "message": f"{type(exc).__name__}: {exc}"}
    return {**row, "status": "ok", "message": "", **outputs(report)}


class _TimeLimit:
    """SIGALRM-based wall-clock limit; only where signals work (a process' main thread)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds if seconds and threading.current_thread() is threading.main_thread() \
            and hasattr(signal, "setitimer") else None

    def __enter__(self):
        if self.seconds:
            self.old = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)

    @staticmethod
    def _expire(signum, frame):
        raise PointTimeout()


def outputs(report: dict[str, Any]) -> dict[str, Any]:
    """The key outputs of a report, by result column (cost_usd None when no price was given)."""
    mem, per, step, tr = report["memory"], report["memory"]["per_gpu"], report["step"], report["training"]
    values = {
        "name": report["name"], "model": report["model"]["name"], "params": report["model"]["params"],
        "strategy": tr["strategy"], "gpu": report["cluster"]["gpu"], "num_gpus": report["cluster"]["num_gpus"],
        "fits": mem["fits"], "mem_total_bytes": per["total_bytes"],
        **{f"mem_{k}_bytes": per[f"{k}_bytes"]
           for k in ("params", "grads", "optimizer", "activations", "buffers", "overhead")},
        "capacity_bytes": mem["capacity_bytes"], "step_time_s": step["time_s"], "compute_s": step["compute_s"],
        "comm_s": step["comm_s"], "exposed_comm_s": step["exposed_comm_s"], "mfu": step["mfu"],
        "tokens_per_s": step["tokens_per_s"], "tokens_per_s_per_gpu": step["tokens_per_s_per_gpu"],
        "days": tr.get("days"), "gpu_hours": tr.get("gpu_hours"), "cost_usd": tr.get("cost_usd"),
    }
    return {key: _plain(value) for key, value in values.items()}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python ones, so every format writes them the same way."""
    if hasattr(value, "item") and not isinstance(value, (int, float, str)):
        value = value.item()  # numpy bool_, integer, floating
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


# ---------------------------------------------------------------------------------- running


def run_sweep(sweep: Sweep, out: str | Path, *, jobs: int | None = None, dask: str | None = None,
              dask_processes: bool = True, backend: str = "fluid", timeout_s: float | None = None,
              force: bool = False, retry_errors: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> SweepSummary:
    """Run the points not already in `out`, appending rows as they finish, then rewrite `out`
    in point order. A KeyboardInterrupt leaves the appended rows for the next run to resume."""
    out = Path(out)
    if str(out.resolve()) in sweep.protected or out.is_dir():
        what = "a directory" if out.is_dir() else "an input of this sweep"
        raise ScenarioError(Problem("--out", f"{out} is {what}", "give another output file"))
    points, fmt = sweep.points(), output_format(out)
    jobs = max(1, jobs or os.cpu_count() or 1)
    # Connect to Dask first: a wrong address must not leave an empty results file behind.
    with _dask_client(dask, jobs, dask_processes) if dask else contextlib.nullcontext() as client:
        store = ResultsStore(out, fmt, sweep.columns, sweep.fingerprint(backend), sweep.source)
        done = store.open(force=force, retry_errors=retry_errors, num_points=len(points))
        base_dir = str(sweep.base_dir) if sweep.base_dir is not None else None
        tasks = [(i, sweep.scenario_dict(values), base_dir, backend, timeout_s)
                 for i, values in enumerate(points) if i not in done]
        axis_cells = {i: dict(zip(sweep.paths, values)) for i, values in enumerate(points)}
        progress = on_progress or (lambda done_, total: None)
        progress(len(done), len(points))
        try:
            for row in _execute(tasks, jobs, client):
                store.append({**row, **axis_cells[row["point"]]})
                progress(store.count, len(points))
        finally:
            store.close()
    counts = store.finish()
    return SweepSummary(total=len(points), resumed=len(done), computed=len(tasks), status_counts=counts,
                        path=out)


def _execute(tasks: list, jobs: int, client: Any) -> Iterator[dict]:
    """Rows as points finish: on Dask (its concurrent.futures executor), a process pool, or inline."""
    if client is not None:
        yield from _drain(client.get_executor(), tasks)
    elif jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            yield run_point(task)
    else:
        import simulator.studies.simulate  # noqa: F401  (forked workers inherit the imports)

        pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)))
        try:
            yield from _drain(pool, tasks)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _drain(executor: Executor, tasks: list) -> Iterator[dict]:
    futures = [executor.submit(run_point, task) for task in tasks]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def _dask_client(address: str, jobs: int, processes: bool):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ScenarioError(Problem("--dask", "dask.distributed is not installed",
                                    "pip install 'dask[distributed]', or run without --dask")) from None
    if address == "local":
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=processes,
                               dashboard_address=None)
        return _Closing(Client(cluster), cluster)
    try:
        return _Closing(Client(address, timeout="10s"))
    except OSError as exc:
        raise ScenarioError(Problem("--dask", f"cannot reach the scheduler at {address}: {exc}",
                                    "give tcp://HOST:PORT of a running dask scheduler, or 'local'")) from None


class _Closing:
    """Close a dask client (and its local cluster) on exit."""

    def __init__(self, client, cluster=None):
        self.client, self.cluster = client, cluster

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
