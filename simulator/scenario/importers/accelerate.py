"""An accelerate config YAML (`accelerate config` / examples/config_yaml_templates) -> training.

distributed_type FSDP: PyTorch FSDP (fsdp_version 2: FSDP2) with its plugin options
(accelerate/utils/dataclasses.py FullyShardedDataParallelPlugin); MULTI_GPU: DDP; DEEPSPEED:
its deepspeed_config (zero_stage, offload devices, gradient_accumulation_steps). num_processes
is the GPU count.
"""

from __future__ import annotations

from typing import Any

from simulator.scenario.importers.base import Partial, flatten

TR = "training"
# accelerate accepts the names and their FSDP ShardingStrategy numbers (1-based).
_SHARDING = {
    "FULL_SHARD": "zero3",
    "1": "zero3",
    "SHARD_GRAD_OP": "fsdp-shard-grad-op",
    "2": "fsdp-shard-grad-op",
    "NO_SHARD": "ddp",
    "3": "ddp",
    "HYBRID_SHARD": "hsdp",
    "4": "hsdp",
}
_PRECISION = {"no": "fp32", "fp16": "fp16-mixed", "bf16": "bf16-mixed", "fp8": "fp8-mixed"}
_TOP_IGNORED = {
    "compute_environment": "where it runs",
    "machine_rank": "this machine's rank",
    "main_process_ip": "rendezvous",
    "main_process_port": "rendezvous",
    "main_training_function": "the script's entry point",
    "rdzv_backend": "rendezvous",
    "same_network": "rendezvous",
    "tpu_env": "TPUs",
    "tpu_use_cluster": "TPUs",
    "tpu_use_sudo": "TPUs",
    "use_cpu": "CPU training",
    "downcast_bf16": "TPUs",
    "debug": "debugging",
    "gpu_ids": "which GPUs",
    "enable_cpu_affinity": "CPU pinning",
    "num_machines": "read with num_processes",
}
_FSDP_IGNORED = {
    "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP is what clustersim assumes: one unit per block",
    "fsdp_cpu_ram_efficient_loading": "checkpoint loading",
    "fsdp_state_dict_type": "checkpoint format",
    "fsdp_sync_module_states": "initialisation",
    "fsdp_use_orig_params": "parameter views: the same bytes",
    "fsdp_forward_prefetch": "only matters when the host cannot run ahead of the GPU",
    "fsdp_transformer_layer_cls_to_wrap": "the block class: one unit per block",
    "fsdp_min_num_params": "SIZE_BASED_WRAP's threshold",
    "fsdp_version": "read with the sharding options",
}


def is_accelerate(data: Any) -> bool:
    return isinstance(data, dict) and "distributed_type" in data


def import_accelerate(data: dict[str, Any], source: str) -> Partial:
    p = Partial(source, "accelerate config")
    kind = str(data.get("distributed_type", "NO")).upper()
    fsdp2 = str((data.get("fsdp_config") or {}).get("fsdp_version", 1)) == "2"
    for key, value in data.items():
        if key == "distributed_type":
            _distributed(kind, fsdp2, value, p)
        elif key == "mixed_precision":
            if str(value) in _PRECISION:
                p.map(key, value, f"{TR}.precision", _PRECISION[str(value)])
            else:
                p.refuse(key, value, "no, fp16, bf16 or fp8")
        elif key == "num_processes":
            p.map(key, value, "cluster.num_gpus", value, "GPUs in all")
        elif key == "fsdp_config" and kind == "FSDP":
            _fsdp(value or {}, fsdp2, p)
        elif key == "deepspeed_config" and kind == "DEEPSPEED":
            _deepspeed(value or {}, p)
        elif key in ("fsdp_config", "deepspeed_config", "megatron_lm_config"):
            for sub, v in flatten({key: value}):
                p.ignore(sub, v, f"distributed_type is {kind}")
        elif key == "dynamo_config":
            _dynamo(value or {}, p)
        elif key in _TOP_IGNORED:
            p.ignore(key, value, _TOP_IGNORED[key])
        else:
            p.unknown(
                key, value, [*_TOP_IGNORED, "distributed_type", "mixed_precision", "dynamo_config"]
            )
    return p


def _dynamo(config: dict[str, Any], p: Partial) -> None:
    """torch.compile through accelerate: only Inductor generates fused kernels (training.kernels
    compiled); another backend, or NO, leaves the modules running eagerly."""
    for name, value in flatten({"dynamo_config": config}):
        if name != "dynamo_config.dynamo_backend":
            p.ignore(name, value, "torch.compile's options")
        elif str(value).upper() == "INDUCTOR":
            p.map(name, value, f"{TR}.kernels", "compiled", "Inductor fuses pointwise chains")
        else:
            p.ignore(name, value, "no Inductor: the modules run eagerly (training.kernels eager)")


