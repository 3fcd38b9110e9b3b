"""The GPU catalog against its data sheets: dense peaks are the "with sparsity" figures halved,
capacities the CUDA totals in MiB, and every entry cites its source."""

from __future__ import annotations

import pytest

from simulator.system.hardware import GPU_ALIASES, GPU_CATALOG, get_gpu

MiB = 2**20


@pytest.mark.parametrize("name, dtype, sparse_tflops", [
    ("a100-80gb", "bf16", 624), ("a100-80gb", "tf32", 312),      # A100 datasheet, with sparsity
    ("h100-sxm-80gb", "bf16", 1979), ("h100-sxm-80gb", "fp8", 3958),  # H100 datasheet, SXM5
    ("h100-pcie-80gb", "bf16", 1513),
])
def test_dense_peak_is_half_the_sparsity_figure(name, dtype, sparse_tflops):
    assert get_gpu(name).peak(dtype) / 1e12 == pytest.approx(sparse_tflops / 2, rel=1e-3)


@pytest.mark.parametrize("name, mib", [("a100-80gb", 81920), ("a100-40gb", 40960), ("h100-sxm-80gb", 81559)])
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
