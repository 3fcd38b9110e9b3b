"""The framework sections of `training` (pydantic, the YAML edge): `training.deepspeed`,
`training.fsdp2`, `training.megatron`; PyTorch FSDP's options stay in `training.zero3` and
PyTorch DDP's in `training.bucket_size` / `gradient_as_bucket_view`.

Knobs keep their framework's names. Element counts are plain numbers as the framework counts
them (DeepSpeed's 5e8 is 500,000,000 elements, not bytes); every field left out takes the
framework's default (simulator/spec/specs.py, each with its source file), so a field here
is None until given. scenario/framework.py checks that a section matches training.framework.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from simulator.scenario.schema_types import Strict
from simulator.spec.specs import DeepSpeedSpec, MegatronSpec

MAX_ELEMENTS = 10**15
_NUMBER = r"^[0-9.]+([eE][-+]?[0-9]+)?$"


def _elements(value: Any) -> int:
    """A count of elements: a whole number (5e8 and "5e8" as YAML reads it are both fine)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(
                "give a number of elements (numel), e.g. 5e8, without a unit"
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("give a number of elements (numel), e.g. 5e8")
    if value != int(value) or value < 0 or value > MAX_ELEMENTS:
        raise ValueError(
            f"{value!r} is not a whole number of elements between 0 and {MAX_ELEMENTS:.0e}"
        )
    return int(value)


def _count(default: int, what: str, minimum: int = 0) -> tuple[BeforeValidator, Any]:
    """The metadata of an element count: Annotated[int | None, *_count(...)]."""

    def check(value: Any) -> int:
        n = _elements(value)
        if n < minimum:
            raise ValueError(f"{what} must be at least {minimum:,}")
        return n

    def schema(js: dict) -> None:  # a number, or the string YAML makes of 5e8
        js.pop("type", None)
        js["anyOf"] = [
            {"type": "number", "minimum": minimum},
            {"type": "string", "pattern": _NUMBER},
            {"type": "null"},
        ]
        js["examples"] = [default]

    return (
        BeforeValidator(lambda v: None if v is None else check(v)),
        Field(description=f"{what} (default {default:.0e})", json_schema_extra=schema),
    )


_DS = DeepSpeedSpec()


class DeepSpeedSection(Strict):
    """DeepSpeed ZeRO (`zero_optimization` keys): sizes in elements, as DeepSpeed counts them.
    The stage is training.strategy (zero1, zero2, zero3)."""

    reduce_bucket_size: Annotated[
        int | None, *_count(_DS.reduce_bucket_size, "elements per gradient reduce bucket", 1)
    ] = None
    allgather_bucket_size: Annotated[
        int | None,
        *_count(
            _DS.allgather_bucket_size,
            "elements per weight all-gather bucket (ZeRO-1/2; "
            "DeepSpeed ignores it when torch has all_gather_into_tensor)",
            1,
        ),
    ] = None
    overlap_comm: bool | None = Field(
        None,
        description="reduce gradients on a side stream during backward "
        "(default: true for ZeRO-3, false for ZeRO-1/2)",
    )
    contiguous_gradients: bool | None = Field(
        None, description="copy gradients into the reduce bucket (default true)"
    )
    reduce_scatter: bool | None = Field(
        None, description="reduce-scatter instead of all-reduce (default true)"
    )
    use_multi_rank_bucket_allreduce: bool | None = Field(
        None,
        description="ZeRO-1/2: all-reduce each bucket and keep the owned slices (default true)",
    )
    stage3_prefetch_bucket_size: Annotated[
        int | None,
        *_count(
            _DS.stage3_prefetch_bucket_size,
            "ZeRO-3: elements prefetched per fetch (the code's 5e7; DeepSpeed's docs say 5e8)",
        ),
    ] = None
    stage3_max_live_parameters: Annotated[
        int | None,
        *_count(
            _DS.stage3_max_live_parameters, "ZeRO-3: gathered elements that bound prefetching", 1
        ),
    ] = None
    stage3_max_reuse_distance: Annotated[
        int | None,
        *_count(
            _DS.stage3_max_reuse_distance,
            "ZeRO-3: a parameter used again within this many elements is not released",
        ),
    ] = None
    stage3_param_persistence_threshold: Annotated[
        int | None,
        *_count(
            _DS.stage3_param_persistence_threshold,
            "ZeRO-3: parameters of at most this many elements are kept whole",
        ),
    ] = None
    sub_group_size: Annotated[
        int | None, *_count(_DS.sub_group_size, "ZeRO-3: elements per optimizer-step tile", 1)
    ] = None


class Fsdp2Section(Strict):
    """PyTorch FSDP2 (`fully_shard`) options."""

    reshard_after_forward: bool | None = Field(
        None,
        description="free each block's gathered parameters "
        "after its forward (default true; the root never)",
    )
    reduce_dtype: Literal["fp32", "bf16", "fp16"] | None = Field(
        None,
        description="MixedPrecisionPolicy reduce_dtype: the gradient reduction's datatype (default: the "
        "gradients', bf16 under bf16-mixed)",
    )
    gradient_sync: Literal["every_micro_batch", "last_micro_batch"] | None = Field(
        None,
        description="last_micro_batch: set_requires_gradient_sync(False) on every micro-batch but "
        "each chunk's last, which accumulate unsharded gradients (in reduce_dtype) reduced once per "
        "step; default every_micro_batch",
    )


_MG = MegatronSpec()


class MegatronSection(Strict):
    """Megatron-Core DDP / distributed optimizer options (DistributedDataParallelConfig names).
    training.strategy zero1 is the distributed optimizer, ddp is without it."""

    overlap_grad_reduce: bool | None = Field(
        None, description="reduce gradient buckets during backward (default false)"
    )
    overlap_param_gather: bool | None = Field(
        None,
        description="distributed optimizer: all-gather the "
        "weights during the next forward (default false)",
    )
    bucket_size: Annotated[
        int | None,
        *_count(
            40_000_000,
            "parameters per gradient bucket (default with overlap_grad_reduce: "
            "max(4e7, 1e6 x dp); without: one bucket)",
            1,
        ),
    ] = None
    grad_reduce_in_fp32: bool | None = Field(
        None,
        description="fp32 gradient buffer and reduction "
        "(default: true for bf16, as Megatron-LM forces)",
    )


FRAMEWORK_SECTIONS: dict[str, tuple[str, type[Strict]]] = {
    "deepspeed": ("deepspeed", DeepSpeedSection),
    "pytorch-fsdp2": ("fsdp2", Fsdp2Section),
    "megatron": ("megatron", MegatronSection),
}


def knob_home(key: str) -> str | None:
    """Where a framework knob belongs ("training.deepspeed"), for a knob given elsewhere."""
    for fw, (field, section) in FRAMEWORK_SECTIONS.items():
        if key in section.model_fields:
            return f"training.{field} (framework {fw})"
    return None
