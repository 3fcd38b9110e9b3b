"""Per-GPU achievable fractions of peak, each from a named public microbenchmark.

GEMM: the ceiling is the bf16 best-shape fraction from stas00's "Maximum Achievable Matmul
FLOPS" (MAMF) table (ml-engineering compute/accelerator/README.md: the best of a brute-force
shape search, torch.matmul), for every GPU alike; fp8/fp4 where measured. The shape dependence
below it comes from a per-shape table measured on the GPU family (`gemm_table`, see
hardware/gemm_table.py): OpenXLA's GEMM performance tables for H100, B200 and MI300X, and
SimuMax's A100 table. Memory: STREAM triad (Azure). Attention: FlashAttention forward+backward
at head dim 128, sequence 2k, non-causal (the FlashAttention-2 paper's benchmark figures).
Where no public figure exists, the field says which figure stands in for it (`assumed`).

End-to-end: only A100's is fitted (to MosaicML's MPT throughput table, a calibration); every
other GPU reuses it as "framework overhead". No Hopper, Blackwell or AMD end-to-end training
run was fitted: those runs are validation (simulator/data/validation/throughput.yaml).
"""

from __future__ import annotations

from simulator.system.hardware.gpu import KERNEL_LAUNCH_S, Efficiency

# End-to-end factor fitted to the six MosaicML MPT rows on 8x A100-80GB (llm-foundry
# benchmarking README, FSDP, bf16, seq 2048) by benchmarks/calibrate_compute.py: the
# isolated-kernel roofline (GEMMs by shape from the A100 table, compute slowed while NCCL
# kernels hold SMs: execution/engine.py; the rows posed with their table's fp32 gradient
# reduction and gradient clipping, and llm-foundry's eager kernels: model/kernels.py, whose
# fp32 loss is most of the 125M row's step; Composer's DecoupledAdamW as a for-loop update:
# model/optimizer_kernels.py) overestimates their throughput by x1.211 (geometric mean), and
# the residual after this one factor is -4.9% .. +6.2% across 125M..13B.
END_TO_END_FITTED_A100 = 0.826

# FlashAttention-2 on H100 SXM5 (Dao-AILab/flash-attention README, "Speedup" figures), head
# dim 128, sequence 2k, non-causal: forward+backward 320 TFLOP/s; forward alone 362 TFLOP/s
# (FlashAttention-3 paper, Shah et al. 2024, forward figure, FA2 row). Their ratio turns a
# forward-only figure into a forward+backward estimate where only the forward is published.
FA2_H100_FWD_BWD_TFLOPS = 320.0
FA_FWD_BWD_OVER_FWD = 320.0 / 362.0

A100_EFFICIENCY = Efficiency(
    # MAMF table: A100 SXM bf16 271.2 of 312 TFLOP/s (torch 2.6.0+cu126). Azure's ND A100 v4
    # fp16 16384^3 GEMM reaches 256.5; MAMF is used because it is the one GEMM benchmark run
    # the same way on every GPU here, so the end-to-end factor fitted on A100 over it carries
    # over to other GPUs as framework overhead.
    gemm=271.2 / 312.0,
    # Same source: STREAM triad 1.7 TB/s on A100-80GB (2.039 TB/s peak).
    memory=1.7 / 2.039,
    # FlashAttention-2 (Dao 2023), Fig. 4-5: fwd+bwd at head dim 128, seq 2k, about 190 of
    # 312 TFLOP/s on A100 (backward counted as 2.5x forward FLOPs, as in model.backward_ops).
    attention=190.0 / 312.0,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    # Shape dependence: SimuMax's per-shape table, measured on an A100 PCIe 80GB (300 W); its
    # best shape reaches 0.80 of peak where MAMF's SXM search reaches 0.87, so only its
    # relative shape dependence is used, under the SXM ceiling above.
    gemm_table="a100-pcie-simumax",
    source="MAMF table, stas00/ml-engineering (GEMM ceiling); SimuMax A100 table (GEMM by shape); "
    "Azure AI-benchmarking-guide ND A100 v4 (STREAM); FlashAttention-2 paper (attention)",
    assumed="GEMM shape dependence measured on the PCIe board (the SXM's own not published)",
)

