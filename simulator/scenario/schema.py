"""The scenario file format as pydantic models: validation at the YAML edge and `clustersim schema`.

These models only check shape and units; `scenario.py` resolves names (presets, GPUs,
topologies) into frozen specs. Quantities with units are strings ("80 GiB", "25 MB").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simulator.system.hardware import DEFAULT_ALLOCATOR_RESERVE_FRACTION
from simulator.core.units import UnitError, parse_bandwidth, parse_bytes, parse_flops_rate

STRATEGY_ALIASES = {"fsdp": "zero3", "fsdp-full-shard": "zero3", "fsdp-shard-grad-op": "zero2",
                    "fsdp-hybrid-shard": "hsdp", "zero0": "ddp"}
STRATEGIES = ("ddp", "zero1", "zero2", "zero3", "hsdp")
PRECISIONS = ("fp32", "fp16-mixed", "bf16-mixed", "bf16", "fp8-mixed")
OPTIMIZERS = ("adam", "adamw", "sgd", "sgd-momentum", "adam-8bit", "adafactor")
CHECKPOINTING = ("none", "full", "selective")


def _unit(parser, what: str):
    """A pydantic BeforeValidator that turns a unit string into the internal unit."""

    def check(value):
        try:
            return parser(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None

    check.__name__ = f"parse_{what}"
    return BeforeValidator(check)


Bytes = Annotated[int, _unit(parse_bytes, "bytes"), Field(json_schema_extra={"examples": ["80 GiB", "25 MB"]})]
Bandwidth = Annotated[float, _unit(parse_bandwidth, "bandwidth"),
                      Field(json_schema_extra={"examples": ["400 Gb/s", "450 GB/s"]})]
FlopRate = Annotated[float, _unit(parse_flops_rate, "flops"), Field(json_schema_extra={"examples": ["312 TFLOP/s"]})]
PositiveInt = Annotated[int, Field(gt=0, strict=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchitectureModel(Strict):
    """A transformer described by its shape (see simulator/model.py Architecture)."""

    kind: Literal["decoder", "encoder", "encoder-decoder"] = "decoder"
    num_layers: PositiveInt
    hidden_size: PositiveInt
    num_heads: PositiveInt
    num_kv_heads: PositiveInt | None = None
    head_dim: PositiveInt | None = None
    ffn_hidden_size: PositiveInt | None = Field(None, description="default 4 x hidden_size")
    ffn: Literal["gelu", "relu", "swiglu", "geglu"] = "gelu"
    vocab_size: PositiveInt
    num_decoder_layers: PositiveInt | None = None
    tied_embeddings: bool = True
    position_embedding: Literal["learned", "rotary", "alibi", "relative"] = "learned"
    max_position_embeddings: Annotated[int, Field(ge=0, strict=True)] = 0
    norm: Literal["layernorm", "layernorm-nobias", "rmsnorm"] = "layernorm"
    bias: bool = True
    qkv_bias: bool | None = None
    lm_head: bool = True
    lm_head_bias: bool = False
    embedding_norm: bool = False
    final_norm: bool = True
    token_type_vocab: Annotated[int, Field(ge=0, strict=True)] = 0
    pooler: bool = False
    relative_attention_num_buckets: PositiveInt = 32


class ModelSection(Strict):
    """Exactly one of preset, params or architecture."""

    preset: str | None = Field(None, description="a name from the preset catalog, e.g. llama2-7b")
    params: float | None = Field(None, gt=0, description="bare parameter count, e.g. 7.5e9")
    architecture: ArchitectureModel | None = None
    num_layers: PositiveInt | None = Field(
        None, description="with params: layer count used for activation memory (default from params)")
    hidden_size: PositiveInt | None = Field(
        None, description="with params: hidden size used for activation memory (default from params)")

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("preset", "params", "architecture") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'preset', 'params' or 'architecture'"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class OffloadSection(Strict):
    optimizer: Literal["none", "cpu"] = "none"
    params: Literal["none", "cpu"] = "none"


class Zero3Section(Strict):
    """FSDP / ZeRO-3 behaviour (PyTorch FSDP names). FSDP's forward_prefetch only matters when
    the host cannot run ahead of the GPU; the engine's host always can, so it is not offered."""

    backward_prefetch: bool = True
    limit_all_gathers: bool = True
    reshard_after_forward: bool = True


