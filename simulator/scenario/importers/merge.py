"""Merging the importers' partial documents into one scenario document (two files giving one
key different values is an error naming both), what needs the GPU count resolved, what no file
gives said, and the result validated as `clustersim validate` would, each problem traced to the
file and key that set the value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.scenario.importers.base import Partial
from simulator.spec.specs import Scenario


def merge(partials: list[Partial]) -> dict[str, Any]:
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


def missing(doc: dict[str, Any], partials: list[Partial]) -> None:
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
    from simulator.scenario.schema_cluster import ClusterSection

    try:
        section = ClusterSection.model_validate(doc.get("cluster", {}))
    except Exception:  # noqa: BLE001  (the validation after this reports it properly)
        return None
    return resolve.cluster(section, [], Path.cwd())


def resolve_pending(doc: dict[str, Any], pending: dict[str, Any]) -> None:
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


def validate(doc: dict[str, Any], partials: list[Partial]) -> Scenario:
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
