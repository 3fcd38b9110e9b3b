"""The GPU catalog: one entry per GPU model with its data-sheet figures and sources.

SM counts: NVIDIA architecture whitepapers (V100 80, A100 108, H100 SXM5 132, H100 PCIe 114;
H200 shares the H100 SXM5 die; B200 148 = 2 dies x 74, per Chips and Cheese's B200 article and
torch.cuda.get_device_properties logs); AMD CDNA3: 304 compute units (ROCm docs, mi300.md).
"""

from __future__ import annotations

from dataclasses import replace

from simulator.system.hardware.efficiency import (
    A100_EFFICIENCY,
    B200_EFFICIENCY,
    GB200_EFFICIENCY,
    H200_EFFICIENCY,
    HOPPER_EFFICIENCY,
    HOPPER_PCIE_EFFICIENCY,
    MI300X_EFFICIENCY,
    MI325X_EFFICIENCY,
    V100_EFFICIENCY,
)
from simulator.system.hardware.gpu import GPU, TFLOPS, GBps, MiB
from simulator.system.hardware.power import (
    A100_POWER,
    B200_POWER,
    GB200_POWER,
    H100_NVL_POWER,
    H100_PCIE_POWER,
    H100_SXM_POWER,
    H200_POWER,
    H800_POWER,
    MI300X_POWER,
    MI325X_POWER,
    V100_POWER,
)


def _tf(**rates: float) -> dict[str, float]:
    return {k: v * TFLOPS for k, v in rates.items()}


_V100_SRC = (
    "NVIDIA Tesla V100 datasheet (SXM2): 125 TFLOPS fp16 tensor, 15.7 fp32, 7.8 fp64, "
    "900 GB/s HBM2; no bf16/tf32 units"
)
_A100_SRC = (
    "NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf), SXM4: "
    "312 TFLOPS bf16/fp16 dense, 156 tf32, 19.5 fp32, 9.7 fp64 (19.5 fp64 tensor); NVLink3 "
    "600 GB/s bidirectional"
)
_H100_SRC = (
    "NVIDIA H100 datasheet: SXM5 989.4 TFLOPS bf16/fp16 dense, 1978.9 fp8, 494.7 tf32, "
    "66.9 fp32, 33.5 fp64 (67 fp64 tensor); 3.35 TB/s HBM3; NVLink4 900 GB/s bidirectional"
)
# The H800 SXM5 is NVIDIA's 2023 export variant of the H100 SXM5 (same GH100 die, 132 SMs, 80 GB
# HBM3): NVLink cut from 900 to 400 GB/s bidirectional (200 GB/s per direction) and FP64 cut to
# about 1 TFLOPS. NVIDIA's own H800 data sheet could not be retrieved: the figures below come from
# the third-party pages cited; the tensor peaks are the H100 SXM5's (same silicon and clocks).
_H800_SRC = (
    "NVIDIA H800 SXM5 (H100 SXM5 export variant, per aiwiki.ai/wiki/nvidia_h800 and "
    "philisun.com 'NVIDIA H800 vs H100: A Technical Deep Dive'): 989.4 TFLOPS bf16/fp16 "
    "dense, 1978.9 fp8, 494.7 tf32, 66.9 fp32 (= H100 SXM5); FP64 about 1 TFLOPS; 80 GB "
    "HBM3 at 3.35 TB/s; 132 SMs; NVLink 400 GB/s bidirectional (H100: 900); TDP up to "
    "700 W. DeepSeek-V3 technical report (arXiv 2412.19437) Sec 3.2.2: NVLink 160 GB/s "
    "achieved per GPU. Memory total assumed the H100 80GB HBM3's nvidia-smi 81,559 MiB"
)
_H100_PCIE_SRC = (
    "NVIDIA H100 datasheet: PCIe 756 TFLOPS bf16/fp16 dense, 1513 fp8, 378 tf32, 51 fp32, "
    "26 fp64; 2.0 TB/s HBM2e; NVLink bridge 600 GB/s bidirectional per pair"
)
_H100_NVL_SRC = (
    "NVIDIA H100 datasheet, H100 NVL column: 94 GB HBM3 at 3.9 TB/s, 835 TFLOPS bf16/fp16 "
    "dense (1,671 with sparsity), 1,671 fp8, 417.5 tf32, 60 fp32, 30 fp64; NVLink bridge "
    "600 GB/s bidirectional; nvidia-smi reports 95,830 MiB. The compute figures are recalled "
    "from the data sheet, not re-read (low confidence)"
)
_H200_SRC = (
    "NVIDIA H200 datasheet: SXM 989.4 TFLOPS bf16/fp16 dense, 1978.9 fp8, 494.7 tf32, "
    "66.9 fp32; 141 GB HBM3e at 4.8 TB/s; '18x 4th Gen NVLink, 900GB/s' (MLCommons H200 "
    "system description)"
)
_B200_SRC = (
    "NVIDIA HGX/DGX B200 specifications: 180 GB HBM3e (nvidia-smi 183,359 MiB), 8 TB/s "
    "(DGX B200: 64 TB/s for 8 GPUs; the HGX table says 7.7), 2.25 PFLOPS bf16/fp16 dense "
    "(4.5 sparse), 4.5 PF fp8, 9 PF fp4, 1.1 PF tf32, 75 TFLOPS fp32, 37 fp64; NVLink5 1.8 TB/s "
    "bidirectional (18 links); up to 1,000 W"
)
_GB200_SRC = (
    "NVIDIA GB200 NVL72 specifications, per GPU: 186 GB HBM3e (MLPerf system description; "
    "nvidia-smi 189,471 MiB) at 8 TB/s, 2.5 PFLOPS bf16/fp16 dense, 5 PF fp8, 10 PF fp4, "
    "1.25 PF tf32, 80 TFLOPS fp32, 40 fp64; NVLink5 1.8 TB/s bidirectional; NVLink-C2C to "
    "Grace 900 GB/s bidirectional; up to 1,200 W. SM count 148 is B200's (not confirmed for "
    "GB200)"
)
_MI300X_SRC = (
    "AMD ROCm docs (docs/conceptual/gpu-arch/mi300.md, 'Peak-performance capabilities of "
    "the MI300X'): 1,307.4 TFLOPS bf16/fp16 matrix, 2,614.9 fp8, 653.7 tf32, 163.4 fp32, "
    "81.7 fp64 vector; 192 GB HBM3 at 5.3 TB/s (rocm-smi 205,822,885,888 B); 304 CUs; 7 "
    "Infinity Fabric links per GPU at 64 GB/s per direction (128 GB/s peak bidirectional)"
)
_MI325X_SRC = (
    "AMD ROCm docs (gpu-arch-specs.rst) and ROCm blog 'Understanding Peak and Max-Achievable "
    "FLOPS' (Table 1): same CDNA3 compute as MI300X (1,307.4 TFLOPS bf16, 2,614.9 fp8); "
    "256 GiB HBM3e at 6.0 TB/s (rocm-smi byte count not found: the table's 256 GiB is used); "
    "xGMI as MI300X"
)

