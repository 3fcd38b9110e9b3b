"""A DeepSpeed `ds_config.json` -> training (framework deepspeed).

Keys and defaults as deepspeed/runtime/config.py and runtime/zero/config.py read them:
train_batch_size = train_micro_batch_size_per_gpu x gradient_accumulation_steps x data-parallel
ranks (any two give the third); zero_optimization.stage 1-3; offload_optimizer / offload_param
{device: cpu | nvme} and the older cpu_offload: true; bucket and prefetch sizes in elements;
fp16 / bf16 {enabled}. The model is not in this file: combine it with a config.json.
"""

from __future__ import annotations

from typing import Any

from simulator.scenario.importers.base import Partial, flatten

TR = "training"
_ZERO_KNOBS = (
    "reduce_bucket_size",
    "allgather_bucket_size",
    "overlap_comm",
    "contiguous_gradients",
    "reduce_scatter",
    "use_multi_rank_bucket_allreduce",
    "stage3_prefetch_bucket_size",
    "stage3_max_live_parameters",
    "stage3_max_reuse_distance",
    "stage3_param_persistence_threshold",
    "sub_group_size",
)
_ZERO_IGNORED = {
    "allgather_partitions": "all-gather vs broadcast of partitions: same bytes",
    "round_robin_gradients": "gradient placement order",
    "elastic_checkpoint": "checkpoint format",
    "stage3_gather_16bit_weights_on_model_save": "checkpoint saving",
    "stage3_gather_fp16_weights_on_model_save": "checkpoint saving",
    "ignore_unused_parameters": "a correctness switch",
    "load_from_fp32_weights": "checkpoint loading",
    "memory_efficient_linear": "a kernel choice with the same memory accounting",
    "zero_hpz_partition_size": "ZeRO++ hierarchical partitioning, not modelled",
    "zero_quantized_weights": "ZeRO++ quantized weights, not modelled",
    "zero_quantized_gradients": "ZeRO++ quantized gradients, not modelled",
}
_TOP_IGNORED = (
    "steps_per_print",
    "wall_clock_breakdown",
    "zero_allow_untested_optimizer",
    "scheduler",
    "tensorboard",
    "wandb",
    "csv_monitor",
    "flops_profiler",
    "comms_logger",
    "prescale_gradients",
    "gradient_predivide_factor",
    "dump_state",
    "activation_checkpointing",
    "memory_breakdown",
    "checkpoint",
    "data_efficiency",
    "communication_data_type",
)
_KNOWN = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "zero_optimization",
    "fp16",
    "bf16",
    "optimizer",
    "gradient_clipping",
    *_TOP_IGNORED,
)
_OPTIMIZERS = {"adam": "adamw", "adamw": "adamw", "fusedadam": "adamw", "sgd": "sgd-momentum"}


def is_deepspeed(data: Any) -> bool:
    return isinstance(data, dict) and bool(
        set(data) & {"zero_optimization", "train_micro_batch_size_per_gpu", "train_batch_size"}
    )


def import_deepspeed(data: dict[str, Any], source: str) -> Partial:
    p = Partial(source, "DeepSpeed config")
    p.assignments.append((f"{TR}.framework", "deepspeed", ""))
    for key, value in data.items():
        if key == "zero_optimization":
            _zero(value if isinstance(value, dict) else {}, p)
        elif key in ("fp16", "bf16"):
            _precision(key, value, p)
        elif key == "optimizer":
            _optimizer(value, p)
        elif key == "gradient_clipping":
            _clipping(value, p)
        elif key in (
            "train_batch_size",
            "train_micro_batch_size_per_gpu",
            "gradient_accumulation_steps",
        ):
            _batch(key, value, p)
        elif key in _TOP_IGNORED:
            for sub, v in flatten({key: value}):
                p.ignore(sub, v, _ignored_why(key))
        else:
            p.unknown(key, value, list(_KNOWN))
    if not any(k in data for k in ("fp16", "bf16")) or not any(
        isinstance(data.get(k), dict) and data[k].get("enabled") for k in ("fp16", "bf16")
    ):
        p.assignments.append((f"{TR}.precision", "fp32", "neither fp16 nor bf16 enabled"))
    return p


def _clipping(value: Any, p: Partial) -> None:
    """gradient_clipping: the max norm; 0 (DeepSpeed's default) does not clip."""
    if value == "auto":
        why = "auto: the HF Trainer fills in its max_grad_norm (default 1.0)"
        p.map("gradient_clipping", value, f"{TR}.gradient_clipping", True, why)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        p.refuse("gradient_clipping", value, "expected a max norm >= 0 (0: no clipping)")
        return
    p.map("gradient_clipping", value, f"{TR}.gradient_clipping", value > 0, "clip at a norm > 0")


