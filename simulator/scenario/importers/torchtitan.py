"""A torchtitan job TOML -> model preset and training (framework pytorch-fsdp2).

Semantics as torchtitan reads them (torchtitan/config/job_config.py, distributed/parallel_dims.py):
`[training] batch_size` (`local_batch_size` in newer versions) is per data-parallel rank, so it is
the micro-batch size, and `global_batch_size` (newer; -1 or absent: no accumulation) counts
sequences over all ranks; `data_parallel_shard_degree = -1` takes the GPUs that remain after
replicate x cp x tp x pp; shard > 1 with replicate 1 is FSDP2 (zero3), both > 1 HSDP (shard groups
of data_parallel_shard_degree), shard 1 DDP. Tensor parallelism shards norms and the loss over
the sequence (sequence parallelism on; the loss on vocabulary-parallel logits unless
`disable_loss_parallel`). `[model] converters = ["float8"]` trains in fp8.

What fully_shard is given (models/llama3/parallelize_llama.py apply_fsdp): MixedPrecisionPolicy
with reduce_dtype `mixed_precision_reduce` (float32, the only value torchtitan accepts, and its
default: gradients are reduced in fp32), CPUOffloadPolicy under `enable_cpu_offload`, and
`fsdp_reshard_after_forward = "default"` meaning no resharding under pipeline parallelism.
With pipeline parallelism each rank's batch is split into batch_size /
`pipeline_parallel_microbatch_size` (default 1) micro-batches (distributed/pipeline.py).
Absent keys take torchtitan's defaults (config_manager.py of the TOML versions): batch_size 8,
seq_len 2048, optimizer AdamW, activation_checkpoint mode selective with selective_ac_option "2"
(every second block checkpointed whole: refused, as Megatron-LM's partial recomputation is).
"""

from __future__ import annotations

from typing import Any

from simulator.scenario.importers.base import Partial, flatten
from simulator.scenario.importers.torchtitan_layout import (
    TR,
    Layout,
    batches,
    layout_of,
    parallelism,
)

# torchtitan/models/llama3/__init__.py llama3_configs: 8B, 70B, 405B have the shapes of Meta's
# Llama 3 (dim 4096 / 8192 / 16384, ffn_dim_multiplier and multiple_of giving 14336 / 28672 /
# 53248, vocab 128256 from the tokenizer): the presets.
FLAVOURS = {
    ("llama3", "8B"): "llama3-8b",
    ("llama3", "70B"): "llama3-70b",
    ("llama3", "405B"): "llama3-405b",
}
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
    "steps",
    "dataset",
    "dataset_path",
    "seed",
    "deterministic",
    "warmup_steps",
    "gc_freq",
    "gc_debug",
)


def is_torchtitan(data: Any) -> bool:
    """A job config: its [model] table names a flavour (every other table has defaults)."""
    return (
        isinstance(data, dict) and isinstance(data.get("model"), dict) and "flavor" in data["model"]
    )


def import_torchtitan(data: dict[str, Any], source: str) -> Partial:
    p = Partial(source, "torchtitan TOML")
    p.assignments.append((f"{TR}.framework", "pytorch-fsdp2", ""))
    p.assignments.append(
        (f"{TR}.precision", "bf16-mixed", "default: mixed_precision_param bfloat16")
    )
    p.assignments.append((f"{TR}.optimizer", "adamw", "default: optimizer AdamW"))
    par = data.get("parallelism")
    par = par if isinstance(par, dict) else {}
    layout = layout_of(par)
    if "parallelism" not in data:  # torchtitan's defaults: FSDP over every GPU
        parallelism({}, p, layout)
    training = data.get("training")
    training = training if isinstance(training, dict) else {}
    batches(training, p, layout)
    if "seq_len" not in training:
        p.assignments.append((f"{TR}.seq_len", 2048, "default: seq_len 2048"))
    if layout.sharded:
        p.assignments.append(
            (f"{TR}.fsdp2.reduce_dtype", "fp32", "default: mixed_precision_reduce float32")
        )
    checkpointing = data.get("activation_checkpoint")
    _checkpointing(checkpointing if isinstance(checkpointing, dict) else {}, p)
    optimizer = data.get("optimizer")
    _optimizer(optimizer if isinstance(optimizer, dict) else {}, p)
    for section, value in data.items():
        table = value if isinstance(value, dict) else {}
        if section == "model":
            _model(table, p)
        elif section == "training":
            _training(table, p, layout)
        elif section == "parallelism":
            parallelism(table, p, layout)
        elif section in ("activation_checkpoint", "optimizer"):
            pass  # above, also when absent
        elif section == "float8":
            for key, v in flatten(table, "float8."):
                p.ignore(key, v, "float8 details: fp8 training is [model] converters")
        elif section in _IGNORED_SECTIONS:
            for key, v in flatten(table, f"{section}."):
                p.ignore(key, v, _IGNORED_SECTIONS[section])
        else:
            p.unknown(section, value, [*_IGNORED_SECTIONS, "model", "training", "parallelism"])
    return p


