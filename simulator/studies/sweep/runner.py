"""Running a sweep: points in chunks on a process pool or a Dask cluster, rows appended as they
finish, a resumable results file (results.py).

    summary = run_sweep(load_sweep("sweep.yaml"), "results.csv", jobs=2)

Points run in chunks of consecutive points, each chunk with one SimContext (built topologies
and collective plans are shared by the chunk's points). This module prints nothing: progress
goes to a callback (the CLI draws the bar).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import signal
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.report.energy import energy_columns
from simulator.report.goodput import goodput_columns, goodput_note
from simulator.studies.sweep.dask_session import dask_session
from simulator.studies.sweep.provenance import sweep_provenance
from simulator.studies.sweep.results import ResultsStore, output_format
from simulator.studies.sweep.spec import Sweep, SweepSummary
from simulator.studies.workers import terminate_workers, worker_pool

# ---------------------------------------------------------------------------------- one point


class PointTimeout(BaseException):
    """A point ran past its time limit (a BaseException, so no `except Exception` swallows it)."""


# Points per task: one SimContext serves a chunk, so consecutive points on one cluster share
# its built topology and collective plans; small enough that rows still stream in.
CHUNK_POINTS = 4


def run_chunk(
    tasks: list[tuple[int, dict[str, Any], str | None, str, float | None]],
) -> list[dict[str, Any]]:
    """The rows of consecutive points (the worker function), sharing one simulation context."""
    from simulator.execution.context import SimContext

    ctx = SimContext()
    return [run_point(task, ctx) for task in tasks]


def run_point(
    task: tuple[int, dict[str, Any], str | None, str, float | None], ctx=None
) -> dict[str, Any]:
    """One point's row: status ok | invalid | error, never an exception."""
    point, data, base_dir, backend, timeout_s = task
    from simulator.scenario.load import scenario_from_dict
    from simulator.studies.simulate import simulate

    row: dict[str, Any] = {"point": point}
    try:
        with _TimeLimit(timeout_s):
            scenario = scenario_from_dict(data, base_dir=base_dir)
            report = simulate(scenario, backend=backend, ctx=ctx)
    except UserError as exc:
        return {**row, "status": "invalid", "message": "; ".join(p.render() for p in exc.problems)}
    except PointTimeout:
        return {**row, "status": "error", "message": f"timed out after {timeout_s:g} s"}
    except Exception as exc:  # noqa: BLE001  (a simulator bug in one point must not end the sweep)
        return {**row, "status": "error", "message": f"{type(exc).__name__}: {exc}"}
    return {**row, "status": "ok", "message": goodput_note(report), **outputs(report)}


class _TimeLimit:
    """SIGALRM-based wall-clock limit; only where signals work (a process' main thread)."""

    def __init__(self, seconds: float | None):
        self.seconds = (
            seconds
            if seconds
            and threading.current_thread() is threading.main_thread()
            and hasattr(signal, "setitimer")
            else None
        )

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
    mem, per, step, tr = (
        report["memory"],
        report["memory"]["per_gpu"],
        report["step"],
        report["training"],
    )
    values = {
        "name": report["name"],
        "model": report["model"]["name"],
        "params": report["model"]["params"],
        "strategy": tr["strategy"],
        "gpu": report["cluster"]["gpu"],
        "num_gpus": report["cluster"]["num_gpus"],
        "fits": mem["fits"],
        "mem_total_bytes": per["total_bytes"],
        **{
            f"mem_{k}_bytes": per[f"{k}_bytes"]
            for k in ("params", "grads", "optimizer", "activations", "buffers", "overhead")
        },
        "capacity_bytes": mem["capacity_bytes"],
        "step_time_s": step["time_s"],
        "step_time_lo_s": step["interval"]["time_s"][0],
        "step_time_hi_s": step["interval"]["time_s"][1],
        "compute_s": step["compute_s"],
        "comm_s": step["comm_s"],
        "exposed_comm_s": step["exposed_comm_s"],
        "mfu": step["mfu"],
        "tokens_per_s": step["tokens_per_s"],
        "tokens_per_s_per_gpu": step["tokens_per_s_per_gpu"],
        "days": tr.get("days"),
        "gpu_hours": tr.get("gpu_hours"),
        "cost_usd": tr.get("cost_usd"),
        **goodput_columns(report),
        **energy_columns(report),
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


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    jobs: int | None = None,
    dask: str | None = None,
    dask_processes: bool = True,
    backend: str = "fluid",
    timeout_s: float | None = None,
    force: bool = False,
    retry_errors: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> SweepSummary:
    """Run the points not already in `out`, appending rows as they finish, then rewrite `out`
    in point order. A KeyboardInterrupt leaves the appended rows for the next run to resume."""
    out = Path(out)
    if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s >= 0):
        raise UserError(
            Problem("--timeout", f"expected seconds >= 0 (0: no limit), got {timeout_s:g}")
        )
    if str(out.resolve()) in sweep.protected or out.is_dir():
        what = "a directory" if out.is_dir() else "an input of this sweep"
        raise UserError(Problem("--out", f"{out} is {what}", "give another output file"))
    points, fmt = sweep.points(), output_format(out)
    jobs = max(1, jobs or os.cpu_count() or 1)
    # Connect to Dask first: a wrong address must not leave an empty results file behind.
    with dask_session(dask, jobs, dask_processes) if dask else contextlib.nullcontext() as session:
        store = ResultsStore(
            out, fmt, sweep.columns, sweep_provenance(sweep, backend), sweep.source
        )
        done = store.open(force=force, retry_errors=retry_errors, num_points=len(points))
        base_dir = str(sweep.base_dir) if sweep.base_dir is not None else None
        tasks = [
            (i, sweep.scenario_dict(values), base_dir, backend, timeout_s or None)
            for i, values in enumerate(points)
            if i not in done
        ]
        axis_cells = {i: dict(zip(sweep.paths, values)) for i, values in enumerate(points)}
        progress = on_progress or (lambda done_, total: None)
        progress(len(done), len(points))
        # closing(): an interrupt stops the workers before it leaves run_sweep, not whenever the
        # generator is collected.
        try:
            with contextlib.closing(_execute(tasks, jobs, session)) as rows:
                for row in rows:
                    store.append({**row, **axis_cells[row["point"]]})
                    progress(store.count, len(points))
        finally:
            store.close()
    counts = store.finish()
    return SweepSummary(
        total=len(points), resumed=len(done), computed=len(tasks), status_counts=counts, path=out
    )


def _execute(tasks: list, jobs: int, session: Any) -> Generator[dict, None, None]:
    """Rows as points finish: on Dask (its concurrent.futures executor), a process pool, or inline."""
    chunks = [tasks[i : i + CHUNK_POINTS] for i in range(0, len(tasks), CHUNK_POINTS)]
    if session is not None:
        yield from _drain(session.executor(), chunks, on_interrupt=session.interrupted)
    elif jobs == 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from run_chunk(chunk)
    else:
        import simulator.studies.simulate  # noqa: F401  (forked workers inherit the imports)

        pool = worker_pool(min(jobs, len(chunks)))
        try:
            yield from _drain(pool, chunks)
        except BaseException:  # interrupted (or closed early): running chunks are not waited for
            terminate_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _drain(
    executor: Executor, chunks: list, on_interrupt: Callable[[], None] = lambda: None
) -> Iterator[dict]:
    futures = [executor.submit(run_chunk, chunk) for chunk in chunks]
    try:
        for future in as_completed(futures):
            yield from future.result()
    except BaseException:
        on_interrupt()
        raise
    finally:
        for future in futures:
            future.cancel()