def _distributed(kind: str, fsdp2: bool, value: Any, p: Partial) -> None:
    if kind == "FSDP":
        framework = "pytorch-fsdp2" if fsdp2 else "pytorch-fsdp"
        p.map("distributed_type", value, f"{TR}.framework", framework)
    elif kind == "MULTI_GPU":
        p.map("distributed_type", value, f"{TR}.strategy", "ddp", "PyTorch DDP")
        p.assignments.append((f"{TR}.framework", "pytorch-fsdp", ""))
    elif kind == "DEEPSPEED":
        p.map("distributed_type", value, f"{TR}.framework", "deepspeed")
    elif kind == "NO":
        p.map("distributed_type", value, f"{TR}.strategy", "ddp", "one process")
    else:
        p.refuse("distributed_type", value, "FSDP, MULTI_GPU, DEEPSPEED or NO")


def _fsdp(config: dict[str, Any], fsdp2: bool, p: Partial) -> None:
    strategy = "zero3"
    for key, value in config.items():
        name = f"fsdp_config.{key}"
        if key in ("fsdp_sharding_strategy", "fsdp_reshard_after_forward") and not fsdp2:
            found = _SHARDING.get(str(value).upper())
            if found:
                strategy = found
                p.map(name, value, f"{TR}.strategy", found)
            else:
                p.refuse(
                    name, value, f"one of {', '.join(k for k in _SHARDING if not k.isdigit())}"
                )
        elif key == "fsdp_reshard_after_forward":
            p.map(name, value, f"{TR}.fsdp2.reshard_after_forward", bool(value))
        elif key == "fsdp_offload_params":
            where = "cpu" if value else "none"
            p.map(
                name, value, f"{TR}.offload.params", where, "CPUOffload: parameters and gradients"
            )
            p.map(
                name, value, f"{TR}.offload.optimizer", where, "the optimizer step runs on the CPU"
            )
        elif key == "fsdp_backward_prefetch" and not fsdp2:
            if value in ("BACKWARD_PRE", "NO_PREFETCH"):
                p.map(name, value, f"{TR}.zero3.backward_prefetch", value == "BACKWARD_PRE")
            else:
                p.refuse(name, value, "BACKWARD_POST is not modelled (BACKWARD_PRE or NO_PREFETCH)")
        elif key == "fsdp_activation_checkpointing":
            mode = "full" if value else "none"
            p.map(name, value, f"{TR}.activation_checkpointing", mode, "every wrapped block")
        elif key in _FSDP_IGNORED:
            if key == "fsdp_auto_wrap_policy" and value not in ("TRANSFORMER_BASED_WRAP", None):
                p.refuse(name, value, "only one FSDP unit per transformer block is modelled")
            else:
                p.ignore(name, value, _FSDP_IGNORED[key])
        else:
            p.unknown(
                name, value, [*_FSDP_IGNORED, "fsdp_sharding_strategy", "fsdp_offload_params"]
            )
    if "fsdp_sharding_strategy" not in config and not fsdp2:
        p.assignments.append((f"{TR}.strategy", strategy, "default: FULL_SHARD"))
    if fsdp2:
        p.assignments.append((f"{TR}.strategy", "zero3", "fully_shard"))
    if strategy == "hsdp":
        p.pending["hsdp_per_host"] = True


def _deepspeed(config: dict[str, Any], p: Partial) -> None:
    for key, value in config.items():
        name = f"deepspeed_config.{key}"
        if key == "zero_stage" and value in (1, 2, 3):
            p.map(name, value, f"{TR}.strategy", f"zero{value}")
        elif key == "zero_stage":
            p.refuse(name, value, "framework deepspeed models ZeRO stages 1-3")
        elif key in ("offload_optimizer_device", "offload_param_device"):
            target = "optimizer" if "optimizer" in key else "params"
            if value in ("cpu", "none"):
                p.map(name, value, f"{TR}.offload.{target}", value)
            else:
                p.refuse(name, value, "NVMe offload is not modelled")
        elif key == "gradient_accumulation_steps":
            p.map(name, value, f"{TR}.grad_accum_steps", value)
        elif key == "deepspeed_config_file":
            p.refuse(name, value, "import that ds_config.json file itself")
        else:
            p.ignore(name, value, "not modelled")