def _optimizer(table: dict[str, Any], p: Partial) -> None:
    """[optimizer]: the name, and how the update runs: `implementation` (for-loop, foreach,
    fused), or the older boolean `fused` (torchtitan's build_optimizers then passed
    foreach=not fused); neither given: fused, torchtitan's default since "use Fused AdamW as
    default" (#881, February 2025)."""
    chose = False
    for key, v in table.items():
        if key == "name" and str(v).lower() in ("adamw", "adam"):
            p.map("optimizer.name", v, f"{TR}.optimizer", str(v).lower())
        elif key == "name":
            p.refuse("optimizer.name", v, "an optimizer whose states are not modelled")
        elif key == "implementation" and v in ("for-loop", "foreach", "fused"):
            p.map("optimizer.implementation", v, f"{TR}.optimizer_implementation", v)
            chose = True
        elif key == "fused" and isinstance(v, bool):
            impl = "fused" if v else "foreach"
            p.map("optimizer.fused", v, f"{TR}.optimizer_implementation", impl)
            chose = True
        else:
            p.ignore(f"optimizer.{key}", v, "an optimisation hyper-parameter")
    if not chose:
        p.assignments.append(
            (f"{TR}.optimizer_implementation", "fused", "default: optimizer.implementation fused")
        )


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


def _training(table: dict[str, Any], p: Partial, layout: Layout) -> None:
    for key, value in table.items():
        name = f"training.{key}"
        if key in ("batch_size", "local_batch_size", "global_batch_size"):
            continue  # _batches
        elif key == "seq_len":
            p.map(name, value, f"{TR}.seq_len", value)
        elif key == "mixed_precision_param":
            names = {"bfloat16": "bf16-mixed", "float32": "fp32"}
            if value in names:
                p.map(name, value, f"{TR}.precision", names[value])
            else:
                p.refuse(name, value, "bfloat16 or float32")
        elif key == "mixed_precision_reduce":
            if value != "float32":
                p.refuse(name, value, "torchtitan accepts float32 only")
            elif layout.sharded:
                p.map(name, value, f"{TR}.fsdp2.reduce_dtype", "fp32", "MixedPrecisionPolicy")
            else:
                p.ignore(name, value, "fully_shard's: DDP reduces the fp32 gradients")
        elif key == "enable_cpu_offload":
            if value and layout.sharded:
                why = "CPUOffloadPolicy: parameters and gradients on the CPU"
                p.map(name, value, f"{TR}.offload.params", "cpu", why)
                p.map(
                    name, value, f"{TR}.offload.optimizer", "cpu", "the optimizer step on the CPU"
                )
            elif value:
                p.refuse(name, value, "fully_shard's CPUOffloadPolicy: DDP does not offload")
            else:
                p.ignore(name, value, "off")
        elif key == "compile":  # torch.compile of each block (and the loss): Inductor's kernels
            if not isinstance(value, bool):
                p.refuse(name, value, "expected true or false")
            else:
                p.map(name, value, f"{TR}.kernels", "compiled" if value else "eager")
        elif key == "max_norm":  # clip_grad_norm_'s max norm (default 1.0); <= 0 does not clip
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                p.refuse(name, value, "expected a number (the max norm)")
            else:
                p.map(name, value, f"{TR}.gradient_clipping", value > 0)
        elif key in _TRAINING_IGNORED:
            p.ignore(name, value, "run length, data and numerics")
        else:
            p.unknown(
                name,
                value,
                [
                    "batch_size",
                    "local_batch_size",
                    "seq_len",
                    "max_norm",
                    "compile",
                    "global_batch_size",
                    "mixed_precision_param",
                    "mixed_precision_reduce",
                    "enable_cpu_offload",
                    *_TRAINING_IGNORED,
                ],
            )


def _checkpointing(table: dict[str, Any], p: Partial) -> None:
    """[activation_checkpoint]: mode (default selective) and, for selective, selective_ac_option
    (default "2"): 'op' recomputes chosen ops in every block, a number N checkpoints every Nth
    block whole (models/llama3/parallelize_llama.py apply_ac), so "1" is full."""
    mode = str(table.get("mode", "selective"))
    option = str(table.get("selective_ac_option", "2"))
    target = f"{TR}.activation_checkpointing"
    every = int(option) if mode == "selective" and option.isdigit() else None
    kind = "full" if every == 1 else mode
    why = ""
    if mode not in ("none", "selective", "full"):
        why = "none, selective or full"
    elif every is not None and every > 1:
        why = (
            f"selective_ac_option {option!r}: every {option} blocks checkpointed whole (a "
            "layer-wise recomputation, not modelled)"
        )
    if "mode" not in table:
        if why:
            p.refuse("activation_checkpoint.mode", None, "absent: torchtitan's default, " + why)
        else:
            p.assignments.append((target, kind, "default: activation_checkpoint mode selective"))
    for key, value in table.items():
        name = f"activation_checkpoint.{key}"
        if key == "mode" and why:
            p.refuse(name, value, why)
        elif key == "mode":
            p.map(name, value, target, kind, "selective_ac_option 1" if every == 1 else "")
        elif key == "selective_ac_option" and mode != "selective":
            p.ignore(name, value, f"mode {mode}")
        elif key == "selective_ac_option" and every is not None:
            p.note(name, value, target, "read with mode")
        elif key == "selective_ac_option":
            p.ignore(
                name,
                value,
                "which ops torchtitan saves; clustersim's selective recomputation is "
                "Korthikanti et al.'s (attention's core)",
            )
        else:
            p.ignore(name, value, "a checkpointing detail")
