"""`clustersim calibrate`: nccl-tests files and measured runs -> fitted constants, with the errors
before, after and left out.

Two fits in sequence: the collective model's constants on the nccl-tests timings, then the compute
model's per-GPU constants on the runs' step times with those collective constants in place (a run's
step time is mostly compute; its communication is what nccl-tests measures directly).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.studies.calibrate.collectives import CollectiveData, NcclInput
from simulator.studies.calibrate.fit import (
    NOT_IDENTIFIED,
    Dataset,
    Selection,
    fit_determined,
    leave_one_out,
    select,
)
from simulator.studies.calibrate.runs import MemoryCheck, RunData, read_runs
from simulator.system.comm.algorithms import ALGORITHMS
from simulator.system.comm.calibration import FAMILIES, NCCL_CALIBRATION, Calibration
from simulator.system.knobs import NVLS_ARCHS, comm_value, gpu_value, knob, with_comm

COMPUTE_PRIORITY = ("end_to_end", "attention", "memory", "kernel_launch", "gemm")
COMPUTE_NOTES = {
    "gemm": "only its product with end_to_end shows in step times: the measured GEMM fraction stays"
}


@dataclass(frozen=True, kw_only=True)
class Part:
    """One fit: its measurements, constants and errors (log ratios predicted / measured)."""

    kind: str  # "collectives" or "runs"
    ids: tuple[str, ...]
    inputs: tuple[str, ...]
    lines: tuple[int | None, ...]
    groups: tuple[str, ...]
    metric: tuple[str, ...]
    measured: np.ndarray
    before: np.ndarray
    after: np.ndarray
    loo: np.ndarray | None
    selection: Selection
    defaults: dict[str, float]
    values: dict[str, float]
    stderr: dict[str, float] = field(default_factory=dict)  # standard error of each fitted constant
    detail: tuple[str, ...] = ()  # e.g. the algorithm/protocol the model runs after the fit


@dataclass(frozen=True, kw_only=True)
class InputFile:
    path: str
    sha256: str
    kind: str
    topology: str | None
    measurements: int
    skipped: int


@dataclass(frozen=True, kw_only=True)
class Result:
    parts: tuple[Part, ...]
    inputs: tuple[InputFile, ...]
    memory: tuple[MemoryCheck, ...] = ()
    memory_inputs: tuple[str, ...] = ()
    skipped: tuple[tuple[str, int, str], ...] = ()
    notes: tuple[str, ...] = ()
    comm: Calibration = field(default=NCCL_CALIBRATION, repr=False)
    gpus: tuple[
        str, ...
    ] = ()  # the GPUs the measurements ran on (the profile applies to them alone)

    def constants(self) -> list[tuple[str, float, float, str, str, float | None]]:
        """(name, value, default, status, note, standard error) of every candidate constant, fitted first."""
        rows = []
        for part in self.parts:
            rows += [
                (n, part.values[n], part.defaults[n], "fitted", _source(part), part.stderr.get(n))
                for n in part.selection.chosen
            ]
        for part in self.parts:
            rows += [
                (n, part.defaults[n], part.defaults[n], "default", why, None)
                for n, why in part.selection.held
            ]
        return rows


def _source(part: Part) -> str:
    return f"fitted to {len(part.ids)} {part.kind} measurements from {', '.join(sorted(set(map(_name, part.inputs))))}"


def _name(path: str) -> str:
    return Path(path).name


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibrate(
    nccl: list[NcclInput],
    runs_path: str | None = None,
    loo: bool = True,
    start: dict[str, float] | None = None,
) -> Result:
    """Fit what the inputs identify. `start`: initial values (default: the built-in constants)."""
    parts, inputs, skipped, notes, gpus = [], [], [], [], []
    comm = NCCL_CALIBRATION
    if nccl:
        data = CollectiveData(nccl)
        part = _fit_collectives(data, loo, start or {})
        parts.append(part)
        comm = with_comm(NCCL_CALIBRATION, {n: part.values[n] for n in part.selection.chosen})
        counts = data.counts()
        inputs += [
            InputFile(
                path=i.path,
                sha256=sha256(i.path),
                kind="nccl-tests",
                topology=i.topology,
                measurements=counts[i.path][0],
                skipped=counts[i.path][1],
            )
            for i in nccl
        ]
        skipped += data.skipped()
        notes += data.notes() + _nvls_notes(part) + _scale_notes(part, data)
        gpus += data.gpus()
    memory: tuple[MemoryCheck, ...] = ()
    memory_inputs: tuple[str, ...] = ()
    if runs_path:
        runs = RunData(read_runs(runs_path))
        if runs.timed:
            parts.append(_fit_runs(runs, runs_path, comm, loo, start or {}))
        memory, memory_inputs = tuple(runs.memory_checks()), (runs_path,)
        gpus += [r.scenario.cluster.gpu.name for r in runs.runs]
        inputs.append(
            InputFile(
                path=runs_path,
                sha256=sha256(runs_path),
                kind="runs",
                topology=None,
                measurements=len(runs.timed) + len(memory),
                skipped=0,
            )
        )
    return Result(
        parts=tuple(parts),
        inputs=tuple(inputs),
        memory=memory,
        memory_inputs=memory_inputs,
        skipped=tuple(skipped),
        notes=tuple(notes),
        comm=comm,
        gpus=tuple(sorted(set(gpus))),
    )


def _nvls_notes(part: Part) -> list[str]:
    """NVLS constants the fit wanted to move where NVLS stops running: the data look like NVLS did not run."""
    off = [
        n
        for n, why in part.selection.held
        if "nvls" in n and why.startswith(("at its bound", NOT_IDENTIFIED))
    ]
    if not off:
        return []
    return [
        (
            f"{', '.join(off)}: not identified; the measurements fit better where the model stops running "
            "NVLS. If NVLS did not run (NCCL_NVLS_ENABLE=0, or a NCCL or driver without it), give the file in a "
            "manifest with nvls: false"
        )
    ]


def _scale_notes(part: Part, data: CollectiveData) -> list[str]:
    """The bandwidth scale spans every link kind: fitted on one host, it reaches the network too."""
    if "nccl.bandwidth_scale" not in part.selection.chosen or data.multi_host():
        return []
    note = (
        "nccl.bandwidth_scale was fitted on one host's links; it scales the network's links too "
        "in a multi-host scenario. Calibrate on multi-host runs as well to fit the network's own"
    )
    return [note]


def comm_candidates(data: CollectiveData) -> list[str]:
    """The collective constants the files could inform, in priority order."""
    archs, kinds = data.archs(), [k for k in data.link_kinds() if k != "ideal"]
    # End-to-end before the parts it spans: the bandwidth scale before the link efficiencies (one
    # is fitted only where the data separate it from the scale: several link kinds), the per-call
    # overhead before the per-step and per-protocol latencies.
    names = ["nccl.bandwidth_scale"]
    names += [f"nccl.{a}.{k}_efficiency" for a in archs for k in kinds]
    names += [f"nccl.{a}.nvls_efficiency" for a in archs if a in NVLS_ARCHS]
    names += ["nccl.call_overhead"]
    names += [f"nccl.{a}.step_latency" for a in archs]
    names += [f"nccl.{a}.net_step_latency" for a in archs if data.multi_host()]
    names += ["nccl.ring_fill_steps", "nccl.nvls_round_latency"]
    used = sorted(
        {
            (ALGORITHMS[a].family, p)
            for a, p in (u.split("/") for u in data.describe(NCCL_CALIBRATION).values())
            if a in ALGORITHMS
        }
    )  # direct all-to-all uses the ring's row, a send the p2p row
    names += [f"nccl.{family}.{p}.base_latency" for family, p in used if family in FAMILIES]
    return list(dict.fromkeys(names))


def _dataset(ids, groups, measured, predict) -> Dataset:
    return Dataset(
        ids=tuple(ids), groups=tuple(groups), measured=np.asarray(measured, float), predict=predict
    )


def _fit_collectives(data: CollectiveData, loo: bool, start: dict[str, float]) -> Part:
    names = comm_candidates(data)
    defaults = {n: comm_value(NCCL_CALIBRATION, n) for n in names}
    ds = _dataset(
        [t.id for t in data.timed],
        [t.group for t in data.timed],
        [t.measured_s for t in data.timed],
        lambda v: data.predict(with_comm(NCCL_CALIBRATION, v)),
    )
    selection, values, errors = fit_determined(
        ds, select(ds, names, defaults), defaults, {n: v for n, v in start.items() if n in defaults}
    )
    after = ds.predict(values)
    detail = data.describe(with_comm(NCCL_CALIBRATION, values))
    return _part(
        "collectives",
        ds,
        [t.input for t in data.timed],
        [t.line for t in data.timed],
        ["time_s"] * len(data.timed),
        selection,
        defaults,
        values,
        after,
        leave_one_out(ds, selection.chosen, defaults, dict(selection.seen_at)) if loo else None,
        errors,
        tuple(detail[t.id] for t in data.timed),
    )


def compute_candidates(runs: RunData) -> tuple[list[str], dict[str, float]]:
    names, defaults = [], {}
    for gpu in runs.gpus():
        for field_ in COMPUTE_PRIORITY:
            name = f"compute.{gpu.name}.{field_}"
            names.append(name)
            defaults[name] = knob(name).bounded(gpu_value(gpu, name))
    return names, defaults


def _fit_runs(
    runs: RunData, path: str, comm: Calibration, loo: bool, start: dict[str, float]
) -> Part:
    names, defaults = compute_candidates(runs)
    ds = _dataset(
        [r.id for r in runs.timed],
        [r.id for r in runs.timed],
        [r.measured for r in runs.timed],
        lambda v: runs.predict(v, comm),
    )
    selection = select(ds, names, defaults)
    held = tuple(
        (n, COMPUTE_NOTES.get(n.rsplit(".", 1)[1], why) if "not separable" in why else why)
        for n, why in selection.held
    )
    selection, values, errors = fit_determined(
        ds,
        Selection(chosen=selection.chosen, held=held, seen_at=selection.seen_at),
        defaults,
        {n: v for n, v in start.items() if n in defaults},
    )
    return _part(
        "runs",
        ds,
        [path] * len(runs.timed),
        [r.line for r in runs.timed],
        [r.metric for r in runs.timed],
        selection,
        defaults,
        values,
        ds.predict(values),
        leave_one_out(ds, selection.chosen, defaults, dict(selection.seen_at)) if loo else None,
        errors,
    )


def _part(
    kind,
    ds: Dataset,
    inputs,
    lines,
    metric,
    selection,
    defaults,
    values,
    after,
    loo,
    errors,
    detail=(),
) -> Part:
    def err(pred):
        return None if pred is None else np.log(pred / ds.measured)

    return Part(
        kind=kind,
        ids=ds.ids,
        inputs=tuple(inputs),
        lines=tuple(lines),
        groups=ds.groups,
        metric=tuple(metric),
        measured=ds.measured,
        before=err(ds.predict(defaults)),
        after=err(after),
        loo=err(loo),
        selection=selection,
        defaults=defaults,
        values=values,
        stderr=errors,
        detail=detail,
    )
