"""Framework configs -> a scenario document (`clustersim import`): each file's kind is recognised
from its content, each importer maps what it knows (base.Partial: every key mapped, ignored with
why, or refused with why), the partial documents are merged (two files giving one scenario key
different values is an error naming both), what needs the GPU count is resolved, and the result
is validated by the same path as `clustersim validate`.

    imported = import_files(["config.json", "ds_config.json"], topology="dgx-h100", num_hosts=2)
    imported.document, imported.entries, imported.scenario

A file that does not exist is looked up among the real configs shipped with clustersim
(simulator/data/configs: `shipped_configs()`, `clustersim import --list`).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.core.yamlio import load_yaml, read_text
from simulator.scenario.importers.accelerate import import_accelerate, is_accelerate
from simulator.scenario.importers.base import REFUSED, Entry, Partial
from simulator.scenario.importers.deepspeed import import_deepspeed, is_deepspeed
from simulator.scenario.importers.hf import import_hf, is_hf_config
from simulator.scenario.importers.megatron import import_megatron, is_megatron
from simulator.scenario.importers.merge import merge, missing, resolve_pending, validate
from simulator.scenario.importers.torchtitan import import_torchtitan, is_torchtitan
from simulator.spec.specs import Scenario

KINDS = (
    "Hugging Face config.json",
    "Megatron-LM arguments",
    "DeepSpeed config",
    "torchtitan TOML",
    "accelerate config",
)


@dataclass
class Imported:
    """The merged scenario document, every source key's record, and the validated scenario."""

    document: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # source -> kind
    scenario: Scenario | None = None

    @property
    def refused(self) -> list[Entry]:
        return [e for e in self.entries if e.status == REFUSED]

    @property
    def unknown(self) -> list[Entry]:
        return [e for e in self.entries if e.unknown]


def import_text(text: str, source: str) -> Partial:
    """One file's content -> its partial scenario (the kind recognised from the content)."""
    data: Any = None
    stripped = text.lstrip()
    toml_error: Problem | None = None
    if stripped.startswith("{"):
        try:
            data = json.loads(text, object_pairs_hook=_no_contradictions(source))
        except json.JSONDecodeError as exc:
            raise UserError(Problem("", f"invalid JSON at line {exc.lineno}: {exc.msg}"), source)
    if data is None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            data, toml_error = None, _toml_problem(text, exc)
    if isinstance(data, dict) and is_torchtitan(data):
        return import_torchtitan(data, source)
    if isinstance(data, dict) and is_hf_config(data):
        return import_hf(data, source)
    if isinstance(data, dict) and is_deepspeed(data):
        return import_deepspeed(data, source)
    if is_megatron(text):
        return import_megatron(text, source)
    yaml_error: UserError | None = None
    if not stripped.startswith("{"):
        try:
            data = load_yaml(text, source)
        except UserError as exc:
            data, yaml_error = None, exc
        if is_accelerate(data):
            return import_accelerate(data, source)
    if toml_error is not None and _TOML_TABLE.search(text):
        raise UserError(toml_error, source)
    if yaml_error is not None and _YAML_MAPPING.search(text):
        raise yaml_error
    raise UserError(
        Problem(
            "",
            "not a file clustersim can import",
            "expected one of: " + "; ".join(KINDS),
        ),
        source,
    )


# A line that only a TOML file has ([table]), and one that only a YAML mapping has (key: value).
_TOML_TABLE = re.compile(r"^\s*\[[A-Za-z0-9_.\-\s\"']+\]\s*(#.*)?$", re.MULTILINE)
_YAML_MAPPING = re.compile(r"^[A-Za-z_][\w.\-]*:(\s|$)", re.MULTILINE)


