"""GPU catalog: memory capacity, dense peak FLOP/s per datatype, HBM and scale-up bandwidth, SM
count, architecture and the achievable-efficiency factors of the compute model, each with its
source. gpu.py defines a GPU, efficiency.py the measured fractions, catalog.py the entries."""

from simulator.system.hardware.catalog import GPU_ALIASES, GPU_CATALOG, get_gpu, gpu_names
from simulator.system.hardware.efficiency import (
    A100_EFFICIENCY,
    B200_EFFICIENCY,
    END_TO_END_FITTED_A100,
    GB200_EFFICIENCY,
    H200_EFFICIENCY,
    HOPPER_EFFICIENCY,
    MI300X_EFFICIENCY,
    V100_EFFICIENCY,
)
from simulator.system.hardware.gpu import (
    ARCHS,
    DEFAULT_ALLOCATOR_RESERVE_FRACTION,
    DEFAULT_CUDA_CONTEXT_BYTES,
    GPU,
    KERNEL_LAUNCH_S,
    TFLOPS,
    Efficiency,
    GBps,
    GiB,
    MiB,
)

__all__ = [
    "A100_EFFICIENCY",
    "ARCHS",
    "B200_EFFICIENCY",
    "DEFAULT_ALLOCATOR_RESERVE_FRACTION",
    "DEFAULT_CUDA_CONTEXT_BYTES",
    "END_TO_END_FITTED_A100",
    "GB200_EFFICIENCY",
    "GPU",
    "GPU_ALIASES",
    "GPU_CATALOG",
    "H200_EFFICIENCY",
    "HOPPER_EFFICIENCY",
    "KERNEL_LAUNCH_S",
    "MI300X_EFFICIENCY",
    "TFLOPS",
    "V100_EFFICIENCY",
    "Efficiency",
    "GBps",
    "GiB",
    "MiB",
    "get_gpu",
    "gpu_names",
]
