"""The scenario's `cluster:` section: the topology, the GPU (a catalog name or a custom one
with its efficiencies), stragglers, degraded links, power and a power cap."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from simulator.scenario.schema_power import GPUPowerSection, Power, PowerSection
from simulator.scenario.schema_types import (
    MAX_STRAGGLERS,
    ArchName,
    AttentionTableName,
    Bandwidth,
    Bytes,
    DtypeName,
    Duration,
    FlopRate,
    Fraction,
    GemmTableName,
    Gpus,
    PositiveBytes,
    SmCount,
    Strict,
)


class EfficiencySection(Strict):
    """Achievable fractions of peak for a custom GPU's roofline (defaults: A100's, said in the report)."""

    gemm: Fraction | None = None
    memory: Fraction | None = None
    attention: Fraction | None = None
    end_to_end: Fraction | None = None
    kernel_launch: Duration | None = None
    gemm_table: GemmTableName | None = None
    attention_table: AttentionTableName | None = None


class CustomGPU(Strict):
    """A user-defined GPU."""

    name: str = Field(min_length=1)
    memory: PositiveBytes
    hbm_bandwidth: Bandwidth
    peak_flops: dict[DtypeName, FlopRate] = Field(min_length=1)
    source: str = "user-defined"
    sm_count: SmCount | None = None
    arch: ArchName | None = Field(
        None,
        description="volta | ampere | hopper | blackwell | cdna3: "
        "selects NCCL's per-architecture tables (default ampere)",
    )
    pcie_bandwidth: Bandwidth | None = None
    cuda_context: Bytes | None = None
    efficiency: EfficiencySection = EfficiencySection()
    power: GPUPowerSection | None = Field(None, description="draw by activity (tdp at least)")


class Straggler(Strict):
    """One slow GPU: every kernel on it takes `slowdown` times longer."""

    rank: Annotated[int, Field(ge=0, strict=True)]
    slowdown: float = Field(gt=0, le=1000, allow_inf_nan=False)


class DegradedLink(Strict):
    """A link running below its rated bandwidth (a flapping cable, a failed lane)."""

    source: str = Field(
        description="vertex name at the link's start (clustersim topology show --vertices)"
    )
    target: str = Field(description="vertex name at the link's end")
    bandwidth_factor: float = Field(gt=0, le=1, description="fraction of the rated bandwidth left")
    both_directions: bool = True


def _gpu_kind(value: Any) -> str:
    return "custom" if isinstance(value, dict) else "name"


GpuField = Annotated[
    Annotated[str, Tag("name")] | Annotated[CustomGPU, Tag("custom")], Discriminator(_gpu_kind)
]


class ClusterSection(Strict):
    topology: str = Field("dgx-a100", description="a shipped topology name or a YAML path")
    num_hosts: Gpus | None = Field(
        None, description="hosts of a multi-host topology (default: the file's num_hosts)"
    )
    num_gpus: Gpus | None = None
    gpu: GpuField | None = Field(
        None, description="a catalog name, or a mapping describing your own GPU"
    )
    price_per_gpu_hour: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="USD, for cost to train"
    )
    stragglers: tuple[Straggler, ...] = Field((), max_length=MAX_STRAGGLERS)
    degraded_links: tuple[DegradedLink, ...] = ()
    power: PowerSection = Field(
        PowerSection(), description="hosts, PUE, electricity price, grid CO2, GPU draw"
    )
    power_cap: Power | None = Field(
        None,
        description="per-GPU power cap, e.g. '500 W': the clock falls until compute-bound "
        "kernels draw at most the cap (above the GPU's waiting draw, at most its TDP)",
    )
