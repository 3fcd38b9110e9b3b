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

import copy
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
    merged = _merge(partials)
    document = {"name": merged.pop("name", name or _default_name(paths)), **merged}
    imported = Imported(
        document,
        [e for p in partials for e in p.entries],
        {p.source: p.kind for p in partials[:-1]},
    )
    try:
        _missing(document, partials)
        pending = {k: v for p in partials for k, v in p.pending.items()}
        _resolve_pending(document, pending)
        imported.scenario = _validate(document, partials)
    except UserError as exc:  # a misspelt key is the likely cause: name it too
        raise UserError(
            exc.sourced() + [Problem(e.key, e.why, "", e.source) for e in imported.unknown]
        ) from None
    return imported


def _default_name(paths: list[str | Path]) -> str:
    return "imported-" + "-".join(Path(p).stem for p in paths)[:80]


def _merge(partials: list[Partial]) -> dict[str, Any]:
    """The partial documents merged in order; an explicit key agreeing with a default is fine,
    two explicit keys that disagree are an error naming both files and keys."""
    doc: dict[str, Any] = {}
    given: dict[str, tuple[Any, str, str]] = {}  # path -> (value, source, key) for explicit keys
    problems: list[Problem] = []
    for part in partials:
        for path, value, key in part.assignments:
            explicit = not key.startswith("default")
            if path in given and explicit and given[path][0] != value:
                old, src, old_key = given[path]
                problems.append(
                    Problem(
                        key,
                        f"sets {path} = {value!r}, but {src} ({old_key}) sets {old!r}",
                        "the files contradict each other: make them agree, or import one",
                        part.source,
                    )
                )
                continue
            if path in given and not explicit:
                continue  # a default never overrides what a file said
            if explicit:
                given[path] = (value, part.source, key)
            _set(doc, path, value)
    if problems:
        raise UserError(problems)
    return doc


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = copy.deepcopy(value)


def _missing(doc: dict[str, Any], partials: list[Partial]) -> None:
    """Say what the files do not give (exit 2), before the schema says it less helpfully."""
    model = doc.get("model", {})
    if not model:
        raise UserError(
            Problem(
                "model",
                "none of the files describes the model",
                "add a Hugging Face config.json, a Megatron-LM argument list with the model's "
                "shape, or a torchtitan TOML with a known flavour",
            )
        )
    arch = model.get("architecture")
    if arch is not None and "preset" not in model:
        needed = ("num_layers", "hidden_size", "num_heads", "vocab_size")
        lacking = [k for k in needed if k not in arch]
        if "ffn_hidden_size" not in arch and arch.get("ffn") == "swiglu":
            lacking.append("ffn_hidden_size")
        if lacking:
            sources = ", ".join(p.source for p in partials if p.kind != "options")
            raise UserError(
                Problem(
                    "model.architecture",
                    f"{sources} do not give {', '.join(lacking)}",
                    "add a Hugging Face config.json of the model (or --vocab-size and the "
                    "shape flags to the Megatron-LM arguments)",
                )
            )
    if "preset" in model and "architecture" in model:
        preset = _setters(partials, "model.preset")
        arch = _setters(partials, "model.architecture.")
        raise UserError(
            Problem(
                "model",
                f"{preset} names a preset ({model['preset']}), {arch} gives an architecture",
                "the files describe the model twice: import one of them",
            )
        )


def _setters(partials: list[Partial], path: str) -> str:
    """The files and keys that set `path` (or, for a path ending in '.', anything under it)."""
    found = []
    for part in partials:
        keys = sorted({k for target, _, k in part.assignments if k and _covers(path, target)})
        if keys:
            shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
            found.append(f"{part.source} ({shown})")
    return " and ".join(found) or "a file"


def _covers(path: str, target: str) -> bool:
    if path.endswith("."):
        return target.startswith(path)
    return target == path or target.startswith(path + ".") or path.startswith(target + ".")


def _cluster(doc: dict[str, Any]) -> Any:
    """The cluster as the scenario would resolve it (a ClusterSpec), or None if it does not."""
    from simulator.scenario import resolve
    from simulator.scenario.schema import ClusterSection

    try:
        section = ClusterSection.model_validate(doc.get("cluster", {}))
    except Exception:  # noqa: BLE001  (the validation after this reports it properly)
        return None
    return resolve.cluster(section, [], Path.cwd())


def _resolve_pending(doc: dict[str, Any], pending: dict[str, Any]) -> None:
    """What needs the GPU count: torchtitan's shard degree -1 under HSDP, DeepSpeed's micro-batch
    from train_batch_size, accelerate's HYBRID_SHARD groups (one host)."""
    if not pending:
        return
    cluster = _cluster(doc)
    if cluster is None:
        return
    gpus = cluster.num_gpus
    t = doc.setdefault("training", {})
    par = t.get("parallelism", {})
    model_parallel = par.get("tp", 1) * par.get("pp", 1) * par.get("cp", 1)
    dp = gpus // model_parallel if gpus % model_parallel == 0 else None
    if dp is None:
        return
    if "dp_check" in pending:
        replicate, shard, source = pending["dp_check"]
        replicate = 1 if replicate == -1 else replicate
        want = replicate * (dp // replicate if shard == -1 else shard)
        if want != dp:
            raise UserError(
                Problem(
                    "parallelism.data_parallel_shard_degree",
                    f"data_parallel_replicate_degree x data_parallel_shard_degree = {want}, "
                    f"but {gpus} GPUs / (tp x pp x cp) leaves {dp}",
                    "give -1 for the shard degree, or change --num-hosts / --num-gpus",
                    source,
                )
            )
    if "hsdp_replicate" in pending:
        t["shard_group_size"] = dp // pending["hsdp_replicate"]
    if "hsdp_per_host" in pending:
        t.setdefault("shard_group_size", min(dp, cluster.gpus_per_host))
    if "global_batch" in pending and "micro_batch_size" not in t:
        accum = t.get("grad_accum_steps", 1)
        if pending["global_batch"] % (accum * dp) == 0:
            t["micro_batch_size"] = pending["global_batch"] // (accum * dp)


def _validate(doc: dict[str, Any], partials: list[Partial]) -> Scenario:
    """The document validated as `clustersim validate` does; each problem at the file and key
    that set the scenario key it is about."""
    from simulator.scenario.load import scenario_from_dict

    try:
        return scenario_from_dict(copy.deepcopy(doc), base_dir=Path.cwd())
    except UserError as exc:
        problems = []
        for p in exc.problems:
            origin = _origin(partials, p.path) if not p.source else None
            if origin is None:
                problems.append(
                    Problem(p.path, p.message, p.hint, p.source or "the imported scenario")
                )
            else:
                source, key = origin
                where = f"{p.path} (from {key})" if key and key != p.path else p.path
                problems.append(Problem(where, p.message, p.hint, source))
        raise UserError(problems) from None


def _origin(partials: list[Partial], path: str) -> tuple[str, str] | None:
    """The file and key whose value the merged document holds at `path` (the first explicit
    key, else the first default), or None when no file set it."""
    if not path:
        return None
    first: tuple[str, str] | None = None
    for exact in (True, False):
        for part in partials:
            for target, _, key in part.assignments:
                hit = target == path if exact else _covers(path, target)
                if not hit:
                    continue
                if not key.startswith("default"):
                    return part.source, key
                first = first or (part.source, key)
        if first is not None:
            return first
    return None
