"""The scenario schema's field types: documented maxima, quantities with units (a bare number is
refused), bounded counts and the registry choices, shared by the sections in schema.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from simulator.core.units import (
    UnitError,
    parse_bandwidth,
    parse_bytes,
    parse_duration,
    parse_flops_rate,
)
from simulator.execution.frameworks import FRAMEWORKS
from simulator.execution.strategies import ALIASES, STRATEGIES
from simulator.model.architecture import FFNS, KINDS, NORMS, POSITIONS
from simulator.model.precision import CHECKPOINTING, DTYPES, OPTIMIZERS, PRECISIONS
from simulator.spec.specs import PIPELINE_SCHEDULES


class Strict(BaseModel):
    """A scenario section: unknown keys are errors, and the parsed section is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


from simulator.system.comm.algorithms import ALGORITHMS
from simulator.system.hardware import ARCHS
from simulator.system.hardware.attention_table import ATTENTION_TABLES
from simulator.system.hardware.gemm_table import GEMM_TABLES
from simulator.system.topology.loader import MAX_GPUS

# Documented maxima (clustersim refuses larger inputs at once rather than run for hours):
MAX_PARAMS = 1e15  # a quadrillion parameters
MAX_LAYERS = 10_000
MAX_WIDTH = 2**20  # hidden / FFN sizes
MAX_VOCAB = 2**24
MAX_SEQ_LEN = 2**22  # 4M tokens per sequence
MAX_MICRO_BATCH = 2**16
MAX_ACCUM = 4096  # micro-batches per step simulated one by one
MAX_STRAGGLERS = 4096
MIN_BUCKET_BYTES = (
    2**20
)  # a DDP/ZeRO bucket below 1 MiB is a unit mistake (bucket_cap_mb=25 is 25 MiB)
MAX_BUCKET_BYTES = 2**36


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _unit(parser, example: str, minimum: float | None = None, maximum: float | None = None):
    """A BeforeValidator: a unit string -> the internal unit; bare numbers are refused."""

    def check(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"give a unit, e.g. {example!r} (a bare number is ambiguous)")
        try:
            parsed = parser(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if minimum is not None and parsed < minimum:
            raise ValueError(f"{value!r} is below the minimum {minimum:g}")
        if maximum is not None and parsed > maximum:
            raise ValueError(f"{value!r} is above the maximum {maximum:g}")
        return parsed

    return BeforeValidator(check)


def _unit_schema(example: str, pattern: str) -> Any:
    return Field(json_schema_extra={"type": "string", "pattern": pattern, "examples": [example]})


_B = r"^[0-9.]+(e[-+]?[0-9]+)?\s*(Ki|Mi|Gi|Ti|Pi|[kKMGTPE])?(B|b|bit|bits|byte|bytes)$"
_BW = r"^[0-9.]+(e[-+]?[0-9]+)?\s*(Ki|Mi|Gi|Ti|Pi|[kKMGTPE])?(B/s|Bps|b/s|bps|bit/s|bits/s)$"
Bytes = Annotated[int, _unit(parse_bytes, "80 GiB"), _unit_schema("80 GiB", _B)]
PositiveBytes = Annotated[int, _unit(parse_bytes, "80 GiB", minimum=1), _unit_schema("80 GiB", _B)]
BucketBytes = Annotated[
    int,
    _unit(parse_bytes, "25 MiB", MIN_BUCKET_BYTES, MAX_BUCKET_BYTES),
    _unit_schema("25 MiB", _B),
]
Bandwidth = Annotated[float, _unit(parse_bandwidth, "400 Gb/s"), _unit_schema("400 Gb/s", _BW)]
FlopRate = Annotated[
    float,
    _unit(parse_flops_rate, "312 TFLOP/s"),
    _unit_schema(
        "312 TFLOP/s", r"^[0-9.]+(e[-+]?[0-9]+)?\s*[kKMGTPE]?(FLOP/s|FLOPS|flop/s|flops)$"
    ),
]
Duration = Annotated[
    float,
    _unit(parse_duration, "4 us"),
    _unit_schema("4 us", r"^[0-9.]+(e[-+]?[0-9]+)?\s*(ns|us|µs|ms|s|sec|min|h|hr|d|day|days)$"),
]
Count = Annotated[int, Field(ge=1, strict=True)]


# Whole numbers from 1 to a documented maximum.
Layers: TypeAlias = Annotated[int, Field(ge=1, le=MAX_LAYERS, strict=True)]
Width: TypeAlias = Annotated[int, Field(ge=1, le=MAX_WIDTH, strict=True)]
Vocab: TypeAlias = Annotated[int, Field(ge=1, le=MAX_VOCAB, strict=True)]
SeqLen: TypeAlias = Annotated[int, Field(ge=1, le=MAX_SEQ_LEN, strict=True)]
MicroBatch: TypeAlias = Annotated[int, Field(ge=1, le=MAX_MICRO_BATCH, strict=True)]
Accum: TypeAlias = Annotated[int, Field(ge=1, le=MAX_ACCUM, strict=True)]
GlobalBatch: TypeAlias = Annotated[int, Field(ge=1, le=MAX_GPUS * MAX_ACCUM, strict=True)]
Gpus: TypeAlias = Annotated[int, Field(ge=1, le=MAX_GPUS, strict=True)]
AttentionBuckets: TypeAlias = Annotated[int, Field(ge=1, le=2**16, strict=True)]
SmCount: TypeAlias = Annotated[int, Field(ge=1, le=4096, strict=True)]


def _choice(names: Iterable[str]) -> Any:
    """A case-insensitive choice among registry names."""
    return Annotated[Literal[tuple(names)], BeforeValidator(_lower)]


# Fixed choices: a Literal that mypy checks too.
OffloadTarget: TypeAlias = Annotated[Literal["none", "cpu"], BeforeValidator(_lower)]
MeshDim: TypeAlias = Annotated[Literal["tp", "cp", "dp", "pp"], BeforeValidator(_lower)]
CpCommName: TypeAlias = Annotated[
    Literal["ring", "all-gather", "all-to-all"], BeforeValidator(_lower)
]  # specs.CP_COMMS
AttentionKindName: TypeAlias = Annotated[Literal["mha", "gqa", "mla"], BeforeValidator(_lower)]
DispatcherName: TypeAlias = Annotated[
    Literal["alltoall", "allgather", "deepep"], BeforeValidator(_lower)
]  # specs.MOE_DISPATCHERS
MoeOverlapName: TypeAlias = Annotated[
    Literal["none", "shared-expert", "1f1b"], BeforeValidator(_lower)
]  # specs.MOE_OVERLAPS

# Algorithms that implement an operation a training step issues.
_STEP_ALGORITHMS = (
    "auto",
    *(
        a.name
        for a in ALGORITHMS.values()
        if {"all_reduce", "all_gather", "reduce_scatter"} & set(a.ops)
    ),
)

# Choices from a registry: a Literal of its names at run time, a str to mypy (which cannot
# build a Literal from a registry).
if TYPE_CHECKING:
    KindName: TypeAlias = str
    FfnName: TypeAlias = str
    PositionName: TypeAlias = str
    NormName: TypeAlias = str
    ScheduleName: TypeAlias = str
    PrecisionName: TypeAlias = str
    OptimizerName: TypeAlias = str
    StrategyName: TypeAlias = str
    FrameworkName: TypeAlias = str
    CheckpointingName: TypeAlias = str
    StepAlgorithmName: TypeAlias = str
    DtypeName: TypeAlias = str
    GemmTableName: TypeAlias = str
    AttentionTableName: TypeAlias = str
    ArchName: TypeAlias = str
else:
    KindName = _choice(KINDS)
    FfnName = _choice(FFNS)
    PositionName = _choice(POSITIONS)
    NormName = _choice(NORMS)
    ScheduleName = _choice(PIPELINE_SCHEDULES)
    PrecisionName = _choice(PRECISIONS)
    OptimizerName = _choice(OPTIMIZERS)
    StrategyName = _choice((*STRATEGIES, *ALIASES))
    FrameworkName = _choice(FRAMEWORKS)
    CheckpointingName = _choice(CHECKPOINTING)
    StepAlgorithmName = _choice(_STEP_ALGORITHMS)
    DtypeName = _choice(DTYPES)
    GemmTableName = _choice(GEMM_TABLES)
    AttentionTableName = _choice(tuple(ATTENTION_TABLES))
    ArchName = _choice(ARCHS)

Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
