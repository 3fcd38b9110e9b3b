"""Framework profiles: how PyTorch FSDP, FSDP2, DeepSpeed and Megatron-Core schedule the memory
and communication of a data-parallel strategy.

A profile maps each strategy it supports (training.strategy) to a `Strategy` object that
implements it the way that framework does, with the framework's documented defaults
(simulator/spec/specs.py); the strategies a framework does not offer have a hint instead. The
default profile, pytorch-fsdp, is the strategies of execution/strategies as they are: PyTorch
DDP and FSDP (FULL_SHARD, HYBRID_SHARD), and for zero1 / zero2 the ZeRO paper's bucketed
reduce-scatter and weight all-gather.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.core.errors import Problem
from simulator.execution.frameworks.deepspeed import DeepSpeedZero1, DeepSpeedZero2
from simulator.execution.frameworks.deepspeed_zero3 import DeepSpeedZero3
from simulator.execution.frameworks.fsdp2 import Fsdp2HSDP, Fsdp2Zero3
from simulator.execution.frameworks.megatron import MegatronDDP, MegatronDistributedOptimizer
from simulator.execution.strategies import STRATEGIES
from simulator.execution.strategies.base import Strategy
from simulator.spec.specs import TrainingSpec


@dataclass(frozen=True)
class Framework:
    name: str
    description: str
    strategies: dict[str, Strategy]
    unsupported: dict[str, str] = field(default_factory=dict)  # strategy -> what to use instead


_ALL = (
    Framework(
        "pytorch-fsdp",
        "PyTorch DDP and FSDP (FlatParameter per wrapped block, limit_all_gathers, "
        "BACKWARD_PRE); zero1/zero2 as ZeRO's bucketed reduce-scatter",
        dict(STRATEGIES),
    ),
    Framework(
        "pytorch-fsdp2",
        "PyTorch FSDP2 fully_shard: per-parameter sharding padded to the world size, "
        "all-gather copy-in/copy-out, no rate limiter",
        {"ddp": STRATEGIES["ddp"], "zero3": Fsdp2Zero3(), "hsdp": Fsdp2HSDP()},
        {
            "zero1": "FSDP2 has no optimizer-only sharding; use zero3, or framework deepspeed / megatron "
            "for ZeRO-1",
            "zero2": "FSDP2's SHARD_GRAD_OP is zero3 with training.fsdp2.reshard_after_forward: false",
        },
    ),
    Framework(
        "deepspeed",
        "DeepSpeed ZeRO: stage 1/2 bucketed all-reduce (reduce_bucket_size), stage 3 "
        "per-module fetch with prefetch, live-parameter bound and persistent small parameters",
        {"zero1": DeepSpeedZero1(), "zero2": DeepSpeedZero2(), "zero3": DeepSpeedZero3()},
        {
            "ddp": "DeepSpeed without ZeRO (stage 0) is not modelled; use zero1, or framework pytorch-fsdp "
            "for DDP",
            "hsdp": "DeepSpeed's hierarchical sharding (MiCS, ZeRO++ hpZ) is not modelled; use zero3, or "
            "framework pytorch-fsdp / pytorch-fsdp2 for HSDP",
        },
    ),
    Framework(
        "megatron",
        "Megatron-Core DDP and distributed optimizer: fp32 gradient buffer reduced in "
        "buckets once per step, weights all-gathered after the step",
        {"ddp": MegatronDDP(), "zero1": MegatronDistributedOptimizer()},
        {
            "zero2": "Megatron's distributed optimizer shards the optimizer states only (ZeRO-1): use zero1",
            "zero3": "Megatron-Core's distributed optimizer is ZeRO-1; use zero1, or framework "
            "pytorch-fsdp / deepspeed for ZeRO-3",
            "hsdp": "use zero1 (the distributed optimizer), or framework pytorch-fsdp for HSDP",
        },
    ),
)

FRAMEWORKS: dict[str, Framework] = {f.name: f for f in _ALL}


def strategy_for(t: TrainingSpec) -> Strategy:
    """The strategy of a validated training spec, as its framework implements it."""
    return FRAMEWORKS[t.framework.name].strategies[t.strategy]


def framework_problems(t: TrainingSpec) -> list[Problem]:
    """Whether the framework offers the strategy."""
    fw = FRAMEWORKS[t.framework.name]
    if t.strategy in fw.strategies:
        return []
    return [
        Problem(
            "training.strategy",
            f"framework {fw.name} does not support strategy {t.strategy}",
            fw.unsupported.get(t.strategy, f"use one of {', '.join(fw.strategies)}"),
        )
    ]