class TrainingSection(Strict):
    precision: Literal[PRECISIONS] = "bf16-mixed"  # type: ignore[valid-type]
    optimizer: Literal[OPTIMIZERS] = "adamw"  # type: ignore[valid-type]
    strategy: str = "ddp"
    shard_group_size: PositiveInt | None = None
    micro_batch_size: PositiveInt = 1
    seq_len: PositiveInt = 2048
    grad_accum_steps: PositiveInt | None = None
    global_batch_size: PositiveInt | None = Field(None, description="sequences per optimizer step")
    activation_checkpointing: Literal[CHECKPOINTING] = "none"  # type: ignore[valid-type]
    flash_attention: bool = True
    offload: OffloadSection = OffloadSection()
    zero3: Zero3Section = Zero3Section()
    bucket_size: Bytes = Field(25_000_000, description="DDP bucket_cap_mb (PyTorch default 25 MB)")
    gradient_as_bucket_view: bool = Field(
        False, description="PyTorch DDP option; False (default) keeps a second copy of gradients in buckets")
    framework_overhead: Bytes | None = Field(None, description="CUDA context etc. per GPU (default per GPU)")
    allocator_reserve: float = Field(DEFAULT_ALLOCATOR_RESERVE_FRACTION, ge=0, le=1,
                                     description="caching-allocator reserve, fraction of tensor bytes")
    tokens: float | None = Field(None, gt=0, description="tokens to train on (default 20 x params)")
    collective_algorithm: Literal["auto", "ring", "tree", "hierarchical"] = "auto"
    compute_jitter: float = Field(0.0, ge=0, lt=1, description="relative std-dev of each kernel's time")
    seed: Annotated[int, Field(ge=0, strict=True)] = Field(0, description="seed of compute_jitter")


class CustomGPU(Strict):
    """A user-defined GPU."""

    name: str
    memory: Bytes
    hbm_bandwidth: Bandwidth
    peak_flops: dict[Literal["fp64", "fp32", "tf32", "fp16", "bf16", "fp8"], FlopRate]
    source: str = "user-defined"
    cuda_context: Bytes | None = None
    pcie_bandwidth: Bandwidth | None = None


class Straggler(Strict):
    """One slow GPU: every kernel on it takes `slowdown` times longer."""

    rank: Annotated[int, Field(ge=0, strict=True)]
    slowdown: float = Field(gt=0)


class DegradedLink(Strict):
    """A link running below its rated bandwidth (a flapping cable, a failed lane)."""

    source: str = Field(description="vertex name at the link's start, e.g. a NIC or switch")
    target: str = Field(description="vertex name at the link's end")
    bandwidth_factor: float = Field(gt=0, le=1, description="fraction of the rated bandwidth left")
    both_directions: bool = True


class ClusterSection(Strict):
    topology: str = "dgx-a100"
    num_hosts: PositiveInt = 1
    num_gpus: PositiveInt | None = None
    gpu: str | CustomGPU | None = None
    price_per_gpu_hour: float | None = Field(None, ge=0, description="USD, for cost to train")
    stragglers: tuple[Straggler, ...] = ()
    degraded_links: tuple[DegradedLink, ...] = ()


class ScenarioFile(Strict):
    """A clustersim scenario: a model, a training setup and a cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="clustersim scenario")

    name: str = "scenario"
    description: str = ""
    model: ModelSection
    training: TrainingSection = TrainingSection()
    cluster: ClusterSection = ClusterSection()


def json_schema() -> dict:
    schema = ScenarioFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