HOPPER_EFFICIENCY = Efficiency(
    # MAMF table: H100 SXM bf16 794.5 of 989 TFLOP/s (torch 2.7.0+cu126; "H200 is the same").
    gemm=794.5 / 989.0,
    # MAMF table: H100 SXM fp8 1402.6 of 1979 (Azure ND H100 v5 cuBLASLt fp8 32768^3: 1382.2).
    gemm_by_dtype=(("fp8", 1402.6 / 1979.0),),
    # Azure AI-benchmarking-guide, ND H100 v5: STREAM triad 2.97 TB/s (3.35 TB/s peak).
    memory=2.97 / 3.35,
    attention=FA2_H100_FWD_BWD_TFLOPS / 989.4,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table="h100-sxm-xla",
    attention_table="h100-sxm-fa3-paper",
    source="MAMF table, stas00/ml-engineering (GEMM bf16/fp8 ceiling); OpenXLA sm_90 table (GEMM by "
    "shape); Azure AI-benchmarking-guide ND H100 v5 (STREAM); FlashAttention-3 paper's H100 "
    "figures by kernel and sequence length (attention)",
    assumed="end_to_end (A100's fitted factor); fp8 GEMM shape dependence (tile and wave quantization: "
    "the table's fp8 rows are unusable)",
)

# H100 PCIe and H100 NVL share the GH100 design; no GEMM, STREAM or attention figure of their
# own was found, so the SXM fractions stand in (their peaks and HBM rates are their own).
HOPPER_PCIE_EFFICIENCY = Efficiency(
    gemm=HOPPER_EFFICIENCY.gemm,
    gemm_by_dtype=HOPPER_EFFICIENCY.gemm_by_dtype,
    memory=HOPPER_EFFICIENCY.memory,
    attention=HOPPER_EFFICIENCY.attention,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table=HOPPER_EFFICIENCY.gemm_table,
    attention_table=HOPPER_EFFICIENCY.attention_table,
    source="H100 SXM fractions (no PCIe/NVL measurement found)",
    assumed="every fraction, the GEMM shape dependence and the attention kernels (H100 SXM's); "
    "end_to_end (A100's)",
)

H200_EFFICIENCY = Efficiency(
    gemm=HOPPER_EFFICIENCY.gemm,  # MAMF: "H200 is the same" as H100 SXM for bf16
    # MAMF table: H200 SXM fp8 1453.4 of 1979 (torch 2.7.1+cu128).
    gemm_by_dtype=(("fp8", 1453.4 / 1979.0),),
    # Azure AI-benchmarking-guide, ND H200 v5: STREAM triad 4.15 TB/s (4.8 TB/s peak).
    memory=4.15 / 4.8,
    # Azure FA2 microbenchmark (hd128, batch 2, seq 8k): H200 329.3 vs H100 327.9 TFLOP/s, the
    # same kernel speed, so H100's FA2 fraction holds.
    attention=HOPPER_EFFICIENCY.attention,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table=HOPPER_EFFICIENCY.gemm_table,  # the same GH100 SMs and clocks
    attention_table=HOPPER_EFFICIENCY.attention_table,  # the same kernel speed (Azure, above)
    source="MAMF table (GEMM); OpenXLA sm_90 table (GEMM by shape, H100's); Azure "
    "AI-benchmarking-guide ND H200 v5 (STREAM, FA2 = H100's); FlashAttention-3 paper's H100 "
    "figures (attention)",
    assumed="GEMM shape dependence and attention kernels by sequence length (H100's); end_to_end "
    "(A100's)",
)

# Blackwell attention: FlashAttention-4 (arXiv 2603.05451) reaches "up to 1613 TFLOPs/s (71%
# utilization)" in bf16 on B200, a forward figure; x the FA2 forward+backward / forward ratio
# on H100 it estimates the training kernel. Per-shape FA4 tables were not available.
BLACKWELL_ATTENTION = 1613.0 / 2250.0 * FA_FWD_BWD_OVER_FWD

B200_EFFICIENCY = Efficiency(
    # MAMF table: B200 SXM bf16 1745.0 of 2250, fp8 3432.5 of 4500 (torch 2.7.1+cu128).
    gemm=1745.0 / 2250.0,
    gemm_by_dtype=(("fp8", 3432.5 / 4500.0),),
    # No STREAM/BabelStream figure for B200 HBM3e was found: H100's triad fraction stands in.
    memory=HOPPER_EFFICIENCY.memory,
    attention=BLACKWELL_ATTENTION,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table="b200-xla",
    source="MAMF table (GEMM bf16/fp8 ceiling); OpenXLA sm_100 B200 table (GEMM by shape); "
    "FlashAttention-4 paper headline x FA2 fwd+bwd/fwd ratio (attention, derived)",
    assumed="memory (H100's STREAM fraction: no B200 figure); attention derived from a forward "
    "headline; fp4 GEMM (the bf16 fraction); end_to_end (A100's)",
)

