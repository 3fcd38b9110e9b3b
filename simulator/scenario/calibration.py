"""Calibration profiles (`clustersim calibrate --out PROFILE.yaml`): their format, read strictly,
and resolved into the CalibrationSpec a scenario's `calibration: FILE` names.

A profile records what was fitted (name, value, default, bounds, unit), which constants stayed at
their defaults and why, the inputs (with sha256) and the fit's residuals before and after and left
out. Only `constants` with status `fitted` change the model; the rest documents the fit. Unknown
keys, unknown constant names and values outside a constant's bounds are errors, as in scenarios.
`gpus` names the GPUs the measurements ran on: a profile applies to those alone (a constant
fitted on one GPU is never applied to another), so one named for another GPU is an error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.yamlio import load_yaml, read_text
from simulator.scenario.problems import pydantic_problems
from simulator.spec.calibration import CalibrationSpec
from simulator.system import hardware
from simulator.system.comm.calibration import NCCL_CALIBRATION
from simulator.system.knobs import knob, known_names, with_comm

PROFILE_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProfileInput(_Strict):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    kind: Literal["nccl-tests", "runs"]
    topology: str | None = None
    measurements: int = Field(ge=0)
    skipped: int = Field(0, ge=0)


class ProfileConstant(_Strict):
    name: str
    value: float = Field(allow_inf_nan=False)
    default: float = Field(allow_inf_nan=False)
    lower: float
    upper: float
    unit: Literal["fraction", "ratio", "s", "steps"]
    status: Literal["fitted", "default"]
    note: str = ""
    stderr: float | None = Field(None, ge=0)  # standard error of a fitted value (null: infinite)


class ProfileResidual(_Strict):
    id: str
    input: str
    line: int | None = None
    group: str = ""  # the leave-one-out group (measurements left out together)
    metric: str
    measured: float
    before: float
    after: float
    loo: float | None = None
    error_before: float
    error_after: float
    error_loo: float | None = None


class ProfileMemory(_Strict):
    id: str
    input: str
    line: int | None = None
    metric: Literal["max_memory_allocated", "max_memory_reserved"]
    measured_bytes: int
    predicted_bytes: int
    error: float


class ProfileSummary(_Strict):
    measurements: int
    median_abs_error_before: float
    max_abs_error_before: float
    median_abs_error_after: float
    max_abs_error_after: float
    median_abs_error_loo: float | None = None
    max_abs_error_loo: float | None = None


class ProfileFile(_Strict):
    clustersim_calibration: Literal[1]
    about: str = ""
    command: str = ""
    fit: dict[str, str] = {}
    gpus: tuple[str, ...] = Field(min_length=1)  # the catalog GPUs the measurements ran on
    inputs: tuple[ProfileInput, ...] = ()
    constants: tuple[ProfileConstant, ...]
    residuals: tuple[ProfileResidual, ...] = ()
    memory: tuple[ProfileMemory, ...] = ()
    summary: dict[str, ProfileSummary] = {}


def profile_path(name: str, base_dir: str | Path | None = None) -> Path:
    """A profile named in a scenario: a path, relative to the scenario's folder."""
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def read_profile(path: str | Path) -> ProfileFile:
    """The validated profile; a UserError naming the file and every problem in it."""
    source = str(path)
    text = read_text(path, "calibration profile (clustersim calibrate --out)")
    data = load_yaml(text, source)
    if not isinstance(data, dict) or "clustersim_calibration" not in data:
        raise UserError(
            Problem(
                "clustersim_calibration",
                "not a calibration profile (no version key)",
                "write one with: clustersim calibrate ... --out PROFILE.yaml",
            ),
            source,
        )
    if data["clustersim_calibration"] != PROFILE_VERSION:
        raise UserError(
            Problem(
                "clustersim_calibration",
                f"profile format {data['clustersim_calibration']!r} is not "
                f"one this clustersim reads (it reads {PROFILE_VERSION})",
                "write the profile again with this clustersim's `calibrate`",
            ),
            source,
        )
    if "gpus" not in data:
        raise UserError(
            Problem(
                "gpus",
                "the profile does not say which GPU it was fitted on (written by an older "
                "clustersim), so it cannot be checked against a cluster's GPU",
                "write the profile again with this clustersim's `calibrate`",
            ),
            source,
        )
    try:
        profile = ProfileFile.model_validate(data)
    except ValidationError as exc:
        raise UserError(pydantic_problems(exc, ProfileFile), source) from None
    problems = _constant_problems(profile)
    if problems:
        raise UserError(problems, source)
    return profile


