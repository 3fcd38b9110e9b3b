"""A torchtitan job TOML -> model preset and training (framework pytorch-fsdp2).

Semantics as torchtitan reads them (torchtitan/config/job_config.py, distributed/parallel_dims.py):
`[training] batch_size` (`local_batch_size` in newer versions) is per data-parallel rank, so it is
the micro-batch size, and `global_batch_size` (newer; -1 or absent: no accumulation) counts
sequences over all ranks; `data_parallel_shard_degree = -1` takes the GPUs that remain after
replicate x cp x tp x pp; shard > 1 with replicate 1 is FSDP2 (zero3), both > 1 HSDP (shard groups
of data_parallel_shard_degree), shard 1 DDP. Tensor parallelism shards norms and the loss over
the sequence (sequence parallelism on). `[model] converters = ["float8"]` trains in fp8.
"""

from __future__ import annotations

from typing import Any

from simulator.scenario.importers.base import Partial, flatten

TR, PAR = "training", "training.parallelism"
# torchtitan/models/llama3/__init__.py llama3_configs: 8B, 70B, 405B have the shapes of Meta's
# Llama 3 (dim 4096 / 8192 / 16384, ffn_dim_multiplier and multiple_of giving 14336 / 28672 /
# 53248, vocab 128256 from the tokenizer): the presets.
FLAVOURS = {
    ("llama3", "8B"): "llama3-8b",
    ("llama3", "70B"): "llama3-70b",
    ("llama3", "405B"): "llama3-405b",
}
_SCHEDULES = {"1F1B": "1f1b", "Interleaved1F1B": "interleaved-1f1b", "GPipe": "gpipe"}
_IGNORED_SECTIONS = {
    "job": "job bookkeeping",
    "profiling": "profiling",
    "metrics": "logging",
    "lr_scheduler": "the learning-rate schedule",
    "checkpoint": "checkpoint files (reliability.checkpoint models checkpoint time)",
    "comm": "timeouts and tracing",
    "experimental": "experimental switches",
    "validation": "evaluation",
    "memory_estimation": "torchtitan's own estimator",
    "fault_tolerance": "torchft",
}
_TRAINING_IGNORED = (
    "max_norm",
    "steps",
    "compile",
    "dataset",
    "dataset_path",
    "seed",
    "deterministic",
    "warmup_steps",
    "gc_freq",
    "enable_cpu_offload",
    "mixed_precision_reduce",
)


def is_torchtitan(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and ("parallelism" in data or "training" in data)
        and ("model" in data and isinstance(data["model"], dict) and "flavor" in data["model"])
    )


def import_torchtitan(data: dict[str, Any], source: str) -> Partial:
    p = Partial(source, "torchtitan TOML")
    p.assignments.append((f"{TR}.framework", "pytorch-fsdp2", ""))
    p.assignments.append(
        (f"{TR}.precision", "bf16-mixed", "default: mixed_precision_param bfloat16")
    )
    for section, value in data.items():
        table = value if isinstance(value, dict) else {}
        if section == "model":
            _model(table, p)
        elif section == "training":
            _training(table, p)
        elif section == "parallelism":
            _parallelism(table, p)
        elif section == "activation_checkpoint":
            _checkpointing(table, p)
        elif section == "optimizer":
            for key, v in table.items():
                if key == "name" and str(v).lower() in ("adamw", "adam"):
                    p.map("optimizer.name", v, f"{TR}.optimizer", str(v).lower())
                elif key == "name":
                    p.refuse("optimizer.name", v, "an optimizer whose states are not modelled")
                else:
                    p.ignore(f"optimizer.{key}", v, "an optimisation hyper-parameter")
        elif section == "float8":
            for key, v in flatten(table, "float8."):
                p.ignore(key, v, "float8 details: fp8 training is [model] converters")
        elif section in _IGNORED_SECTIONS:
            for key, v in flatten(table, f"{section}."):
                p.ignore(key, v, _IGNORED_SECTIONS[section])
        else:
            p.unknown(section, value, [*_IGNORED_SECTIONS, "model", "training", "parallelism"])
    return p


def _model(table: dict[str, Any], p: Partial) -> None:
    name, flavor = str(table.get("name", "")), str(table.get("flavor", ""))
    preset = FLAVOURS.get((name, flavor))
    for key, value in table.items():
        if key == "flavor":
            if preset:
                p.map(
                    "model.flavor", value, "model.preset", preset, f"torchtitan's {name} {flavor}"
                )
            else:
                known = ", ".join(f"{n} {f}" for n, f in FLAVOURS)
                p.refuse(
                    "model.flavor",
                    value,
                    f"a flavour whose shape is not known ({known}): "
                    "give the model with a config.json",
                )
        elif key == "name":
            p.note("model.name", value, "model.preset")
        elif key == "converters":
            converters = [value] if isinstance(value, str) else list(value)
            if "float8" in converters:
                p.map("model.converters", value, f"{TR}.precision", "fp8-mixed", "Float8Linear")
            else:
                p.ignore("model.converters", value, "no float8")
        else:
            p.ignore(f"model.{key}", value, "tokenizer and file paths")