def _ignored_why(key: str) -> str:
    if key == "activation_checkpointing":
        return (
            "how DeepSpeed's checkpointing API stores checkpoints; whether layers are "
            "checkpointed is the model code's choice (training.activation_checkpointing)"
        )
    return "logging, scheduling or numerics"


def _batch(key: str, value: Any, p: Partial) -> None:
    if value == "auto":
        p.ignore(key, value, "auto: filled in by the HF Trainer at run time")
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        p.refuse(key, value, "expected a positive integer")
        return
    if key == "train_batch_size":
        p.map(key, value, f"{TR}.global_batch_size", value, "sequences per step")
        p.pending["global_batch"] = value
    elif key == "train_micro_batch_size_per_gpu":
        p.map(key, value, f"{TR}.micro_batch_size", value)
    else:
        p.map(key, value, f"{TR}.grad_accum_steps", value)


def _precision(key: str, value: Any, p: Partial) -> None:
    enabled = isinstance(value, dict) and value.get("enabled") not in (False, None)
    section = value if isinstance(value, dict) else {}
    if "enabled" in section:
        if enabled:
            precision = "fp16-mixed" if key == "fp16" else "bf16-mixed"
            p.map(f"{key}.enabled", section["enabled"], f"{TR}.precision", precision)
        else:
            p.ignore(f"{key}.enabled", section["enabled"], "off")
    for sub, v in section.items():
        if sub != "enabled":
            p.ignore(f"{key}.{sub}", v, "loss scaling: numerics")


def _optimizer(value: Any, p: Partial) -> None:
    section = value if isinstance(value, dict) else {}
    kind = str(section.get("type", ""))
    if kind.lower() in _OPTIMIZERS:
        why = (
            "DeepSpeed's Adam is AdamW (adam_w_mode true); the same states"
            if "adam" in kind.lower()
            else ""
        )
        p.map("optimizer.type", kind, f"{TR}.optimizer", _OPTIMIZERS[kind.lower()], why)
    elif kind:
        p.refuse("optimizer.type", kind, "an optimizer whose states are not modelled")
    for sub, v in flatten(section.get("params", {}) or {}, "optimizer.params."):
        p.ignore(sub, v, "optimisation hyper-parameters")


def _zero(z: dict[str, Any], p: Partial) -> None:
    stage = z.get("stage", 0)
    if stage in (1, 2, 3):
        p.map("zero_optimization.stage", stage, f"{TR}.strategy", f"zero{stage}")
    else:
        p.refuse(
            "zero_optimization.stage",
            stage,
            "stage 0 is plain data parallelism: framework deepspeed models ZeRO stages 1-3",
        )
    for key, value in z.items():
        name = f"zero_optimization.{key}"
        if key == "stage":
            continue
        if key in ("offload_optimizer", "offload_param"):
            _offload(name, value, stage, p)
        elif key == "cpu_offload":
            if value:
                p.map(name, value, f"{TR}.offload.optimizer", "cpu", "ZeRO-Offload's older key")
            else:
                p.ignore(name, value, "off")
        elif key in _ZERO_KNOBS:
            _knob(name, key, value, stage, p)
        elif key in _ZERO_IGNORED:
            p.ignore(name, value, _ZERO_IGNORED[key])
        else:
            p.unknown(
                name, value, [*_ZERO_KNOBS, *_ZERO_IGNORED, "offload_optimizer", "offload_param"]
            )


def _knob(name: str, key: str, value: Any, stage: Any, p: Partial) -> None:
    if value == "auto":
        p.ignore(name, value, "auto: filled in by the HF Trainer at run time")
    elif key.startswith("stage3_") or key == "sub_group_size":
        if stage == 3:
            p.map(name, value, f"{TR}.deepspeed.{key}", _count(value))
        else:
            p.ignore(name, value, f"a ZeRO-3 knob: stage {stage} does not read it")
    elif key in ("allgather_bucket_size", "use_multi_rank_bucket_allreduce") and stage == 3:
        p.ignore(name, value, "a ZeRO-1/2 knob: stage 3 does not read it")
    else:
        p.map(name, value, f"{TR}.deepspeed.{key}", _count(value))


def _count(value: Any) -> Any:
    """An element count as DeepSpeed reads it (int(5e8)); booleans as they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _offload(name: str, value: Any, stage: Any, p: Partial) -> None:
    section = value if isinstance(value, dict) else {}
    device = str(section.get("device", "none")).lower()
    target = f"{TR}.offload.{'optimizer' if name.endswith('optimizer') else 'params'}"
    if device == "cpu":
        p.map(f"{name}.device", section.get("device"), target, "cpu")
    elif device == "nvme":
        p.refuse(
            f"{name}.device", section.get("device"), "NVMe offload (ZeRO-Infinity) is not modelled"
        )
    else:
        p.ignore(f"{name}.device", section.get("device"), "no offload")
    for sub, v in section.items():
        if sub != "device":
            p.ignore(f"{name}.{sub}", v, "pinned memory, buffers and NVMe paths: not modelled")
