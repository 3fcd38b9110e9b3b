"""nccl-tests all-reduce bus bandwidth on 8x A100 NVSwitch (reference data for calibration and
validation).

Source: Azure/AI-benchmarking-guide, Azure_Results/ND_A100_v4_results.md, NCCL bandwidth
table: in-place all_reduce busbw (GB/s) on 8x A100-SXM4-80GB NVSwitch, NCCL 2.18.5.
Copied from shared/validation/published.yaml cases az-a100-allreduce-8gpu-* (confidence high).
"""

AZURE_A100_ALLREDUCE_BUSBW_GBPS = {
    1024: 0.04,
    65536: 2.7,
    1048576: 36.22,
    8388608: 89.99,
    67108864: 166.63,
    268435456: 213.87,
    1073741824: 228.1,
    8589934592: 231.58,
}
# Same table, 1 KiB row: time = 1024 / algbw(0.023 GB/s) = 44.8 us (derived in published.yaml).
AZURE_A100_1KIB_TIME_S = 4.48e-05
