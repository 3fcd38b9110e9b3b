"""A sweep's results file: CSV, JSON Lines or Parquet rows, appended as points finish, read
back on resume, and rewritten in point order atomically at the end.

A record beside the file (`FILE.sweep.json`) holds what the rows were computed from (code,
definition, network model, input file digests: provenance.py), so a file that is not this
sweep's results is never overwritten, and stale rows are never reused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, Protocol, TextIO

from simulator.core.errors import Problem, UserError
from simulator.core.outputs import write_error

# Bump when a row's meaning changes: results files of another version are then refused.
RESULTS_VERSION = 3  # 2: the step time's 80% interval columns; 3: the energy columns
# Result columns after `point` and the swept dotted paths (the plot tool reads them by name).
OUTPUT_COLUMNS = (
    "status",
    "message",
    "name",
    "model",
    "params",
    "strategy",
    "gpu",
    "num_gpus",
    "fits",
    "mem_total_bytes",
    "mem_params_bytes",
    "mem_grads_bytes",
    "mem_optimizer_bytes",
    "mem_activations_bytes",
    "mem_buffers_bytes",
    "mem_overhead_bytes",
    "capacity_bytes",
    "step_time_s",
    "step_time_lo_s",  # the 80% interval of the step time (studies/intervals.py)
    "step_time_hi_s",
    "compute_s",
    "comm_s",
    "exposed_comm_s",
    "mfu",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "days",
    "gpu_hours",
    "cost_usd",
    "wall_days_p50",
    "wall_days_p90",
    "effective_training_time_ratio",
    "interruptions",
    "checkpoint_interval_s",
    "energy_per_token_j",  # the report's energy section (report/energy.py)
    "cluster_power_avg_w",
    "run_mwh",
)
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
STATUSES = ("ok", "invalid", "error")


class Provenance(Protocol):
    """What the rows are computed from (provenance.Provenance)."""

    def record(self) -> dict[str, Any]: ...

    def changes(self, old: Any) -> list[str]: ...


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def output_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            Problem(
                "--out",
                f"unknown results format {path.suffix or '(no extension)'!r}",
                "name the file .csv, .jsonl or .parquet",
            )
        )
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError(
                Problem(
                    "--out",
                    "writing .parquet needs pyarrow, which is not installed",
                    "pip install pyarrow, or write .csv or .jsonl",
                )
            ) from None
    return fmt


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


def _cell(value: Any) -> str:
    """A CSV cell: empty for unknown, true/false, shortest round-trip floats, JSON for mappings."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, (int, str)):
        return _one_line(str(value))
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _CsvLines:
    """One row per physical line (messages are kept to one line), so a torn last line is detectable."""

    def __init__(self, columns: list[str]):
        self.columns = columns

    def header(self) -> str:
        return self.encode(dict(zip(self.columns, self.columns)))

    def encode(self, row: dict[str, Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([_cell(row.get(c)) for c in self.columns])
        return buf.getvalue()

    def decode(self, line: str) -> tuple[int, str] | None:
        """(point, status) of a well-formed row, else None."""
        try:
            cells = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            return None
        if len(cells) != len(self.columns) or not cells[0].isdigit():
            return None
        status = cells[self.columns.index("status")]
        return (int(cells[0]), status) if status in STATUSES else None


class _JsonLines:
    """JSON Lines: one object per row, keys in column order."""

    def __init__(self, columns: list[str]):
        self.columns = columns

    def header(self) -> None:
        return None

    def encode(self, row: dict[str, Any]) -> str:
        return json.dumps({c: row.get(c) for c in self.columns}, separators=(",", ":"))

    def decode(self, line: str) -> tuple[int, str] | None:
        try:
            row = json.loads(line)
        except ValueError:
            return None
        if (
            not isinstance(row, dict)
            or list(row) != self.columns
            or not isinstance(row["point"], int)
        ):
            return None
        return (row["point"], row["status"]) if row["status"] in STATUSES else None


class ResultsStore:
    """A sweep's results file: a record beside it (`FILE.sweep.json`, the sweep's provenance)
    proves whose it is and that its rows are current; rows are appended and flushed one by
    one, and `finish` rewrites the file in point order via a temporary file and os.replace.
    Parquet cannot be appended to, so its rows go to `FILE.partial.jsonl` until the end."""

    def __init__(
        self, path: Path, fmt: str, columns: list[str], provenance: Provenance, source: str = ""
    ):
        self.path, self.fmt, self.columns, self.provenance = path, fmt, columns, provenance
        self.source = source
        self.record = path.with_name(path.name + ".sweep.json")
        self.log = path.with_name(path.name + ".partial.jsonl") if fmt == "parquet" else path
        self.codec = _CsvLines(columns) if fmt == "csv" else _JsonLines(columns)  # of self.log
        self.lines: dict[int, str] = {}
        self.status: dict[int, str] = {}
        self._fh: TextIO | None = None

    @property
    def count(self) -> int:
        return len(self.lines)

    def open(self, force: bool, retry_errors: bool, num_points: int) -> set[int]:
        """Check the file is this sweep's (or absent), read back finished rows, open for append.
        A write that fails (no permission, a read-only disk) leaves the file as it was."""
        self.num_points = num_points
        if not force:
            self._check_owner()
            self._read_back()
        if retry_errors:
            for point in [p for p, s in self.status.items() if s == "error"]:
                del self.lines[point], self.status[point]
        record = {
            "clustersim_sweep": RESULTS_VERSION,
            "provenance": self.provenance.record(),
            "sweep": self.source,
            "format": self.fmt,
            "columns": self.columns,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.record, json.dumps(record, indent=2, sort_keys=True) + "\n")
            _atomic_write(self.log, self._text(self.codec))
            self._fh = self.log.open("a", encoding="utf-8", newline="")
        except OSError as exc:
            raise write_error("--out", self.path, exc, "; nothing was computed") from None
        return set(self.lines)

    def _check_owner(self) -> None:
        record = None
        if self.record.exists():
            try:
                record = json.loads(self.record.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                pass
            if not isinstance(record, dict) or "clustersim_sweep" not in record:
                self._refuse(f"{self.record} exists and is not a clustersim sweep record")
        has_results = any(p.exists() and p.stat().st_size > 0 for p in {self.path, self.log})
        if not has_results:
            return
        if record is None:
            self._refuse(
                f"{self.path} exists and is not a results file of this sweep "
                f"(there is no {self.record.name} beside it)"
            )
        if record.get("clustersim_sweep") != RESULTS_VERSION:
            self._refuse(
                f"{self.path} holds results of format {record.get('clustersim_sweep')}, this "
                f"clustersim writes format {RESULTS_VERSION}",
                start_over=True,
            )
        changes = self.provenance.changes(record.get("provenance"))
        if changes:
            self._refuse(
                f"{self.path} holds results of another sweep, or of this one before a change: "
                + ", ".join(changes),
                start_over=True,
            )

    def _refuse(self, message: str, start_over: bool = False) -> NoReturn:
        hint = (
            "add --force to start over, computing every point again, or give another --out"
            if start_over
            else "give another --out, or add --force to replace it"
        )
        raise UserError(Problem("--out", message + "; nothing was overwritten", hint))

    def _read_back(self) -> None:
        """Rows already finished: from the file (a torn last line and malformed rows are dropped)."""
        if self.fmt == "parquet" and self.path.exists():
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(self.path)
            except Exception as exc:  # noqa: BLE001  (pyarrow's errors for a damaged file vary)
                self._refuse(f"{self.path} cannot be read as Parquet ({type(exc).__name__})")
            if table.column_names != self.columns:
                self._refuse(f"{self.path} does not have this sweep's columns")
            self._keep(self.codec.encode(r) for r in table.to_pylist())
        if not self.log.exists():
            return
        text = self.log.read_text(encoding="utf-8")
        lines = text.split("\n")[:-1]  # the part after the last newline is a torn row, or empty
        header = self.codec.header()
        if header is not None and lines:
            if lines[0] != header:
                self._refuse(f"{self.log} does not start with this sweep's header")
            lines = lines[1:]
        self._keep(lines)

    def _keep(self, lines: Iterable[str]) -> None:
        for line in lines:
            parsed = self.codec.decode(line)
            if parsed and parsed[0] < self.num_points and parsed[0] not in self.lines:
                self.lines[parsed[0]], self.status[parsed[0]] = line, parsed[1]

    def _text(self, codec) -> str:
        header = codec.header()
        rows = [self.lines[p] for p in sorted(self.lines)]
        return "".join(f"{line}\n" for line in ([header] if header is not None else []) + rows)

    def append(self, row: dict[str, Any]) -> None:
        """Append and flush one row; a write that fails (a full disk) stops the sweep with what
        is kept and how to resume (a torn last line is dropped when the rows are read back)."""
        row = {**row, "message": _one_line(row.get("message", ""))}
        line = self.codec.encode(row)
        assert self._fh is not None, "append() between open() and close() only"
        try:
            self._fh.write(line + "\n")
            self._fh.flush()
        except OSError as exc:
            raise write_error("--out", self.log, exc, self._kept()) from None
        self.lines[row["point"]], self.status[row["point"]] = line, row["status"]

    def _kept(self) -> str:
        return (
            f"; the {self.count} finished row(s) are kept in {self.log}: once it can be written, run "
            "the same command again to resume, computing only the missing points"
        )

    def close(self) -> None:
        """Close the appended file. Its flush can fail as the last append did; every row is
        still in memory for finish(), and a row torn on disk is computed again on resume."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:
                pass

    def finish(self) -> dict[str, int]:
        """Rewrite the complete results in point order; the counts of each status."""
        assert set(self.lines) == set(range(self.num_points)), "a point has no row"
        try:
            if self.fmt == "parquet":
                _write_parquet(
                    self.path, self.columns, [json.loads(self.lines[p]) for p in sorted(self.lines)]
                )
                self.log.unlink(missing_ok=True)
            else:
                _atomic_write(self.path, self._text(self.codec))
        except OSError as exc:  # the temporary file is gone, the appended rows are all there
            raise write_error("--out", self.path, exc, self._kept()) from None
        return {s: sum(1 for v in self.status.values() if v == s) for s in STATUSES}


def _atomic_write(
    path: Path, text: str | None = None, writer: Callable[[str], None] | None = None
) -> None:
    """Write a file beside `path`, fsync it, then os.replace: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results private
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            if writer is None:
                fh.write(text or "")
            fh.flush()
            os.fsync(fh.fileno())
        if writer is not None:
            writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_parquet(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [_arrow_column(pa, [r.get(c) for r in rows]) for c in columns]
    table = pa.Table.from_arrays(arrays, names=columns)
    _atomic_write(path, writer=lambda tmp: pq.write_table(table, tmp))


def _arrow_column(pa, values: list[Any]):
    """Typed by the values: bool, int64, float64, else strings (JSON for mappings and mixtures)."""
    known = [v for v in values if v is not None]
    if known and all(isinstance(v, bool) for v in known):
        return pa.array(values, pa.bool_())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in known) and known:
        return pa.array(values, pa.int64())
    if known and all(is_number(v) for v in known):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(
        [v if isinstance(v, str) or v is None else json.dumps(v, sort_keys=True) for v in values],
        pa.string(),
    )
