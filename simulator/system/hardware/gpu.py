"""What a GPU is to the simulator: memory, dense peaks per datatype, HBM and interconnect rates,
SM count, architecture, and the achievable-efficiency factors of the compute model.

Peak FLOP/s are dense (NVIDIA's "with sparsity" figures / 2). Memory capacity is what the
driver reports as total device memory (nvidia-smi "Memory-Usage" total, MiB; rocm-smi "VRAM
Total Memory"), since that is the pool the allocator can fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from simulator.model.precision import DTYPES
from simulator.system.hardware.power import GPUPower

MiB = 2**20
GiB = 2**30
TFLOPS = 1e12
GBps = 1e9

# NCCL's architecture classes (src/graph/tuning.cc compCapIndex: Volta < sm80, Ampere sm80-89,
# Hopper sm90-99, Blackwell >= sm100) select its per-architecture bandwidth tables; AMD's CDNA3
# (MI300 series) runs RCCL, NCCL's port, on xGMI instead of NVLink.
ARCHS = ("volta", "ampere", "hopper", "blackwell", "cdna3")

# Framework overhead per GPU, default for every catalog GPU (overridable per scenario):
# CUDA context + kernel images of cuBLAS/cuDNN/NCCL loaded by PyTorch (typically 0.5-1 GiB
# on Ampere/Hopper as nvidia-smi shows for an idle `torch.cuda.init()` process) plus NCCL
# communicator buffers (NCCL_BUFFSIZE = 4 MiB per channel per peer, NCCL env docs).
DEFAULT_CUDA_CONTEXT_BYTES = 1 * GiB

# PyTorch's caching allocator rounds and splits blocks; reserved memory typically exceeds
# allocated memory by a few percent on training workloads (torch.cuda.memory_reserved vs
# memory_allocated). Applied to the tensor bytes; overridable (`training.allocator_reserve`).
DEFAULT_ALLOCATOR_RESERVE_FRACTION = 0.05

# CUDA kernel launch + inter-kernel gap in PyTorch eager mode is a few microseconds
# (CUDA C++ Best Practices Guide; PyTorch profiler traces show 3-6 us between small kernels).
KERNEL_LAUNCH_S = 4e-6


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """Achievable fractions of peak for the roofline compute model, with where they come from.

    One set per GPU serves every case; nothing is tuned per model or message size.
    """

    gemm: float  # best-shape GEMM ceiling: achieved / dense peak (16-bit unless below)
    memory: float  # streaming kernels: achieved / HBM peak (STREAM triad)
    attention: float  # fused flash-attention kernel (forward and backward): achieved / peak
    kernel_launch_s: float  # fixed cost per kernel
    source: str
    # Fraction of the isolated-kernel roofline a whole training step sustains (framework and
    # launch gaps, NCCL kernels sharing SMs, clocks under sustained load); every kernel time
    # is divided by it. Fitted for A100 to the MPT table by benchmarks/calibrate_compute.py.
    end_to_end: float = 1.0
    # A shipped per-shape GEMM table of this GPU family (simulator/data/kernels/gemm-<name>.csv)
    # giving each shape's throughput relative to the best; "" means tile and wave quantization.
    gemm_table: str = ""
    # A shipped table of fused attention kernels' throughput by kernel and sequence length
    # (hardware/attention_table.py); "" means `attention` for every attention kernel call.
    attention_table: str = ""
    # GEMM fractions measured for other datatypes (e.g. fp8), as (dtype, fraction) pairs;
    # a datatype not listed uses `gemm`.
    gemm_by_dtype: tuple[tuple[str, float], ...] = ()
    # What the catalog could not find a public figure for (said in `clustersim gpus`).
    assumed: str = ""

    def gemm_for(self, dtype: str) -> float:
        return dict(self.gemm_by_dtype).get(dtype, self.gemm)


@dataclass(frozen=True, kw_only=True)
class GPU:
    """One GPU model. Rates in FLOP/s and bytes/s (per direction); capacity in bytes."""

    name: str
    memory_bytes: int
    peak_flops: Mapping[str, float]
    hbm_bw_bytes_per_s: float
    source: str
    efficiency: Efficiency
    cuda_context_bytes: int = DEFAULT_CUDA_CONTEXT_BYTES
    # Host-device link (for offload): PCIe Gen4 x16 = 32 GB/s per direction (PCI-SIG spec,
    # 16 GT/s x 16 lanes x 128/130 encoding ~ 31.5 GB/s); Gen5 x16 doubles it.
    pcie_bw_bytes_per_s: float = 32 * GBps
    description: str = ""
    sm_count: int = 108
    arch: str = "ampere"
    # Scale-up bandwidth per GPU per direction (NVLink or xGMI), for the catalog listing; the
    # topology files carry the links the simulator routes over.
    scaleup_bw_bytes_per_s: float = 0.0
    # Draw by activity (power.py); None: unknown (a custom GPU without `power`), no energy.
    power: GPUPower | None = None

    def __post_init__(self):
        object.__setattr__(self, "peak_flops", MappingProxyType(dict(self.peak_flops)))
        if self.memory_bytes <= 0:
            raise ValueError(f"GPU {self.name}: memory must be positive")
        if self.hbm_bw_bytes_per_s <= 0:
            raise ValueError(f"GPU {self.name}: HBM bandwidth must be positive")
        if self.arch not in ARCHS:
            raise ValueError(
                f"GPU {self.name}: unknown architecture {self.arch!r} (expected one of {ARCHS})"
            )
        for dtype, rate in self.peak_flops.items():
            if dtype not in DTYPES:
                raise ValueError(
                    f"GPU {self.name}: unknown datatype {dtype!r} (expected one of {DTYPES})"
                )
            if rate <= 0:
                raise ValueError(f"GPU {self.name}: peak FLOP/s for {dtype} must be positive")

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for a datatype; KeyError if the GPU has no such unit."""
        return self.peak_flops[dtype]

    def supports(self, dtype: str) -> bool:
        return dtype in self.peak_flops
