"""Framework configs -> a scenario document (`clustersim import`): each file's kind is recognised
from its content, each importer maps what it knows (base.Partial: every key mapped, ignored with
why, or refused with why), the partial documents are merged (two files giving one scenario key
different values is an error naming both), what needs the GPU count is resolved, and the result
is validated by the same path as `clustersim validate`.

    imported = import_files(["config.json", "ds_config.json"], topology="dgx-h100", num_hosts=2)
    imported.document, imported.entries, imported.scenario
"""

from __future__ import annotations

import copy
import json
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
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(Problem("", f"invalid JSON at line {exc.lineno}: {exc.msg}"), source)
    if data is None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = None
    if isinstance(data, dict) and is_torchtitan(data):
        return import_torchtitan(data, source)
    if isinstance(data, dict) and is_hf_config(data):
        return import_hf(data, source)
    if isinstance(data, dict) and is_deepspeed(data):
        return import_deepspeed(data, source)
    if is_megatron(text):
        return import_megatron(text, source)
    if not stripped.startswith("{"):
        try:
            data = load_yaml(text, source)
        except UserError:
            data = None
        if is_accelerate(data):
            return import_accelerate(data, source)
    raise UserError(
        Problem(
            "",
            "not a file clustersim can import",
            "expected one of: " + "; ".join(KINDS),
        ),
        source,
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
    partials = [import_text(read_text(p, "config file"), str(p)) for p in paths]
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
    _missing(document, partials)
    pending = {k: v for p in partials for k, v in p.pending.items()}
    _resolve_pending(document, pending)
    imported.scenario = _validate(document)
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
        raise UserError(
            Problem("model", "one file names a preset, another gives an architecture", "import one")
        )


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
        replicate, shard = pending["dp_check"]
        replicate = 1 if replicate == -1 else replicate
        want = replicate * (dp // replicate if shard == -1 else shard)
        if want != dp:
            raise UserError(
                Problem(
                    "parallelism",
                    f"data_parallel_replicate_degree x data_parallel_shard_degree = {want}, "
                    f"but {gpus} GPUs / (tp x pp x cp) leaves {dp}",
                    "give -1 for the shard degree, or change --num-hosts / --num-gpus",
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


def _validate(doc: dict[str, Any]) -> Scenario:
    from simulator.scenario.load import scenario_from_dict

    try:
        return scenario_from_dict(copy.deepcopy(doc), base_dir=Path.cwd())
    except UserError as exc:
        raise UserError(
            [
                Problem(
                    p.path,
                    p.message,
                    p.hint,
                    p.source or "the imported scenario",
                )
                for p in exc.problems
            ]
        ) from None
