"""nccl-tests output, as the standard binaries print it, read into rows (NVIDIA/nccl-tests).

The layout (src/common.cu up to v2.13, src/util.cu from v2.14; `PRINT` calls cited by function):
- header comments: "# nccl-tests version ..." and "# Collective test starting: all_reduce_perf"
  (newer versions only), "# nThread 1 nGpus 8 minBytes 8 maxBytes 8589934592 step: 2(factor)
  ...", "# Using devices", then one line per rank, "#  Rank %2d Group %2d Pid %6d on %10s device
  %2d [0x%02x] %s" (newer: "[%04x:%02x:%02x]"): its host name and CUDA device (writeDeviceReport);
- the column header (writeResultHeader): "size count type redop root" then, for the out-of-place
  and then the in-place run, "time algbw busbw #wrong" (more columns with -R per-iteration
  timing, a trailing timestamp with -T; "cputime" with -C). Before v2.13 (2022) each test printed
  its own: "size count type redop" (broadcast: "type root") and "time algbw busbw error", the
  error being the largest deviation, and rank lines without "Group"; columns are read by name;
- one row per size (writeBenchmarkLinePreamble "%12li  %12li  %8s  %6s  %6s": bytes, elements,
  datatype, reduction op ("none" for all-gather / all-to-all), root (-1 when there is none);
  writeBenchmarkLineBody "  %7s  %6s  %6s  %6g": time in us, algbw and busbw in GB/s, wrong
  elements, or "N/A" there when the data check is off (-c 0); trace replay prints 32 spaces
  instead of the out-of-place block (writeBenchMarkLineNullBody));
- the footer (writeResultFooter): "# Out of bounds values : 0 OK", "# Avg bus bandwidth : ...".

Every line is accounted for: a row is used, or skipped with its line and reason; a log line
that says the run failed is kept to explain a file without a table. A file may hold several
runs (concatenated outputs): each "# nThread" header starts a section.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from simulator.core.errors import Problem, UserError
from simulator.core.yamlio import read_text

# nccl-tests binary -> the collective it times ("sendrecv": each rank sends to the next, ring order).
BINARIES = {
    "all_reduce_perf": "all_reduce",
    "all_gather_perf": "all_gather",
    "reduce_scatter_perf": "reduce_scatter",
    "alltoall_perf": "all_to_all",
    "sendrecv_perf": "sendrecv",
    "broadcast_perf": "broadcast",
    "reduce_perf": "reduce",
}
BLOCKS = ("out-of-place", "in-place")
STANDARD_COLUMNS = (
    "size",
    "count",
    "type",
    "redop",
    "root",
    "time",
    "algbw",
    "busbw",
    "#wrong",
    "time",
    "algbw",
    "busbw",
    "#wrong",
)
PREAMBLE = 5
_TAG = re.compile(r"^\[\d+,\d+\]<(?:stdout|stderr)>:\s?")  # mpirun --tag-output
_RANK = re.compile(
    r"#\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)\s+device\s+(\d+)\s+\[[^\]]*\]\s*(.*)"
)
_NTHREAD = re.compile(r"#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)")
_START = re.compile(r"#\s*Collective test starting:\s*(\S+)")
_WRONG_TOTAL = re.compile(r"#\s*Out of bounds values\s*:\s*(\d+)")
_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:")
_FAILED = re.compile(
    r"test (nccl|cuda) failure|nccl warn|\bfail(ed|ure)?\b|\berror\b|segmentation fault|"
    r"\baborted\b|exited on signal|\bkilled\b|out of memory|timed? ?out",
    re.IGNORECASE,
)
MIN_CHECKED_ALGBW = (
    1.0  # GB/s: below it the printed algbw (2 decimals) is too coarse to cross-check
)


@dataclass(frozen=True, kw_only=True)
class Block:
    """One timed run of a row (out-of-place or in-place)."""

    name: str
    time_us: float
    algbw: float
    busbw: float
    wrong: float | None  # None: not checked (-c 0 prints N/A)


@dataclass(frozen=True, kw_only=True)
class Row:
    line: int
    size: int
    count: int
    dtype: str
    redop: str
    root: int
    blocks: tuple[Block, ...]


@dataclass(frozen=True, kw_only=True)
class Skip:
    line: int
    reason: str
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class Rank:
    rank: int
    host: str
    device: int
    gpu: str


@dataclass(kw_only=True)
class Section:
    """One run's output: its devices, columns and rows."""

    start_line: int
    binary: str = ""
    ranks: list[Rank] = field(default_factory=list)
    columns: tuple[str, ...] = STANDARD_COLUMNS
    header_ends: tuple[int, ...] = ()  # where each header column name ends (its right edge)
    header_line: int = 0
    rows: list[Row] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    wrong_total: int | None = None
    complete: bool = False
    last_line: int = 0

    @property
    def started(self) -> bool:
        return bool(self.rows or self.ranks or self.header_line)


