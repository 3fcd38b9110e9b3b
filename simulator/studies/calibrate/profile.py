"""A calibration result -> the profile document (YAML) that scenarios name with `calibration:`.

The format is read back, strictly, by simulator/scenario/calibration.py. The document is a
function of the inputs alone (no time stamps), so the same inputs write the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import Problem, UserError
from simulator.core.outputs import write_text
from simulator.core.yamlio import dump_yaml
from simulator.scenario.calibration import PROFILE_VERSION
from simulator.studies.calibrate.fit import F_SCALE, LOSS, MAX_LOO_GROUPS
from simulator.studies.calibrate.study import Part, Result
from simulator.system.knobs import knob

ABOUT = (
    "clustersim calibration profile. `constants` with status fitted replace the built-in values when a "
    "scenario names this file (calibration: FILE) or `clustersim collective --calibration FILE` uses it; "
    "status default lists what the data could not identify. It applies to the GPUs in `gpus` alone. Errors "
    "are predicted / measured - 1."
)
FIT = {
    "method": "scipy.optimize.least_squares, trust-region reflective, within each constant's physical bounds",
    "residual": "log(predicted / measured)",
    "loss": f"{LOSS}, scale {F_SCALE:g} (about {100 * F_SCALE:g}% error)",
    "order": "collective constants on the nccl-tests timings first, then compute constants on the runs with them",
    "identified": "a constant is fitted only if the data pin it from both sides: one the fit puts at (within a "
    "tenth of a probe step of) its bound, one that moves no prediction by 0.1% when moved a probe "
    "step (2%, 1 us, 1 ring step) one way from the fit, and one that moves by half a probe step "
    "when those go back to their defaults keep their defaults (status default, with the reason)",
    "leave_one_out": f"refit from the defaults without each group (an nccl-tests row: its out-of-place and "
    f"in-place timings; a run) and predict it; beyond {MAX_LOO_GROUPS} groups, "
    f"{MAX_LOO_GROUPS} folds of neighbouring groups",
}


def _round(x: float | None, digits: int = 6) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _error(log_ratio: float | None) -> float | None:
    return (
        None
        if log_ratio is None or not np.isfinite(log_ratio)
        else _round(float(np.expm1(log_ratio)), 4)
    )


def _constants(result: Result) -> list[dict[str, Any]]:
    out = []
    for name, value, default, status, note, stderr in result.constants():
        k = knob(name)
        row = {
            "name": name,
            "value": float(value),
            "default": float(default),
            "lower": k.lower,
            "upper": k.upper,
            "unit": k.unit,
            "status": status,
            "note": note,
        }
        if stderr is not None:
            row["stderr"] = _round(stderr, 3)
        out.append(row)
    return out


def _residuals(part: Part) -> list[dict[str, Any]]:
    rows = []
    for i, id_ in enumerate(part.ids):
        measured = float(part.measured[i])
        loo = None if part.loo is None else float(part.loo[i])
        row = {
            "id": id_,
            "input": part.inputs[i],
            "line": part.lines[i],
            "group": part.groups[i],
            "metric": part.metric[i],
            "measured": _round(measured),
            "before": _round(measured * np.exp(part.before[i])),
            "after": _round(measured * np.exp(part.after[i])),
            "loo": _round(measured * np.exp(loo)) if loo is not None else None,
            "error_before": _error(part.before[i]),
            "error_after": _error(part.after[i]),
            "error_loo": _error(loo),
        }
        rows.append({k: v for k, v in row.items() if v is not None or k in ("loo", "error_loo")})
    return rows


def summary(part: Part) -> dict[str, Any]:
    """Median and max absolute error (predicted / measured - 1) before, after and left out."""

    def stats(log_ratio):
        if log_ratio is None or not np.isfinite(log_ratio).any():
            return None, None
        err = np.abs(np.expm1(log_ratio[np.isfinite(log_ratio)]))
        return _round(float(np.median(err)), 4), _round(float(err.max()), 4)

    out: dict[str, Any] = {"measurements": len(part.ids)}
    for label, values in (("before", part.before), ("after", part.after), ("loo", part.loo)):
        med, mx = stats(values)
        if med is not None or label != "loo":
            out[f"median_abs_error_{label}"], out[f"max_abs_error_{label}"] = med, mx
    return out


def profile_document(result: Result, command: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {"clustersim_calibration": PROFILE_VERSION, "about": ABOUT}
    if command:
        doc["command"] = command
    doc["fit"] = dict(FIT)
    doc["gpus"] = list(result.gpus)
    doc["inputs"] = [
        {
            "path": i.path,
            "sha256": i.sha256,
            "kind": i.kind,
            "topology": i.topology,
            "measurements": i.measurements,
            "skipped": i.skipped,
        }
        for i in result.inputs
    ]
    doc["constants"] = _constants(result)
    doc["residuals"] = [r for part in result.parts for r in _residuals(part)]
    doc["memory"] = [
        {
            "id": m.id,
            "input": result.memory_inputs[0],
            "line": m.line,
            "metric": m.metric,
            "measured_bytes": m.measured_bytes,
            "predicted_bytes": m.predicted_bytes,
            "error": _round(m.error, 4),
        }
        for m in result.memory
    ]
    doc["summary"] = {part.kind: summary(part) for part in result.parts}
    return doc


def check_out(out: str | Path, force: bool = False) -> Path:
    """Where the profile goes: a .yaml path in an existing folder, not an existing file unless `force`
    (nothing the user wrote is overwritten)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(
            Problem("--out", f"{out} is a directory", "give a file name, e.g. PROFILE.yaml")
        )
    if out.exists() and not force:
        raise UserError(
            Problem("--out", f"{out} exists", "choose another path, or pass --force to replace it")
        )
    if out.suffix not in (".yaml", ".yml"):
        raise UserError(
            Problem("--out", f"{out}: a profile is a YAML file", "name it PROFILE.yaml")
        )
    if not out.parent.is_dir():
        raise UserError(
            Problem("--out", f"the folder {out.parent} does not exist", "create it first")
        )
    return out


def write_profile(result: Result, out: str | Path, force: bool = False, command: str = "") -> Path:
    """Write the profile (see check_out)."""
    out = check_out(out, force)
    return write_text("--out", out, dump_yaml(profile_document(result, command)))