def _constant_problems(profile: ProfileFile) -> list[Problem]:
    problems, seen = [], set()
    valid = known_names(gpus=hardware.gpu_names())
    for i, c in enumerate(profile.constants):
        where = f"constants.{i}"
        try:
            k = knob(c.name)
        except KeyError:
            problems.append(
                Problem(
                    f"{where}.name", f"unknown constant {c.name!r}", did_you_mean(c.name, valid)
                )
            )
            continue
        if c.name in seen:
            problems.append(Problem(f"{where}.name", f"{c.name} is listed twice"))
        seen.add(c.name)
        if not k.lower <= c.value <= k.upper or (k.unit == "fraction" and c.value <= 0):
            problems.append(
                Problem(
                    f"{where}.value",
                    f"{c.value:g} is outside {c.name}'s physical bounds "
                    f"[{k.lower:g}, {k.upper:g}] ({k.unit})",
                )
            )
    return problems


def load_profile(path: str | Path, flag: str = "", gpu: str | None = None) -> CalibrationSpec:
    """A profile file -> the CalibrationSpec the simulation uses (its fitted constants applied).
    `flag`: the command-line option that named it (a missing file is that option's mistake);
    `gpu`: the GPU it is applied to (a UserError at `flag` if the profile was fitted on another)."""
    if flag and not Path(path).is_file():
        raise UserError(
            Problem(
                flag,
                f"no calibration profile {str(path)!r}",
                "give a file written by `clustersim calibrate --out`",
            )
        )
    profile = read_profile(path)
    values = tuple((c.name, c.value) for c in profile.constants if c.status == "fitted")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    spec = CalibrationSpec(
        source=str(path),
        sha256=digest,
        values=values,
        gpus=profile.gpus,
        comm=with_comm(NCCL_CALIBRATION, dict(values)),
    )
    if gpu is not None:
        problem = gpu_problem(spec, gpu, flag or "calibration")
        if problem is not None:
            raise UserError(problem)
    return spec


def gpu_problem(spec: CalibrationSpec, gpu: str, where: str) -> Problem | None:
    """The mistake of applying a profile to a GPU it was not fitted on (None if it was)."""
    if spec.fitted_on(gpu):
        return None
    return Problem(
        where,
        f"profile {spec.source} was fitted on {' and '.join(spec.gpus)}, not on {gpu}: a "
        "constant fitted on one GPU is never applied to another",
        f"calibrate on measurements from {gpu} (clustersim calibrate ... --out PROFILE.yaml), or "
        "remove the profile",
    )


def resolve_calibration(
    name: str | None, base_dir: str | Path | None, problems: list[Problem], gpu: str | None = None
) -> CalibrationSpec | None:
    """A scenario's `calibration:` field; None (with problems added) if it does not load or was
    fitted on a GPU other than `gpu` (the cluster's)."""
    if name is None:
        return CalibrationSpec()
    path = profile_path(name, base_dir)
    if not path.is_file():
        problems.append(
            Problem(
                "calibration",
                f"no calibration profile {str(path)!r}",
                "give the path of a file written by `clustersim calibrate --out`, relative to "
                "the scenario's folder",
            )
        )
        return None
    try:
        return load_profile(path, gpu=gpu)
    except UserError as exc:
        problems.extend(exc.sourced())
        return None
