"""GPU catalog: memory capacity, dense peak FLOP/s per datatype, HBM bandwidth, SM count and
the achievable-efficiency factors of the compute model, each with its source.

SM counts: NVIDIA architecture whitepapers (V100 80, A100 108, H100 SXM5 132, H100 PCIe 114;
H200 shares the H100 SXM5 die).

Peak FLOP/s are dense (NVIDIA's "with sparsity" figures / 2). Memory capacity is what the
CUDA driver reports as total device memory (nvidia-smi "Memory-Usage" total, MiB), since
that is the pool the allocator can fill; the marketing "80GB" of an A100 is 81,920 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from simulator.model.precision import DTYPES

MiB = 2**20
GiB = 2**30
TFLOPS = 1e12
GBps = 1e9


# Framework overhead per GPU, default for every catalog GPU (overridable per scenario):
# CUDA context + kernel images of cuBLAS/cuDNN/NCCL loaded by PyTorch (typically 0.5-1 GiB
# on Ampere/Hopper as nvidia-smi shows for an idle `torch.cuda.init()` process) plus NCCL
# communicator buffers (NCCL_BUFFSIZE = 4 MiB per channel per peer, NCCL env docs).
DEFAULT_CUDA_CONTEXT_BYTES = 1 * GiB

# PyTorch's caching allocator rounds and splits blocks; reserved memory typically exceeds
# allocated memory by a few percent on training workloads (torch.cuda.memory_reserved vs
# memory_allocated). Applied to the tensor bytes; overridable (`training.allocator_reserve`).
DEFAULT_ALLOCATOR_RESERVE_FRACTION = 0.05


@dataclass(frozen=True, kw_only=True)
class GPU:
    """One GPU model. Rates in FLOP/s and bytes/s; capacity in bytes."""

    name: str
    memory_bytes: int
    peak_flops: Mapping[str, float]
    hbm_bw_bytes_per_s: float
    source: str
    cuda_context_bytes: int = DEFAULT_CUDA_CONTEXT_BYTES
    # Host-device link (for offload): PCIe Gen4 x16 = 32 GB/s per direction (PCI-SIG spec,
    # 16 GT/s x 16 lanes x 128/130 encoding ~ 31.5 GB/s); Gen5 x16 doubles it.
    pcie_bw_bytes_per_s: float = 32 * GBps
    description: str = ""
    sm_count: int = 108
    efficiency: "Efficiency" = field(default_factory=lambda: A100_EFFICIENCY)

    def __post_init__(self):
        object.__setattr__(self, "peak_flops", MappingProxyType(dict(self.peak_flops)))
        if self.memory_bytes <= 0:
            raise ValueError(f"GPU {self.name}: memory must be positive")
        if self.hbm_bw_bytes_per_s <= 0:
            raise ValueError(f"GPU {self.name}: HBM bandwidth must be positive")
        for dtype, rate in self.peak_flops.items():
            if dtype not in DTYPES:
                raise ValueError(f"GPU {self.name}: unknown datatype {dtype!r} (expected one of {DTYPES})")
            if rate <= 0:
                raise ValueError(f"GPU {self.name}: peak FLOP/s for {dtype} must be positive")

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for a datatype; KeyError if the GPU has no such unit."""
        return self.peak_flops[dtype]

    def supports(self, dtype: str) -> bool:
        return dtype in self.peak_flops


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """Achievable fractions of peak for the roofline compute model, with where they come from.

    One set per GPU serves every case; nothing is tuned per model or message size.
    """

    gemm: float              # large, well-shaped GEMM: achieved / dense peak
    memory: float            # streaming kernels: achieved / HBM peak (STREAM triad)
    attention: float         # fused flash-attention kernel (forward and backward): achieved / peak
    kernel_launch_s: float   # fixed cost per kernel
    source: str
    # Fraction of the isolated-kernel roofline a whole training step sustains (framework and
    # launch gaps, NCCL kernels sharing SMs, clocks under sustained load); every kernel time
    # is divided by it. Fitted for A100 to the MPT table by benchmarks/calibrate_compute.py.
    end_to_end: float = 1.0


# CUDA kernel launch + inter-kernel gap in PyTorch eager mode is a few microseconds
# (CUDA C++ Best Practices Guide; PyTorch profiler traces show 3-6 us between small kernels).
KERNEL_LAUNCH_S = 4e-6