_HOPPER_PEAKS = _tf(fp64=33.5, fp32=66.9, tf32=494.7, fp16=989.4, bf16=989.4, fp8=1978.9)
_CDNA3_PEAKS = _tf(fp64=81.7, fp32=163.4, tf32=653.7, fp16=1307.4, bf16=1307.4, fp8=2614.9)

GPU_CATALOG: dict[str, GPU] = {
    gpu.name: gpu
    for gpu in [
        # nvidia-smi reports 16,160 MiB on V100-SXM2-16GB and 32,510 MiB on V100-SXM2-32GB.
        GPU(
            name="v100-16gb",
            memory_bytes=16160 * MiB,
            peak_flops=_tf(fp64=7.8, fp32=15.7, fp16=125.0),
            hbm_bw_bytes_per_s=900 * GBps,
            source=_V100_SRC,
            pcie_bw_bytes_per_s=16 * GBps,
            description="Tesla V100 SXM2 16GB",
            sm_count=80,
            efficiency=V100_EFFICIENCY,
            arch="volta",
            scaleup_bw_bytes_per_s=150 * GBps,
            power=V100_POWER,
        ),
        GPU(
            name="v100-32gb",
            memory_bytes=32510 * MiB,
            peak_flops=_tf(fp64=7.8, fp32=15.7, fp16=125.0),
            hbm_bw_bytes_per_s=900 * GBps,
            source=_V100_SRC,
            pcie_bw_bytes_per_s=16 * GBps,
            description="Tesla V100 SXM2 32GB",
            sm_count=80,
            efficiency=V100_EFFICIENCY,
            arch="volta",
            scaleup_bw_bytes_per_s=150 * GBps,
            power=V100_POWER,
        ),
        # nvidia-smi reports 40,960 MiB (A100-SXM4-40GB) and 81,920 MiB (A100-SXM4-80GB).
        GPU(
            name="a100-40gb",
            memory_bytes=40960 * MiB,
            peak_flops=_tf(fp64=9.7, fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0),
            hbm_bw_bytes_per_s=1555 * GBps,
            source=_A100_SRC + "; 40 GB HBM2 at 1,555 GB/s",
            description="A100 SXM4 40GB",
            efficiency=A100_EFFICIENCY,
            scaleup_bw_bytes_per_s=300 * GBps,
            power=A100_POWER,
        ),
        GPU(
            name="a100-80gb",
            memory_bytes=81920 * MiB,
            peak_flops=_tf(fp64=9.7, fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0),
            hbm_bw_bytes_per_s=2039 * GBps,
            source=_A100_SRC + "; 80 GB HBM2e at 2,039 GB/s",
            description="A100 SXM4 80GB",
            efficiency=A100_EFFICIENCY,
            scaleup_bw_bytes_per_s=300 * GBps,
            power=A100_POWER,
        ),
        # nvidia-smi reports 81,559 MiB on H100 80GB HBM3 and 143,771 MiB on H200.
        GPU(
            name="h100-sxm-80gb",
            memory_bytes=81559 * MiB,
            peak_flops=_HOPPER_PEAKS,
            hbm_bw_bytes_per_s=3350 * GBps,
            source=_H100_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="H100 SXM5 80GB",
            sm_count=132,
            efficiency=HOPPER_EFFICIENCY,
            arch="hopper",
            scaleup_bw_bytes_per_s=450 * GBps,
            power=H100_SXM_POWER,
        ),
        # H800: the H100 SXM5's compute-kernel fractions (GEMM ceiling and shape table, STREAM,
        # FlashAttention) are shared as a stated assumption (same SMs, clocks and HBM3); nothing
        # in them is about NVLink. Its NVLink rate is its own (200 GB/s per direction here and
        # nvlink_bw in topologies/h800-ib-cluster.yaml); NCCL's NVLink efficiency is per
        # architecture (Hopper's ring fraction 370/450 of 200 GB/s = 164 GB/s; the DeepSeek-V3
        # report gives 160).
        GPU(
            name="h800-sxm-80gb",
            memory_bytes=81559 * MiB,
            peak_flops=_tf(fp64=1.0, fp32=66.9, tf32=494.7, fp16=989.4, bf16=989.4, fp8=1978.9),
            hbm_bw_bytes_per_s=3350 * GBps,
            source=_H800_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="H800 SXM5 80GB (export H100, NVLink 400 GB/s)",
            sm_count=132,
            efficiency=replace(
                HOPPER_EFFICIENCY,
                source="H100 SXM5's fractions: " + HOPPER_EFFICIENCY.source,
                assumed="every fraction and the GEMM shape dependence (H100 SXM5's: same GH100 "
                "SMs, clocks and HBM3; no H800 measurement held); " + HOPPER_EFFICIENCY.assumed,
            ),
            arch="hopper",
            scaleup_bw_bytes_per_s=200 * GBps,
            power=H800_POWER,
        ),
        GPU(
            name="h100-pcie-80gb",
            memory_bytes=81559 * MiB,
            peak_flops=_tf(fp64=26.0, fp32=51.0, tf32=378.0, fp16=756.0, bf16=756.0, fp8=1513.0),
            hbm_bw_bytes_per_s=2000 * GBps,
            source=_H100_PCIE_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="H100 PCIe 80GB",
            sm_count=114,
            efficiency=HOPPER_PCIE_EFFICIENCY,
            arch="hopper",
            scaleup_bw_bytes_per_s=300 * GBps,
            power=H100_PCIE_POWER,
        ),
        GPU(
            name="h100-nvl-94gb",
            memory_bytes=95830 * MiB,
            peak_flops=_tf(fp64=30.0, fp32=60.0, tf32=417.5, fp16=835.0, bf16=835.0, fp8=1671.0),
            hbm_bw_bytes_per_s=3900 * GBps,
            source=_H100_NVL_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="H100 NVL 94GB (PCIe, NVLink-bridged pairs)",
            sm_count=132,
            efficiency=HOPPER_PCIE_EFFICIENCY,
            arch="hopper",
            scaleup_bw_bytes_per_s=300 * GBps,
            power=H100_NVL_POWER,
        ),
        GPU(
            name="h200-141gb",
            memory_bytes=143771 * MiB,
            peak_flops=_HOPPER_PEAKS,
            hbm_bw_bytes_per_s=4800 * GBps,
            source=_H200_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="H200 SXM 141GB",
            sm_count=132,
            efficiency=H200_EFFICIENCY,
            arch="hopper",
            scaleup_bw_bytes_per_s=450 * GBps,
            power=H200_POWER,
        ),
        GPU(
            name="b200-180gb",
            memory_bytes=183359 * MiB,
            peak_flops=_tf(
                fp64=37.0, fp32=75.0, tf32=1100.0, fp16=2250.0, bf16=2250.0, fp8=4500.0, fp4=9000.0
            ),
            hbm_bw_bytes_per_s=8000 * GBps,
            source=_B200_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="B200 (HGX/DGX, 1000 W) 180GB",
            sm_count=148,
            efficiency=B200_EFFICIENCY,
            arch="blackwell",
            scaleup_bw_bytes_per_s=900 * GBps,
            power=B200_POWER,
        ),
        # Host link: NVLink-C2C to the Grace CPU, 450 GB/s per direction (Azure ND GB200 v6
        # nvbandwidth measures 201 GB/s host-to-device).
        GPU(
            name="gb200-186gb",
            memory_bytes=189471 * MiB,
            peak_flops=_tf(
                fp64=40.0, fp32=80.0, tf32=1250.0, fp16=2500.0, bf16=2500.0, fp8=5000.0, fp4=10000.0
            ),
            hbm_bw_bytes_per_s=8000 * GBps,
            source=_GB200_SRC,
            pcie_bw_bytes_per_s=450 * GBps,
            description="GB200 (NVL72, 1200 W) 186GB",
            sm_count=148,
            efficiency=GB200_EFFICIENCY,
            arch="blackwell",
            scaleup_bw_bytes_per_s=900 * GBps,
            power=GB200_POWER,
        ),
        GPU(
            name="mi300x-192gb",
            memory_bytes=205822885888,
            peak_flops=_CDNA3_PEAKS,
            hbm_bw_bytes_per_s=5300 * GBps,
            source=_MI300X_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="AMD Instinct MI300X 192GB",
            sm_count=304,
            efficiency=MI300X_EFFICIENCY,
            arch="cdna3",
            scaleup_bw_bytes_per_s=448 * GBps,
            power=MI300X_POWER,
        ),
        GPU(
            name="mi325x-256gb",
            memory_bytes=256 * 1024 * MiB,
            peak_flops=_CDNA3_PEAKS,
            hbm_bw_bytes_per_s=6000 * GBps,
            source=_MI325X_SRC,
            pcie_bw_bytes_per_s=64 * GBps,
            description="AMD Instinct MI325X 256GB",
            sm_count=304,
            efficiency=MI325X_EFFICIENCY,
            arch="cdna3",
            scaleup_bw_bytes_per_s=448 * GBps,
            power=MI325X_POWER,
        ),
    ]
}

