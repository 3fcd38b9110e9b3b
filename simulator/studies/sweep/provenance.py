"""What a sweep's rows were computed from, recorded beside its results file so that a rerun
resumes only rows of the same code, definition, network model and input files.

    provenance = sweep_provenance(sweep, "fluid")
    provenance.changes(old_record["provenance"])   # [] when the rows can be reused

The parts are kept apart (not one hash) so a refusal can say what changed: the code
(version + code hash, which also covers shipped topologies named without a path), a part of
the sweep definition, --network, or one input file (the sweep file, the base scenario file,
a topology YAML named by path in any point, a calibration profile a point names).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.core import provenance as code_provenance
from simulator.core.errors import UserError
from simulator.studies.sweep.spec import Sweep
from simulator.system.topology.loader import topology_path

DEFINITION_PARTS = ("base", "set", "mode", "axes", "columns")
# Dotted paths whose values can name a point's topology, or its calibration profile.
TOPOLOGY_PATHS = ("cluster", "cluster.topology")
CALIBRATION_PATHS = ("calibration",)


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """The parts that decide a sweep's rows; `inputs` maps resolved paths to file digests."""

    clustersim: str
    network: str
    definition: dict[str, str] = field(default_factory=dict)  # part -> hash
    sweep_file: str | None = None
    base_file: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    profiles: frozenset[str] = frozenset()  # which inputs are calibration profiles (for messages)

    def record(self) -> dict[str, Any]:
        return {
            "clustersim": self.clustersim,
            "network": self.network,
            "definition": self.definition,
            "sweep_file": self.sweep_file,
            "base_file": self.base_file,
            "inputs": self.inputs,
        }

    def changes(self, old: Any) -> list[str]:
        """What differs from an earlier run's record, in words; [] when its rows can be reused.
        The sweep and base files are compared by content, so a renamed copy still resumes."""
        if not isinstance(old, dict):
            return ["its record has no input digests (it was written by an older clustersim)"]
        found = []
        if old.get("clustersim") != self.clustersim:
            found.append(f"the code changed: {old.get('clustersim')} -> {self.clustersim}")
        old_inputs = _dict(old.get("inputs"))
        roles = (("sweep_file", "the sweep file"), ("base_file", "the base scenario file"))
        for role, label in roles:
            mine, theirs = getattr(self, role), old.get(role)
            if mine and theirs and old_inputs.get(theirs) != self.inputs.get(mine):
                found.append(f"{label} {_show(mine)} changed")
        old_definition = _dict(old.get("definition"))
        parts = [
            p
            for p in DEFINITION_PARTS
            if old_definition.get(p) != self.definition.get(p)
            and not (p == "base" and any("base scenario" in f for f in found))
        ]  # said already
        if parts:
            found.append(f"the sweep definition changed ({', '.join(parts)})")
        if old.get("network") != self.network:
            found.append(f"--network changed: {old.get('network')} -> {self.network}")
        found += _topology_changes(
            self._topologies(self.record()), self._topologies(old), self.profiles
        )
        return found

    @staticmethod
    def _topologies(record: dict[str, Any]) -> dict[str, str]:
        inputs = _dict(record.get("inputs"))
        roles = {record.get("sweep_file"), record.get("base_file")}
        return {path: digest for path, digest in inputs.items() if path not in roles}


def _dict(value: Any) -> dict[str, Any]:
    """`value` if it is a dict (a record read back may hold anything), else {}."""
    return value if isinstance(value, dict) else {}


def _topology_changes(
    mine: dict[str, str], theirs: dict[str, str], profiles: frozenset[str] = frozenset()
) -> list[str]:
    found = []
    for path in sorted(mine.keys() | theirs.keys()):
        kind = (
            "calibration profile"
            if path in profiles
            else "topology file"
            if path in mine
            else "input file"
        )
        if path not in theirs:
            found.append(f"{kind} {_show(path)} was not an input before")
        elif path not in mine:
            found.append(f"{kind} {_show(path)} is no longer an input")
        elif mine[path] != theirs[path]:
            state = (
                " (now missing)"
                if mine[path] == "missing"
                else " (it was missing)"
                if theirs[path] == "missing"
                else ""
            )
            found.append(f"{kind} {_show(path)} changed{state}")
    return found


def _show(path: str) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    try:
        return Path(path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path


# ---------------------------------------------------------------------------------- computing


def sweep_provenance(sweep: Sweep, backend: str) -> Provenance:
    definition = {
        "base": sweep.base,
        "set": [list(f) for f in sweep.fixed],
        "mode": sweep.mode,
        "axes": [[p, list(v)] for p, v in sweep.axes],
        "columns": sweep.columns,
    }
    sweep_file = str(Path(sweep.source).resolve()) if sweep.source else None
    inputs = {
        path: code_provenance.file_digest(path) for path in (sweep_file, sweep.base_file) if path
    }
    profiles = calibration_files(sweep)
    inputs |= topology_files(sweep) | profiles
    return Provenance(
        clustersim=code_provenance.version_string(),
        network=backend,
        definition={part: _hash(value) for part, value in definition.items()},
        sweep_file=sweep_file,
        base_file=sweep.base_file,
        inputs=inputs,
        profiles=frozenset(profiles),
    )


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def topology_files(sweep: Sweep) -> dict[str, str]:
    """Digests of the topology YAML files the points name by path, resolved as scenario
    loading does; a path that does not resolve is recorded as missing (its points are rows of
    status invalid, which must not be reused once the file appears)."""
    found = {}
    for value in _topology_values(sweep):
        if not isinstance(value, str) or not (value.endswith((".yaml", ".yml")) or "/" in value):
            continue  # a shipped name (the code hash covers it) or no valid value at all
        try:
            path = topology_path(value, sweep.base_dir)
        except UserError:
            path = (Path(sweep.base_dir or ".") / value).resolve()
        found[str(path)] = code_provenance.file_digest(path)
    return found


def calibration_files(sweep: Sweep) -> dict[str, str]:
    """Digests of the calibration profiles the points name (paths relative to the base scenario's
    folder, as scenario loading resolves them)."""
    found = {}
    for value in _path_values(sweep, CALIBRATION_PATHS, lambda d: d.get("calibration")):
        if isinstance(value, str) and value:
            path = (Path(sweep.base_dir or ".") / Path(value).expanduser()).resolve()
            found[str(path)] = code_provenance.file_digest(path)
    return found


def _topology_values(sweep: Sweep) -> list[Any]:
    """cluster.topology of one point per distinct combination of the axes that can set it."""

    def topology(data: dict[str, Any]) -> Any:
        cluster = data.get("cluster")
        return cluster.get("topology") if isinstance(cluster, dict) else None

    return _path_values(sweep, TOPOLOGY_PATHS, topology)


def _path_values(sweep: Sweep, paths: tuple[str, ...], pick) -> list[Any]:
    """`pick(scenario dict)` of one point per distinct combination of the axes on `paths`."""
    first = [values[0] for _, values in sweep.axes]
    axes = [i for i, path in enumerate(sweep.paths) if path in paths]
    if not axes:
        combos: Any = [()]
    elif sweep.mode == "grid":
        combos = itertools.product(*(sweep.axes[i][1] for i in axes))
    else:
        combos = zip(*(sweep.axes[i][1] for i in axes))
    unique = {json.dumps(c, sort_keys=True, default=str): c for c in combos}
    found = []
    for combo in unique.values():
        values = list(first)
        for i, value in zip(axes, combo):
            values[i] = value
        try:
            found.append(pick(sweep.scenario_dict(values)))
        except UserError:  # such a point fails when it runs, at its path
            continue
    return found
