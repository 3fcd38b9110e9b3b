"""The GPU catalog against its data sheets: dense peaks are the "with sparsity" figures halved,
capacities the CUDA totals in MiB, and every entry cites its source."""

from __future__ import annotations

import pytest

from simulator.system.hardware import GPU_ALIASES, GPU_CATALOG, get_gpu

MiB = 2**20


@pytest.mark.parametrize(
    "name, dtype, sparse_tflops",
    [
        ("a100-80gb", "bf16", 624),
        ("a100-80gb", "tf32", 312),  # A100 datasheet, with sparsity
        ("h100-sxm-80gb", "bf16", 1979),
        ("h100-sxm-80gb", "fp8", 3958),  # H100 datasheet, SXM5
        ("h100-pcie-80gb", "bf16", 1513),
    ],
)
def test_dense_peak_is_half_the_sparsity_figure(name, dtype, sparse_tflops):
    assert get_gpu(name).peak(dtype) / 1e12 == pytest.approx(sparse_tflops / 2, rel=1e-3)


@pytest.mark.parametrize(
    "name, mib", [("a100-80gb", 81920), ("a100-40gb", 40960), ("h100-sxm-80gb", 81559)]
)
def test_capacity_is_the_cuda_total(name, mib):
    assert get_gpu(name).memory_bytes == mib * MiB


def test_v100_has_no_bf16_units():
    assert not get_gpu("v100-32gb").supports("bf16") and get_gpu("v100-32gb").supports("fp16")


def test_every_gpu_cites_sources_and_aliases_resolve():
    for gpu in GPU_CATALOG.values():
        assert gpu.source and gpu.efficiency.source
        assert 0 < gpu.efficiency.gemm <= 1 and 0 < gpu.efficiency.memory <= 1
    for alias, name in GPU_ALIASES.items():
        assert get_gpu(alias.upper()) is GPU_CATALOG[name]


# ---- Hopper, Blackwell and CDNA3 entries ------------------------------------------------------


@pytest.mark.parametrize(
    "name, dtype, sparse_tflops",
    [
        ("b200", "bf16", 4500),
        ("b200", "fp8", 9000),
        ("b200", "fp4", 18000),  # HGX B200 table, sparse
        ("gb200", "bf16", 5000),
        ("gb200", "fp8", 10000),
        ("gb200", "fp4", 20000),  # GB200 NVL72 table, sparse
        ("h100-nvl", "bf16", 1671),
        ("h100-nvl", "fp8", 3341),  # H100 NVL column
    ],
)
def test_blackwell_and_h100_nvl_dense_peaks_are_half_the_sparsity_figures(
    name, dtype, sparse_tflops
):
    assert get_gpu(name).peak(dtype) / 1e12 == pytest.approx(sparse_tflops / 2, rel=1e-3)


@pytest.mark.parametrize(
    "dtype, flops_per_cu_per_clock",
    [("bf16", 2048), ("fp16", 2048), ("fp8", 4096), ("tf32", 1024), ("fp32", 256)],
)
def test_cdna3_peaks_are_cus_times_clock_times_rate(dtype, flops_per_cu_per_clock):
    # AMD ROCm docs (mi300.md): 304 CUs at 2,100 MHz, FLOPs per CU per clock by datatype.
    for name in ("mi300x", "mi325x"):
        assert get_gpu(name).peak(dtype) == pytest.approx(
            304 * 2.1e9 * flops_per_cu_per_clock, rel=1e-3
        )


@pytest.mark.parametrize(
    "name, total_bytes",
    [
        ("mi300x", 205822885888),  # rocm-smi "VRAM Total Memory (B)"
        ("b200", 183359 * MiB),  # nvidia-smi
        ("gb200", 189471 * MiB),
        ("h100-nvl", 95830 * MiB),
    ],
)
def test_new_capacities_are_the_driver_totals(name, total_bytes):
    assert get_gpu(name).memory_bytes == total_bytes


@pytest.mark.parametrize(
    "name, gemm",
    [
        ("h100", 794.5 / 989),
        ("h200", 794.5 / 989),
        ("b200", 1745.0 / 2250),
        ("gb200", 1822.0 / 2500),
        ("mi300x", 668.4 / 1307.4),
        ("mi325x", 784.9 / 1307.4),
        ("a100", 271.2 / 312),
    ],
)
def test_gemm_fractions_are_the_mamf_table(name, gemm):
    # stas00/ml-engineering MAMF table (bf16 TFLOP/s of the dense peak), the same benchmark on every GPU.
    assert get_gpu(name).efficiency.gemm == pytest.approx(gemm)


def test_fp8_gemm_fraction_is_its_own_and_fp4_falls_back_where_unmeasured():
    h100 = get_gpu("h100").efficiency
    assert (
        h100.gemm_for("fp8") == pytest.approx(1402.6 / 1979) and h100.gemm_for("bf16") == h100.gemm
    )
    assert get_gpu("b200").efficiency.gemm_for("fp4") == get_gpu("b200").efficiency.gemm


def test_every_gpu_says_its_architecture_link_rate_and_what_was_assumed():
    for gpu in GPU_CATALOG.values():
        assert (
            gpu.arch in ("volta", "ampere", "hopper", "blackwell", "cdna3")
            and gpu.scaleup_bw_bytes_per_s > 0
        )
        if gpu.name.startswith(("b200", "gb200", "mi3")):
            assert "memory" in gpu.efficiency.assumed  # no public HBM STREAM figure for them
    assert get_gpu("h100").efficiency.end_to_end == get_gpu("a100").efficiency.end_to_end