@dataclass(kw_only=True)
class NcclFile:
    path: str
    sections: list[Section]
    failures: list[tuple[int, str]]

    @property
    def rows(self) -> list[Row]:
        return [r for s in self.sections for r in s.rows]

    @property
    def skipped(self) -> list[Skip]:
        return [k for s in self.sections for k in s.skipped]

    def notes(self) -> list[str]:
        """What the reader noticed that a user should know (partial runs, unchecked data)."""
        notes = []
        for s in self.sections:
            if s.rows and not s.complete:
                notes.append(
                    f"line {s.last_line}: the table stops without nccl-tests' closing lines "
                    f"(# Out of bounds values, # Avg bus bandwidth): a partial run; its {len(s.rows)} rows "
                    "are used"
                )
            if s.wrong_total:
                notes.append(
                    f"section at line {s.start_line}: nccl-tests counted {s.wrong_total} wrong values"
                )
            unchecked = sum(1 for r in s.rows for b in r.blocks if b.wrong is None)
            if unchecked:
                notes.append(
                    f"section at line {s.start_line}: {unchecked} timings with #wrong N/A (data check off, "
                    "-c 0): used unverified"
                )
        notes += [f"line {n}: the log says: {text}" for n, text in self.failures[:5]]
        return notes


def parse_nccl_tests(text: str, path: str = "") -> NcclFile:
    """Read nccl-tests output; raises nothing (the caller decides what is fatal)."""
    sections = [Section(start_line=1)]
    failures: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _TAG.sub("", raw.rstrip("\r\n"))
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            _comment(sections, number, line)
        elif stripped.split()[0].lstrip("-").isdigit():
            _row(sections[-1], number, line)
        elif _FAILED.search(stripped):
            failures.append((number, stripped[:200]))
    return NcclFile(path=path, sections=[s for s in sections if s.started], failures=failures)


def _comment(sections: list[Section], number: int, line: str) -> None:
    body = line.strip()
    section = sections[-1]
    start = _START.match(body)
    if start is not None or _NTHREAD.match(body) or body.startswith("# nccl-tests version"):
        if section.started:  # a second run's output, concatenated
            section = Section(start_line=number)
            sections.append(section)
        if start is not None:
            section.binary = start[1]
        return
    if (m := _RANK.match(body)) is not None:
        section.ranks.append(Rank(rank=int(m[1]), host=m[2], device=int(m[3]), gpu=m[4].strip()))
    elif body[1:].split()[:1] == ["size"]:
        section.columns = tuple(body[1:].split())
        section.header_ends = tuple(match.end() for match in re.finditer(r"\S+", line))[1:]
        section.header_line = number
    elif (m := _WRONG_TOTAL.match(body)) is not None:
        section.wrong_total, section.complete = int(m[1]), True
    elif _AVG.match(body):
        section.complete = True


def _block_layout(columns: tuple[str, ...]) -> tuple[int, int]:
    """(first column of the timed blocks, columns per block) from the header's names."""
    times = [i for i, c in enumerate(columns) if c in ("time", "cputime")]
    if len(times) >= 2:
        return times[0], times[1] - times[0]
    return PREAMBLE, (len(columns) - PREAMBLE) // 2 or 4


def _row(section: Section, number: int, line: str) -> None:
    section.last_line = number
    tokens = line.split()
    start, width = _block_layout(section.columns)
    text = line.strip()[:160]
    if len(tokens) < start + width:
        section.skipped.append(
            Skip(
                line=number,
                text=text,
                reason=f"{len(tokens)} columns where a row has "
                f"{start + 2 * width} ({' '.join(section.columns[: start + 2 * width])}): a "
                "truncated line",
            )
        )
        return
    head = dict(zip(section.columns[:start], tokens[:start]))
    try:
        size, count, root = int(tokens[0]), int(tokens[1]), int(head.get("root", -1))
    except ValueError:
        section.skipped.append(
            Skip(line=number, text=text, reason="size, count and root must be integers")
        )
        return
    names = section.columns[start : start + width]
    blocks, reasons = [], []
    for which, values in _blocks(section, line, tokens[start:], start, width):
        block, why = _block(which, names, values, size)
        if block is not None:
            blocks.append(block)
        if why:
            reasons.append(f"{which}: {why}")
    if size <= 0:
        blocks, reasons = [], ["0 bytes: nothing was timed"]
    for why in reasons:
        section.skipped.append(Skip(line=number, text=text, reason=why))
    if blocks:
        section.rows.append(
            Row(
                line=number,
                size=size,
                count=count,
                dtype=head.get("type", ""),
                redop=head.get("redop", "none"),
                root=root,
                blocks=tuple(blocks),
            )
        )


