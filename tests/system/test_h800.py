"""The H800 SXM5 catalog entry and DeepSeek's H800 training cluster (topologies/h800-ib-cluster.yaml),
checked against the figures they cite.

Cited figures:
- H800 SXM5 = the H100 SXM5's die and compute (aiwiki.ai/wiki/nvidia_h800; philisun.com, "NVIDIA
  H800 vs H100: A Technical Deep Dive"): bf16/fp16 1,979 TFLOPS and fp8 3,958 with sparsity
  (989.4 / 1,978.9 dense), 132 SMs, 80 GB HBM3 at 3.35 TB/s, TDP up to 700 W; NVLink 400 GB/s
  bidirectional instead of 900; FP64 about 1 TFLOPS.
- DeepSeek-V3 technical report (arXiv 2412.19437): Sec 3.1, 2,048 H800 GPUs, 8 per node with
  NVLink/NVSwitch, InfiniBand across nodes; Sec 3.2.2, NVLink 160 GB/s and IB 50 GB/s per GPU.
"""

from __future__ import annotations

import json

import pytest

from simulator.cli.main import main
from simulator.studies.calibrate.gpus import device_gpus
from simulator.system.comm.calibration import NCCL_CALIBRATION
from simulator.system.hardware import GPU_CATALOG, get_gpu
from simulator.system.hardware.gpu import TFLOPS, GBps, MiB
from simulator.system.topology.loader import load_topology, topology_names
from simulator.system.topology.summary import summary
from tests.helpers import PROJECT_ROOT

H800_NVLINK_BIDIR = 400 * GBps  # H800 NVLink, bidirectional (H100 SXM5: 900)
REPORT_NVLINK = 160 * GBps  # DeepSeek-V3 report Sec 3.2.2, per GPU
REPORT_IB = 50 * GBps  # DeepSeek-V3 report Sec 3.2.2, per GPU (400 Gb/s IB)
TOPOLOGY = PROJECT_ROOT / "topologies" / "h800-ib-cluster.yaml"


@pytest.mark.parametrize("alias", ["h800", "H800", "h800-80gb", "h800-sxm5-80gb", "h800-sxm"])
def test_aliases_name_the_h800(alias):
    assert get_gpu(alias) is GPU_CATALOG["h800-sxm-80gb"]


@pytest.mark.parametrize(
    "dtype, sparse_tflops", [("bf16", 1979), ("fp16", 1979), ("fp8", 3958), ("tf32", 989)]
)
def test_tensor_peaks_are_the_data_sheet_halved(dtype, sparse_tflops):
    # Sparse figures / 2 = dense (the catalog's convention).
    assert get_gpu("h800").peak(dtype) / TFLOPS == pytest.approx(sparse_tflops / 2, rel=1e-3)


def test_memory_sms_and_links_are_the_cited_figures():
    h800 = get_gpu("h800")
    assert h800.arch == "hopper" and h800.sm_count == 132
    assert h800.hbm_bw_bytes_per_s == 3.35e12
    assert 80e9 < h800.memory_bytes < 80 * 2**30  # "80 GB"; 81,559 MiB as the H100 80GB HBM3
    assert h800.memory_bytes == 81559 * MiB
    assert h800.scaleup_bw_bytes_per_s == H800_NVLINK_BIDIR / 2  # per direction
    assert h800.peak("fp64") / TFLOPS == pytest.approx(1.0)  # cut, unlike the H100's 33.5
    assert "700 W" in h800.source and "2412.19437" in h800.source


def test_compute_is_the_h100_sxm5s_and_the_nvlink_is_its_own():
    h800, h100 = get_gpu("h800"), get_gpu("h100-sxm-80gb")
    assert {k: v for k, v in h800.peak_flops.items() if k != "fp64"} == {
        k: v for k, v in h100.peak_flops.items() if k != "fp64"
    }
    assert h800.hbm_bw_bytes_per_s == h100.hbm_bw_bytes_per_s
    # Compute-kernel fractions shared with the H100 SXM5, said as an assumption.
    e, h = h800.efficiency, h100.efficiency
    assert (e.gemm, e.gemm_by_dtype, e.memory, e.attention, e.gemm_table, e.end_to_end) == (
        h.gemm,
        h.gemm_by_dtype,
        h.memory,
        h.attention,
        h.gemm_table,
        h.end_to_end,
    )
    assert "H100 SXM5" in e.assumed and "H100 SXM5" in e.source
    assert h800.scaleup_bw_bytes_per_s == 200 * GBps < h100.scaleup_bw_bytes_per_s


def test_nccl_device_name_maps_to_the_h800():
    assert device_gpus("NVIDIA H800") == ("h800-sxm-80gb",)
    assert device_gpus("NVIDIA H800 80GB HBM3") == ("h800-sxm-80gb",)
    assert device_gpus("NVIDIA H100 80GB HBM3") == ("h100-sxm-80gb",)


def test_cluster_is_the_reports_2048_gpus_at_the_h800_nvlink_rate():
    assert "h800-ib-cluster" in topology_names()
    topo = load_topology("h800-ib-cluster")
    s = summary(topo)
    assert topo.gpu == "h800-sxm-80gb" and topo.source
    assert (s["gpus"], s["hosts"], s["gpus_per_host"]) == (2048, 256, 8)
    nvlink = s["links"]["nvlink"]
    assert nvlink["min_bw_bytes_per_s"] == nvlink["max_bw_bytes_per_s"] == H800_NVLINK_BIDIR / 2
    assert nvlink["max_bw_bytes_per_s"] == get_gpu(topo.gpu).scaleup_bw_bytes_per_s
    ib = s["links"]["ib"]
    assert ib["min_bw_bytes_per_s"] == ib["max_bw_bytes_per_s"] == REPORT_IB  # 400 Gb/s
    assert s["vertices"]["nic"] == 2048  # one NIC per GPU
    assert s["bisection_bw_per_gpu_bytes_per_s"] == REPORT_IB  # non-blocking
    assert topo.nvls


def test_hopper_nvlink_efficiency_reaches_the_reports_160_gb_s():
    # NCCL's ring reaches 370 of 450 GB/s on H100; the same fraction of the H800's 200 GB/s is
    # within 3% of the 160 GB/s the DeepSeek-V3 report gives.
    achieved = NCCL_CALIBRATION.efficiency("nvlink", "hopper") * H800_NVLINK_BIDIR / 2
    assert achieved == pytest.approx(REPORT_NVLINK, rel=0.03)


def test_topology_show_and_validate_of_a_small_scenario(tmp_path, capsys):
    assert main(["topology", "show", str(TOPOLOGY)]) == 0
    out = capsys.readouterr().out
    assert "h800-sxm-80gb" in out and "200.0 GB/s" in out and "2048" in out
    scenario = {
        "name": "h800-small",
        "model": {"preset": "llama2-7b"},
        "training": {"strategy": "zero3", "seq_len": 2048, "micro_batch_size": 1},
        "cluster": {"topology": "h800-ib-cluster", "num_hosts": 2},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(json.dumps(scenario))  # JSON is YAML
    assert main(["validate", str(path)]) == 0
    by_path = {**scenario, "cluster": {"topology": str(TOPOLOGY), "num_hosts": 2}}
    path.write_text(json.dumps(by_path))
    assert main(["validate", str(path)]) == 0