# End-to-end factor fitted to the six MosaicML MPT rows on 8x A100-80GB (llm-foundry
# benchmarking README, FSDP, bf16, seq 2048) by benchmarks/calibrate_compute.py: the
# isolated-kernel roofline overestimates their throughput by x1.274 (geometric mean), and
# the residual after this one factor is -4.8% .. +7.3% across 125M..13B. We hold no such
# end-to-end measurement for V100, H100 or H200; they use the A100 figure.
END_TO_END_FITTED_A100 = 0.785

A100_EFFICIENCY = Efficiency(
    # Azure AI-benchmarking-guide, ND A100 v4: fp16 GEMM 16384^3 = 256.5 TFLOP/s of 312 peak.
    gemm=256.5 / 312.0,
    # Same source: STREAM triad 1.7 TB/s on A100-80GB (2.039 TB/s peak).
    memory=1.7 / 2.039,
    # FlashAttention-2 (Dao 2023), Fig. 4-5: fwd+bwd at head dim 128, seq 2k, about 190 of
    # 312 TFLOP/s on A100 (backward counted as 2.5x forward FLOPs, as in model.backward_ops).
    attention=190.0 / 312.0,
    kernel_launch_s=KERNEL_LAUNCH_S,
    source="Azure AI-benchmarking-guide ND A100 v4 (GEMM, STREAM); FlashAttention-2 paper (attention); "
           "end_to_end fitted to MPT throughput (llm-foundry)",
    end_to_end=END_TO_END_FITTED_A100,
)
HOPPER_EFFICIENCY = Efficiency(
    # Azure AI-benchmarking-guide, ND H100 v5: fp8 GEMM 32768^3 = 1382.2 of 1978.9 TFLOP/s; the
    # only Hopper GEMM figure we hold, applied to every datatype.
    gemm=1382.2 / 1978.9,
    # Same source: STREAM triad 2.97 TB/s on H100 (3.35 TB/s peak).
    memory=2.97 / 3.35,
    # FlashAttention-2 paper, Fig. 7: up to 335 TFLOP/s fwd+bwd on H100 SXM5 (of 989).
    attention=335.0 / 989.4,
    kernel_launch_s=KERNEL_LAUNCH_S,
    source="Azure AI-benchmarking-guide ND H100 v5 (GEMM, STREAM); FlashAttention-2 paper (attention); "
           "end_to_end from A100",
    end_to_end=END_TO_END_FITTED_A100,
)
H200_EFFICIENCY = Efficiency(
    gemm=HOPPER_EFFICIENCY.gemm,  # same GH100 compute die as H100 SXM
    # Azure AI-benchmarking-guide, ND H200 v5: STREAM triad 4.15 TB/s (4.8 TB/s peak).
    memory=4.15 / 4.8,
    attention=HOPPER_EFFICIENCY.attention,
    kernel_launch_s=KERNEL_LAUNCH_S,
    source="Azure AI-benchmarking-guide ND H200 v5 (STREAM); H100 figures for GEMM and attention",
    end_to_end=END_TO_END_FITTED_A100,
)
V100_EFFICIENCY = Efficiency(
    # No V100 measurement in our reference data: A100's fractions are assumed (same cuBLAS
    # tensor-core GEMM design); flash attention on Volta uses the same fraction.
    gemm=A100_EFFICIENCY.gemm, memory=A100_EFFICIENCY.memory, attention=A100_EFFICIENCY.attention,
    kernel_launch_s=KERNEL_LAUNCH_S, source="assumed equal to A100 (no V100 measurement held)",
    end_to_end=END_TO_END_FITTED_A100,
)


def _tf(**rates: float) -> dict[str, float]:
    return {k: v * TFLOPS for k, v in rates.items()}


_V100_SRC = ("NVIDIA Tesla V100 datasheet (SXM2): 125 TFLOPS fp16 tensor, 15.7 fp32, 7.8 fp64, "
             "900 GB/s HBM2; no bf16/tf32 units")
_A100_SRC = ("NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf), SXM4: "
             "312 TFLOPS bf16/fp16 dense, 156 tf32, 19.5 fp32, 9.7 fp64 (19.5 fp64 tensor)")
_H100_SRC = ("NVIDIA H100 datasheet: SXM5 989.4 TFLOPS bf16/fp16 dense, 1978.9 fp8, 494.7 tf32, "
             "66.9 fp32, 33.5 fp64 (67 fp64 tensor); 3.35 TB/s HBM3")
_H100_PCIE_SRC = ("NVIDIA H100 datasheet: PCIe 756 TFLOPS bf16/fp16 dense, 1513 fp8, 378 tf32, 51 fp32, "
                  "26 fp64; 2.0 TB/s HBM2e")
_H200_SRC = ("NVIDIA H200 datasheet: SXM 989.4 TFLOPS bf16/fp16 dense, 1978.9 fp8, 494.7 tf32, "
             "66.9 fp32; 141 GB HBM3e at 4.8 TB/s")