def _blocks(
    section: Section, line: str, rest: list[str], start: int, width: int
) -> list[tuple[str, list[str]]]:
    """The row's timed blocks by name. One block alone is in-place when it sits under the in-place
    columns (trace replay leaves the out-of-place block blank); otherwise the line was cut."""
    if len(rest) >= 2 * width:
        return [(BLOCKS[0], rest[:width]), (BLOCKS[1], rest[width : 2 * width])]
    first = rest[0]
    ends = section.header_ends
    where = BLOCKS[0]
    if len(ends) >= start + 2 * width:
        end = next(
            m.end()
            for m in re.finditer(re.escape(first), line)
            if m.start() > _preamble_end(line, start)
        )
        out_end, in_end = ends[start], ends[start + width]
        where = BLOCKS[1] if abs(end - in_end) < abs(end - out_end) else BLOCKS[0]
    blocks = [(where, rest[:width])]
    if where == BLOCKS[0]:
        section.skipped.append(
            Skip(
                line=section.last_line,
                text=line.strip()[:160],
                reason="in-place: the line stops after the out-of-place block (truncated); "
                "the out-of-place timing is used",
            )
        )
    return blocks


def _preamble_end(line: str, start: int) -> int:
    return [m.end() for m in re.finditer(r"\S+", line)][start - 1]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _block(
    which: str, names: tuple[str, ...], values: list[str], size: int
) -> tuple[Block | None, str]:
    """A timed block, or None and why not."""
    got = dict(zip(names, values))
    if "cputime" in got:
        return None, "cputime columns (-C 1) time the host, not the collective; rerun without -C"
    if "time" not in got:
        return None, f"no time column (the header names {', '.join(names)})"
    time_us, algbw, busbw = (_number(got.get(k, "0")) for k in ("time", "algbw", "busbw"))
    if time_us is None or algbw is None or busbw is None:
        return (
            None,
            f"time/algbw/busbw not numbers ({got.get('time')} {got.get('algbw')} {got.get('busbw')})",
        )
    if time_us <= 0:
        return None, f"time {got['time']} us is not positive"
    # "#wrong" (nccl-tests >= 2.13) counts wrong elements; before it, "error" printed the largest
    # deviation from the expected result (%5.0le), judged only by the footer's out-of-bounds count.
    if "#wrong" not in got and "error" in got:
        return _timed(which, time_us, algbw, busbw, None if got["error"] == "N/A" else 0.0, size)
    wrong_text = got.get("#wrong", "N/A")
    wrong = None if wrong_text == "N/A" else _number(wrong_text)
    if wrong_text != "N/A" and wrong is None:
        return None, f"#wrong is {wrong_text!r}, not a count"
    if wrong:
        return None, f"nccl-tests counted {wrong:g} wrong values (its data check failed)"
    return _timed(which, time_us, algbw, busbw, wrong, size)


def _timed(
    which: str, time_us: float, algbw: float, busbw: float, wrong: float | None, size: int
) -> tuple[Block | None, str]:
    implied = size / (time_us * 1e3)
    if algbw >= MIN_CHECKED_ALGBW and abs(implied / algbw - 1) > 0.1:
        return (
            None,
            f"time and algbw disagree (size / time = {implied:.2f} GB/s, algbw {algbw:.2f}): a garbled row",
        )
    return Block(name=which, time_us=time_us, algbw=algbw, busbw=busbw, wrong=wrong), ""


def binary_of(section: Section, path: str) -> str:
    """The nccl-tests binary of a section: its "Collective test starting" line, else the file name."""
    if section.binary:
        return Path(section.binary).name
    name = Path(path).name
    for binary in sorted(BINARIES, key=len, reverse=True):
        if binary in name or binary.removesuffix("_perf") in name:
            return binary
    return ""


def read_nccl_tests(path: str | Path) -> NcclFile:
    """Read and check a file: a UserError naming the file (and the failure lines) if no row is usable."""
    source = str(path)
    parsed = parse_nccl_tests(read_text(path, "nccl-tests output file"), source)
    if parsed.rows:
        return parsed
    problems = [
        Problem(
            "",
            "no usable nccl-tests row: expected a table of 'size count type redop root time algbw "
            "busbw #wrong time algbw busbw #wrong' lines, as all_reduce_perf and the other "
            "nccl-tests binaries print",
        )
    ]
    problems += [
        Problem(f"line {n}", f"the run failed: {text}") for n, text in parsed.failures[:10]
    ]
    problems += [Problem(f"line {k.line}", f"row skipped: {k.reason}") for k in parsed.skipped[:20]]
    raise UserError(problems, source)