def _training(table: dict[str, Any], p: Partial) -> None:
    for key, value in table.items():
        name = f"training.{key}"
        if key in ("batch_size", "local_batch_size"):
            p.map(name, value, f"{TR}.micro_batch_size", value, "per data-parallel rank")
        elif key == "global_batch_size":
            if value == -1:
                p.ignore(name, value, "-1: no gradient accumulation")
            else:
                p.map(name, value, f"{TR}.global_batch_size", value, "sequences over all ranks")
        elif key == "seq_len":
            p.map(name, value, f"{TR}.seq_len", value)
        elif key == "mixed_precision_param":
            names = {"bfloat16": "bf16-mixed", "float32": "fp32"}
            if value in names:
                p.map(name, value, f"{TR}.precision", names[value])
            else:
                p.refuse(name, value, "bfloat16 or float32")
        elif key in _TRAINING_IGNORED:
            p.ignore(name, value, "run length, data and numerics")
        else:
            p.unknown(
                name, value, ["batch_size", "seq_len", "global_batch_size", *_TRAINING_IGNORED]
            )


def _parallelism(table: dict[str, Any], p: Partial) -> None:
    degrees = {
        "tensor_parallel_degree": "tp",
        "pipeline_parallel_degree": "pp",
        "context_parallel_degree": "cp",
        "expert_parallel_degree": "ep",
        "expert_tensor_parallel_degree": "etp",
    }
    replicate = table.get("data_parallel_replicate_degree", 1)
    shard = table.get("data_parallel_shard_degree", -1)
    for key, value in table.items():
        name = f"parallelism.{key}"
        if key in degrees:
            p.map(name, value, f"{PAR}.{degrees[key]}", value)
            if key == "tensor_parallel_degree" and value > 1:
                p.assignments.append((f"{PAR}.sequence_parallel", True, name))
        elif key == "data_parallel_replicate_degree":
            p.note(name, value, f"{TR}.strategy")
        elif key == "data_parallel_shard_degree":
            p.note(name, value, f"{TR}.strategy", "-1: what remains" if value == -1 else "")
        elif key == "pipeline_parallel_schedule":
            if value in _SCHEDULES:
                p.map(name, value, f"{PAR}.pipeline.schedule", _SCHEDULES[value])
            else:
                p.refuse(name, value, f"one of {', '.join(_SCHEDULES)}")
        elif key == "fsdp_reshard_after_forward":
            flags = {"default": None, "always": True, "never": False}
            if flags.get(value) is not None:
                p.map(name, value, f"{TR}.fsdp2.reshard_after_forward", flags[value])
            else:
                p.ignore(name, value, "default: reshard, except the root")
        elif key in (
            "enable_async_tensor_parallel",
            "disable_loss_parallel",
            "enable_compiled_autograd",
        ):
            p.ignore(name, value, "a kernel or loss-sharding switch")
        else:
            p.unknown(
                name, value, [*degrees, "data_parallel_shard_degree", "pipeline_parallel_schedule"]
            )
    if shard == 1 and replicate in (1, -1):
        p.assignments.append((f"{TR}.strategy", "ddp", "data_parallel_shard_degree"))
    elif replicate == 1:
        p.assignments.append((f"{TR}.strategy", "zero3", "data_parallel_shard_degree"))
    elif shard == 1:
        p.assignments.append((f"{TR}.strategy", "ddp", "data_parallel_replicate_degree"))
    else:
        p.assignments.append((f"{TR}.strategy", "hsdp", "data_parallel_replicate_degree"))
        if shard != -1:
            p.assignments.append((f"{TR}.shard_group_size", shard, "data_parallel_shard_degree"))
        else:
            p.pending["hsdp_replicate"] = replicate
    p.pending["dp_check"] = (replicate, shard)


def _checkpointing(table: dict[str, Any], p: Partial) -> None:
    for key, value in table.items():
        name = f"activation_checkpoint.{key}"
        if key == "mode" and value in ("none", "selective", "full"):
            p.map(name, value, f"{TR}.activation_checkpointing", value)
        elif key == "mode":
            p.refuse(name, value, "none, selective or full")
        elif key == "selective_ac_option":
            p.ignore(
                name,
                value,
                "which ops or layers torchtitan recomputes; clustersim's selective "
                "recomputation is Korthikanti et al.'s (attention's core)",
            )
        else:
            p.ignore(name, value, "a checkpointing detail")