GB200_EFFICIENCY = Efficiency(
    # MAMF table: GB200 bf16 1822.0 of 2500, fp8 3615.6 of 5000; Azure AI-benchmarking-guide ND
    # GB200 v6 cuBLASLt fp4 16384^3: 7627.6 of 10,000 TFLOP/s (its fp8 at the same shape: 2906.9).
    gemm=1822.0 / 2500.0,
    gemm_by_dtype=(("fp8", 3615.6 / 5000.0), ("fp4", 7627.6 / 10000.0)),
    # Azure's ND GB200 v6 results give STREAM for the Grace CPU only: H100's fraction stands in.
    memory=HOPPER_EFFICIENCY.memory,
    attention=BLACKWELL_ATTENTION,  # B200's estimate (same Blackwell SM)
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table=B200_EFFICIENCY.gemm_table,  # the same Blackwell SMs
    source="MAMF table (GEMM bf16/fp8 ceiling); OpenXLA B200 table (GEMM by shape); Azure ND GB200 "
    "v6 (GEMM fp4); FlashAttention-4 headline on B200 (attention, derived)",
    assumed="memory (H100's STREAM fraction: no GB200 HBM figure); attention (B200's estimate); "
    "GEMM shape dependence (B200's); end_to_end (A100's)",
)

# ROCm docs (model-acceleration-libraries.rst), Triton FlashAttention-2 forward, d128, 16
# heads, 8k sequence on MI300X: 361.4 TFLOP/s (fp16), forward only -> x the FA2 ratio above.
CDNA3_ATTENTION = 361.4 / 1307.4 * FA_FWD_BWD_OVER_FWD

MI300X_EFFICIENCY = Efficiency(
    # MAMF table: MI300X bf16 668.4 of 1307.4 (PYTORCH_TUNABLEOP_ENABLED=1, ROCm 6.3).
    gemm=668.4 / 1307.4,
    # No reliable STREAM figure for MI300X HBM3 was found: H100's triad fraction stands in.
    memory=HOPPER_EFFICIENCY.memory,
    attention=CDNA3_ATTENTION,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table="mi300x-xla",
    source="MAMF table (GEMM bf16 ceiling); OpenXLA gfx942 table (GEMM by shape); ROCm docs Triton "
    "FA2 forward x FA2 fwd+bwd/fwd ratio (attention, derived)",
    assumed="memory (H100's STREAM fraction: no MI300X figure); fp8 GEMM ceiling (the bf16 fraction: "
    "the MAMF fp8 cell is blank); attention derived from a forward figure; end_to_end (A100's)",
)

MI325X_EFFICIENCY = Efficiency(
    # MAMF table: MI325X bf16 784.9 of 1307.4 (1000 W, PYTORCH_TUNABLEOP_ENABLED=1).
    gemm=784.9 / 1307.4,
    memory=HOPPER_EFFICIENCY.memory,
    attention=CDNA3_ATTENTION,  # same CDNA3 compute units as MI300X
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    gemm_table=MI300X_EFFICIENCY.gemm_table,  # the same CDNA3 compute units
    source="MAMF table (GEMM bf16 ceiling); OpenXLA gfx942 table (GEMM by shape, MI300X's); "
    "MI300X's attention estimate",
    assumed="memory (H100's STREAM fraction); attention (MI300X's estimate); fp8 GEMM ceiling (bf16 "
    "fraction); GEMM shape dependence (MI300X's); end_to_end (A100's)",
)

V100_EFFICIENCY = Efficiency(
    # No V100 measurement in our reference data: A100's fractions are assumed (same cuBLAS
    # tensor-core GEMM design); flash attention on Volta uses the same fraction.
    gemm=A100_EFFICIENCY.gemm,
    memory=A100_EFFICIENCY.memory,
    attention=A100_EFFICIENCY.attention,
    kernel_launch_s=KERNEL_LAUNCH_S,
    end_to_end=END_TO_END_FITTED_A100,
    source="assumed equal to A100 (no V100 measurement held)",
    assumed="every fraction (A100's); end_to_end (A100's)",
)