def _no_contradictions(source: str):
    """json.loads' object_pairs_hook: one key given twice with different values is an error at
    the file and key (DeepSpeed refuses any repeated key; json.load would keep the last)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out and out[key] != value:
                raise UserError(
                    Problem(
                        key,
                        f"given twice, as {out[key]!r} and as {value!r}",
                        "the file contradicts itself: keep one",
                    ),
                    source,
                )
            out[key] = value
        return out

    return hook


def _toml_problem(text: str, exc: tomllib.TOMLDecodeError) -> Problem:
    """A TOML error at the key it is on (table.key), e.g. a key given twice."""
    at = re.search(r"\(at line (\d+), column \d+\)", str(exc))
    lineno = int(at.group(1)) if at else 0
    lines = text.splitlines()
    if not 0 < lineno <= len(lines):
        return Problem("", f"invalid TOML: {exc}")
    message = str(exc)[: at.start()].strip() if at else str(exc)
    table = ""
    for line in lines[: lineno - 1]:
        header = line.strip()
        if header.startswith("[") and "]" in header:
            table = header.strip("[]").split("]")[0].strip() + "."
    key = lines[lineno - 1].split("=", 1)[0].strip() if "=" in lines[lineno - 1] else ""
    where = f"{table}{key}" if key else f"line {lineno}"
    return Problem(where, f"invalid TOML at line {lineno}: {message}")


def configs_dir() -> Path:
    """The real framework configs shipped with clustersim (simulator/data/configs, package data;
    sources and licenses in its README.md)."""
    from simulator.core.resources import data_dir

    return data_dir("configs")


def shipped_configs() -> dict[str, Path]:
    """Shipped config name (its file name) -> path, in name order."""
    folder = configs_dir()
    if not folder.is_dir():
        return {}
    return {
        f.name: f
        for f in sorted(folder.iterdir())
        if f.is_file() and f.name != "README.md" and not f.name.startswith(("LICENSE", "."))
    }


def config_path(given: str | Path) -> Path:
    """A config file by path, or a shipped config by name (its file name, with or without the
    suffix), as a scenario is found by name; a UserError naming the shipped ones otherwise."""
    path = Path(given)
    if path.exists():
        return path
    shipped = shipped_configs()
    text = str(given)
    if "/" not in text and os.sep not in text:
        for name, found in shipped.items():
            if text in (name, found.stem):
                return found
    raise UserError(
        Problem(
            "",
            "no such file, nor a shipped config of that name",
            "give a path, or a shipped config: "
            + ", ".join(shipped)
            + "; clustersim import --list says what each is",
        ),
        text,
    )


def import_files(
    paths: list[str | Path],
    topology: str | None = None,
    num_hosts: int | None = None,
    num_gpus: int | None = None,
    name: str | None = None,
) -> Imported:
    """Import, merge, resolve and validate; UserError (exit 2) when files contradict each other
    or the result is not a valid scenario (what is missing is said)."""
    partials = [import_text(read_text(config_path(p), "config file"), str(p)) for p in paths]
    cli = Partial("command line", "options")
    for option, target, value in (
        ("--topology", "cluster.topology", topology),
        ("--num-hosts", "cluster.num_hosts", num_hosts),
        ("--num-gpus", "cluster.num_gpus", num_gpus),
        ("--name", "name", name),
    ):
        if value is not None:
            cli.map(option, value, target, value)
    partials.append(cli)
    merged = merge(partials)
    document = {"name": merged.pop("name", name or _default_name(paths)), **merged}
    imported = Imported(
        document,
        [e for p in partials for e in p.entries],
        {p.source: p.kind for p in partials[:-1]},
    )
    try:
        missing(document, partials)
        pending = {k: v for p in partials for k, v in p.pending.items()}
        resolve_pending(document, pending)
        imported.scenario = validate(document, partials)
    except UserError as exc:  # a misspelt key is the likely cause: name it too
        raise UserError(
            exc.sourced() + [Problem(e.key, e.why, "", e.source) for e in imported.unknown]
        ) from None
    return imported


def _default_name(paths: list[str | Path]) -> str:
    return "imported-" + "-".join(Path(p).stem for p in paths)[:80]
