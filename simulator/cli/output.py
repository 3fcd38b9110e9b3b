"""Checks on the files a command is asked to write, before any work is done: a folder where a
file is wanted, a folder that does not exist or cannot be written, a path under a regular file,
or one of the command's own inputs. What only the write itself can tell (a full disk) is caught
where it happens (core/outputs.writing)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from simulator.core.errors import Problem, UserError


def check_output(
    option: str,
    path: str | Path | None,
    inputs: tuple[str | Path, ...] = (),
    make_folders: bool = False,
) -> None:
    """A UserError naming `option` when `path` cannot or must not be written as a file.
    `make_folders`: the command creates the missing folders above the file itself."""
    if not path:
        return
    out = Path(path)
    if out.is_dir():
        raise UserError(Problem(option, f"{out} is a directory", "give a file name"))
    if str(path).endswith(("/", os.sep)):
        raise UserError(Problem(option, f"{path} names a folder", "give a file name"))
    _check_folder(option, out.parent, make_folders)
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError(
            Problem(
                option,
                f"{out} exists and cannot be written",
                "give another path, or make it writable",
            )
        )
    for src in inputs:
        if src and out.resolve() == Path(src).resolve():
            raise UserError(
                Problem(
                    option,
                    f"refusing to overwrite the input file {src}",
                    "give another output path",
                )
            )


def check_output_dir(option: str, path: str | Path) -> None:
    """A folder the command will create files in (and create, with its parents, if missing): must
    not be a file, nor under one, and the folder it will be made in must be writable."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(Problem(option, f"{out} is a file, not a folder", "give a folder name"))
    _check_folder(option, out, make_folders=True)


def _check_folder(option: str, folder: Path, make_folders: bool) -> None:
    """`folder` (or, with make_folders, its nearest existing ancestor) is a folder we can write in."""
    folder = folder if str(folder) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(
            Problem(option, f"{existing} is a file, not a folder", "give a path in a folder")
        )
    if existing != folder and not make_folders:
        raise UserError(Problem(option, f"the folder {folder} does not exist", "create it first"))
    reason = _cannot_create_in(existing)
    if reason:
        raise UserError(
            Problem(
                option,
                f"cannot write in the folder {existing}: {reason}",
                "give a path in a folder you can write to",
            )
        )


def _cannot_create_in(folder: Path) -> str:
    """Why no file can be created in `folder`, or "". os.access says yes to root whatever the
    folder's mode, and cannot tell a read-only file system from a permission, so a temporary file
    is created (and removed) instead: its error says why."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".clustersim-", suffix=".probe")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return ""


def check_runs(runs: int | None, seed: int | None) -> None:
    """--runs and --seed of the whole-run Monte Carlo (the bounds of reliability.runs and .seed)."""
    if runs is not None and not 1 <= runs <= 100_000:
        raise UserError(Problem("--runs", f"expected 1 to 100,000 runs, got {runs}"))
    if seed is not None and not 0 <= seed < 2**63:
        raise UserError(Problem("--seed", f"expected a seed from 0 to 2^63 - 1, got {seed}"))
