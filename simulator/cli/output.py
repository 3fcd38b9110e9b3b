"""Checks on the files a command is asked to write, before any work is done: a folder where a
file is wanted, a folder that does not exist, or one of the command's own inputs."""

from __future__ import annotations

from pathlib import Path

from simulator.core.errors import Problem, UserError


def check_output(option: str, path: str | Path | None, inputs: tuple[str | Path, ...] = ()) -> None:
    """A UserError naming `option` when `path` cannot or must not be written as a file."""
    if not path:
        return
    out = Path(path)
    if out.is_dir():
        raise UserError(Problem(option, f"{out} is a directory", "give a file name"))
    if not out.parent.is_dir():
        raise UserError(Problem(option, f"the folder {out.parent} does not exist", "create it first"))
    for src in inputs:
        if src and out.resolve() == Path(src).resolve():
            raise UserError(Problem(option, f"refusing to overwrite the input file {src}", "give another output path"))


def check_output_dir(option: str, path: str | Path) -> None:
    """A folder the command will create files in: must not be an existing file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(Problem(option, f"{out} is a file, not a folder", "give a folder name"))


def check_runs(runs: int | None, seed: int | None) -> None:
    """--runs and --seed of the whole-run Monte Carlo (the bounds of reliability.runs and .seed)."""
    if runs is not None and not 1 <= runs <= 100_000:
        raise UserError(Problem("--runs", f"expected 1 to 100,000 runs, got {runs}"))
    if seed is not None and not 0 <= seed < 2**63:
        raise UserError(Problem("--seed", f"expected a seed from 0 to 2^63 - 1, got {seed}"))
