"""Training options resolved against the framework at load: PyTorch FSDP1's SHARD_GRAD_OP
strategy and the optimizer update's implementation (model/optimizer_kernels.py), each with
the problems (exit 2) that name what to write instead."""

from __future__ import annotations

from simulator.core.errors import Problem
from simulator.execution.strategies.fsdp import SHARD_GRAD_OP
from simulator.model.optimizer_kernels import UNFUSED_OPTIMIZERS, default_optimizer_implementation
from simulator.scenario.schema import TrainingSection


def shard_grad_op(t: TrainingSection, problems: list[Problem]) -> bool:
    """PyTorch FSDP's SHARD_GRAD_OP: ZeRO-3's per-block gathers with the parameters kept
    unsharded from a block's forward to its backward (FSDP1 ShardingStrategy.SHARD_GRAD_OP),
    so reshard_after_forward is false; other frameworks name it otherwise or lack it."""
    instead = {
        "pytorch-fsdp2": "use zero3 with training.fsdp2.reshard_after_forward: false (FSDP2's form of it)",
        "deepspeed": "use zero2 (DeepSpeed's gradient and optimizer sharding)",
    }
    if t.framework in instead:
        problems.append(
            Problem(
                "training.strategy",
                f"{SHARD_GRAD_OP} is PyTorch FSDP1's sharding strategy, "
                f"not framework {t.framework}'s",
                instead[t.framework],
            )
        )
    if t.zero3.model_fields_set & {"reshard_after_forward"} and t.zero3.reshard_after_forward:
        problems.append(
            Problem(
                "training.zero3.reshard_after_forward",
                f"{SHARD_GRAD_OP} keeps parameters unsharded between forward and backward",
                "remove it, or use strategy zero3",
            )
        )
    return False


def optimizer_implementation(t: TrainingSection, framework: str, problems: list[Problem]) -> str:
    """training.optimizer_implementation, or the framework's default for the optimizer; an
    unfused implementation of an optimizer without a per-operation table, or of ZeRO-Offload's
    CPU optimizer, is refused."""
    chosen = t.optimizer_implementation
    if chosen is None:
        return default_optimizer_implementation(framework, t.optimizer)
    if chosen != "fused" and t.optimizer not in UNFUSED_OPTIMIZERS:
        problems.append(
            Problem(
                "training.optimizer_implementation",
                f"{chosen} is costed for {' and '.join(UNFUSED_OPTIMIZERS)} only, not "
                f"{t.optimizer}",
                "remove it (one fused pass), or use optimizer adamw",
            )
        )
    elif chosen != "fused" and t.offload.optimizer == "cpu":
        problems.append(
            Problem(
                "training.optimizer_implementation",
                f"{chosen}: with offload.optimizer cpu the update is DeepSpeed's CPU Adam",
                "remove it",
            )
        )
    return chosen