GPU_ALIASES = {
    "v100": "v100-32gb",
    "v100-sxm2-16gb": "v100-16gb",
    "v100-sxm2-32gb": "v100-32gb",
    "a100": "a100-80gb",
    "a100-sxm4-40gb": "a100-40gb",
    "a100-sxm4-80gb": "a100-80gb",
    "a100_80gb": "a100-80gb",
    "a100_40gb": "a100-40gb",
    "h100": "h100-sxm-80gb",
    "h100-80gb": "h100-sxm-80gb",
    "h100-sxm5-80gb": "h100-sxm-80gb",
    "h100-sxm": "h100-sxm-80gb",
    "h100-pcie": "h100-pcie-80gb",
    "h100-nvl": "h100-nvl-94gb",
    "h800": "h800-sxm-80gb",
    "h800-80gb": "h800-sxm-80gb",
    "h800-sxm5-80gb": "h800-sxm-80gb",
    "h800-sxm": "h800-sxm-80gb",
    "h200": "h200-141gb",
    "h200-sxm-141gb": "h200-141gb",
    "b200": "b200-180gb",
    "gb200": "gb200-186gb",
    "mi300x": "mi300x-192gb",
    "mi325x": "mi325x-256gb",
}


def gpu_names() -> list[str]:
    return sorted(GPU_CATALOG)


def get_gpu(name: str) -> GPU:
    """A catalog GPU by name or alias (case-insensitive); KeyError if unknown."""
    key = name.strip().lower()
    key = GPU_ALIASES.get(key, key)
    return GPU_CATALOG[key]