GPU_CATALOG: dict[str, GPU] = {
    gpu.name: gpu
    for gpu in [
        # nvidia-smi reports 16,160 MiB on V100-SXM2-16GB and 32,510 MiB on V100-SXM2-32GB.
        GPU(name="v100-16gb", memory_bytes=16160 * MiB, peak_flops=_tf(fp64=7.8, fp32=15.7, fp16=125.0),
            hbm_bw_bytes_per_s=900 * GBps, source=_V100_SRC,
            pcie_bw_bytes_per_s=16 * GBps, description="Tesla V100 SXM2 16GB",
            sm_count=80, efficiency=V100_EFFICIENCY),
        GPU(name="v100-32gb", memory_bytes=32510 * MiB, peak_flops=_tf(fp64=7.8, fp32=15.7, fp16=125.0),
            hbm_bw_bytes_per_s=900 * GBps, source=_V100_SRC,
            pcie_bw_bytes_per_s=16 * GBps, description="Tesla V100 SXM2 32GB",
            sm_count=80, efficiency=V100_EFFICIENCY),
        # nvidia-smi reports 40,960 MiB (A100-SXM4-40GB) and 81,920 MiB (A100-SXM4-80GB).
        GPU(name="a100-40gb", memory_bytes=40960 * MiB, peak_flops=_tf(fp64=9.7, fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0),
            hbm_bw_bytes_per_s=1555 * GBps, source=_A100_SRC + "; 40 GB HBM2 at 1,555 GB/s", description="A100 SXM4 40GB"),
        GPU(name="a100-80gb", memory_bytes=81920 * MiB, peak_flops=_tf(fp64=9.7, fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0),
            hbm_bw_bytes_per_s=2039 * GBps, source=_A100_SRC + "; 80 GB HBM2e at 2,039 GB/s", description="A100 SXM4 80GB"),
        # nvidia-smi reports 81,559 MiB on H100 80GB HBM3 and 143,771 MiB on H200.
        GPU(name="h100-sxm-80gb", memory_bytes=81559 * MiB,
            peak_flops=_tf(fp64=33.5, fp32=66.9, tf32=494.7, fp16=989.4, bf16=989.4, fp8=1978.9),
            hbm_bw_bytes_per_s=3350 * GBps, source=_H100_SRC, pcie_bw_bytes_per_s=64 * GBps, description="H100 SXM5 80GB",
            sm_count=132, efficiency=HOPPER_EFFICIENCY),
        GPU(name="h100-pcie-80gb", memory_bytes=81559 * MiB,
            peak_flops=_tf(fp64=26.0, fp32=51.0, tf32=378.0, fp16=756.0, bf16=756.0, fp8=1513.0),
            hbm_bw_bytes_per_s=2000 * GBps, source=_H100_PCIE_SRC, pcie_bw_bytes_per_s=64 * GBps, description="H100 PCIe 80GB",
            sm_count=114, efficiency=HOPPER_EFFICIENCY),
        GPU(name="h200-141gb", memory_bytes=143771 * MiB,
            peak_flops=_tf(fp64=33.5, fp32=66.9, tf32=494.7, fp16=989.4, bf16=989.4, fp8=1978.9),
            hbm_bw_bytes_per_s=4800 * GBps, source=_H200_SRC, pcie_bw_bytes_per_s=64 * GBps, description="H200 SXM 141GB",
            sm_count=132, efficiency=H200_EFFICIENCY),
    ]
}

GPU_ALIASES = {
    "v100": "v100-32gb", "v100-sxm2-16gb": "v100-16gb", "v100-sxm2-32gb": "v100-32gb",
    "a100": "a100-80gb", "a100-sxm4-40gb": "a100-40gb", "a100-sxm4-80gb": "a100-80gb",
    "a100_80gb": "a100-80gb", "a100_40gb": "a100-40gb",
    "h100": "h100-sxm-80gb", "h100-80gb": "h100-sxm-80gb", "h100-sxm5-80gb": "h100-sxm-80gb",
    "h100-sxm": "h100-sxm-80gb", "h100-pcie": "h100-pcie-80gb",
    "h200": "h200-141gb", "h200-sxm-141gb": "h200-141gb",
}


def gpu_names() -> list[str]:
    return sorted(GPU_CATALOG)


def get_gpu(name: str) -> GPU:
    """A catalog GPU by name or alias (case-insensitive); KeyError if unknown."""
    key = name.strip().lower()
    key = GPU_ALIASES.get(key, key)
    return GPU_CATALOG[key]
