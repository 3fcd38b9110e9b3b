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

from dataclasses import dataclass
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
    "steps",
    "dataset",
    "dataset_path",
    "seed",
    "deterministic",
    "warmup_steps",
    "gc_freq",
    "gc_debug",
)
# fully_shard's strategies: the keys that set training.fsdp2 only apply to them.
_SHARDED = ("zero3", "hsdp")


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
    layout = _Layout(
        _strategy(par),
        _int(par.get("pipeline_parallel_degree", 1)),
        _int(par.get("pipeline_parallel_microbatch_size", 1)),
        _int(par.get("tensor_parallel_degree", 1)),
    )
    if "parallelism" not in data:  # torchtitan's defaults: FSDP over every GPU
        _parallelism({}, p, layout)
    training = data.get("training")
    training = training if isinstance(training, dict) else {}
    _batches(training, p, layout)
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
            _parallelism(table, p, layout)
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


@dataclass(frozen=True)
class _Layout:
    """What the [training] and [parallelism] keys are read with."""

    strategy: str
    pp: int
    pp_microbatch: int
    tp: int

    @property
    def sharded(self) -> bool:
        return self.strategy in _SHARDED


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _strategy(par: dict[str, Any]) -> str:
    """torchtitan's data parallelism (parallel_dims.py): shard 1 is DDP (replicate) or none,
    replicate 1 FSDP, both above 1 HSDP."""
    replicate = par.get("data_parallel_replicate_degree", 1)
    shard = par.get("data_parallel_shard_degree", -1)
    if shard == 1 or replicate == 1:
        return "ddp" if shard == 1 else "zero3"
    return "hsdp"


def _batches(table: dict[str, Any], p: Partial, layout: _Layout) -> None:
    """batch_size (local_batch_size in newer versions): sequences per data-parallel rank per
    step, before any accumulation to global_batch_size (-1: no accumulation). Under pipeline
    parallelism they go through the pipeline as batch_size / pipeline_parallel_microbatch_size
    micro-batches."""
    key = next((k for k in ("local_batch_size", "batch_size") if k in table), None)
    name = f"training.{key}" if key else "default: batch_size 8"
    local = table[key] if key else 8
    total = table.get("global_batch_size", -1)
    if "global_batch_size" in table:
        if total in (-1, None):
            p.ignore("training.global_batch_size", total, "-1: no gradient accumulation")
        else:
            p.map(
                "training.global_batch_size",
                total,
                f"{TR}.global_batch_size",
                total,
                "sequences over all ranks",
            )
    accumulates = total not in (-1, None)
    if layout.pp == 1:
        if key:
            p.map(name, local, f"{TR}.micro_batch_size", local, "per data-parallel rank")
        else:
            p.assignments.append((f"{TR}.micro_batch_size", local, name))
        return
    if isinstance(local, bool) or not isinstance(local, int) or local % layout.pp_microbatch:
        p.refuse(
            name,
            local,
            "torchtitan needs it divisible by pipeline_parallel_microbatch_size "
            f"{layout.pp_microbatch}",
        )
        return
    chunks = local // layout.pp_microbatch
    why = (
        f"per data-parallel rank: {chunks} pipeline micro-batches of "
        f"pipeline_parallel_microbatch_size {layout.pp_microbatch}"
    )
    p.assignments.append(
        (
            f"{TR}.micro_batch_size",
            layout.pp_microbatch,
            "parallelism.pipeline_parallel_microbatch_size",
        )
    )
    if accumulates:  # global_batch_size / (pipeline_parallel_microbatch_size x dp) micro-batches
        p.note(name, local, f"{TR}.global_batch_size", why + ", accumulated to global_batch_size")
    elif key:
        p.map(name, local, f"{TR}.grad_accum_steps", chunks, why)
    else:
        p.assignments.append((f"{TR}.grad_accum_steps", chunks, name))


def _training(table: dict[str, Any], p: Partial, layout: _Layout) -> None:
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


def _parallelism(table: dict[str, Any], p: Partial, layout: _Layout) -> None:
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
            flags = {"always": True, "never": False}
            if value not in (*flags, "default"):
                p.refuse(name, value, "default, always or never")
            elif not layout.sharded:
                p.ignore(name, value, "fully_shard's: not used without sharding")
            elif value in flags:
                p.map(name, value, f"{TR}.fsdp2.reshard_after_forward", flags[value])
            elif layout.pp > 1:
                target = f"{TR}.fsdp2.reshard_after_forward"
                p.map(name, value, target, False, "default under pipeline parallelism: never")
            else:
                p.ignore(name, value, "default: reshard, except the root")
        elif key == "disable_loss_parallel":
            if value and layout.tp > 1:
                p.refuse(
                    name,
                    value,
                    "the logits gathered whole on every tensor-parallel rank are not modelled "
                    "(clustersim's output layer and loss are vocabulary-parallel)",
                )
            else:
                p.ignore(name, value, "the loss stays vocabulary-parallel" if not value else "tp 1")
        elif key == "pipeline_parallel_microbatch_size":
            if layout.pp > 1:
                p.note(name, value, f"{TR}.micro_batch_size", "one pipeline micro-batch")
            else:
                p.ignore(name, value, "no pipeline parallelism")
        elif key in ("enable_async_tensor_parallel", "enable_compiled_autograd"):
            p.ignore(name, value, "a kernel switch with the same collectives")
        else:
            p.unknown(
                name,
                value,
                [
                    *degrees,
                    "data_parallel_replicate_degree",
                    "data_parallel_shard_degree",
                    "fsdp_reshard_after_forward",
                    "pipeline_parallel_schedule",
                    "pipeline_parallel_microbatch_size",
                    "disable_loss_parallel",
                    "enable_async_tensor_parallel",
                    "enable_compiled_autograd",
                ],
            )
    if layout.sharded and layout.pp > 1 and "fsdp_reshard_after_forward" not in table:
        p.assignments.append(
            (f"{TR}.fsdp2.reshard_after_forward", False, "default: not under pipeline parallelism")
        )
    degrees_key = "parallelism.data_parallel_replicate_degree x data_parallel_shard_degree"
    p.assignments.append((f"{TR}.strategy", layout.strategy, degrees_key))
    if layout.strategy == "hsdp":
        if shard != -1:
            p.assignments.append(
                (f"{TR}.shard_group_size", shard, "parallelism.data_parallel_shard_degree")
            )
        else:
            p.pending["hsdp_replicate"] = replicate
    p.pending["dp_check"] = (replicate, shard, p.source)


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
