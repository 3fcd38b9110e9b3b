"""The free constants of the collective cost model, in one place: per-link-kind bandwidth
efficiencies and NCCL protocols (wire efficiency and latencies). `NCCL_CALIBRATION` cites
where each number comes from; a user's calibration profile replaces it."""

from __future__ import annotations

from dataclasses import dataclass

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all")


@dataclass(frozen=True)
class Protocol:
    """An NCCL protocol: wire efficiency and its latencies."""

    name: str
    efficiency: float  # data bytes per wire byte
    base_latency_s: float  # once per collective call
    step_latency_s: float  # software overhead per algorithm step
    net_step_latency_s: float  # extra per step that crosses a NIC (proxy thread, RDMA)


@dataclass(frozen=True)
class Calibration:
    """Everything tuned to measurements, in one place; `NCCL_CALIBRATION` cites the sources."""

    link_efficiency: tuple[tuple[str, float], ...]
    protocols: tuple[Protocol, ...]

    def efficiency(self, link_kind: str) -> float:
        return dict(self.link_efficiency)[link_kind]


NCCL_CALIBRATION = Calibration(
    link_efficiency=(
        # NVIDIA/nccl-tests#149 (maintainer): NVLink3 25 GB/s line rate ~20 GB/s effective with
        # 128 B payloads (240 GB/s for 12 links), ~230 GB/s observed; Azure ND A100 v4 table:
        # 231.6 GB/s busbw at 8 GiB. 230 / 300 = 0.767.
        ("nvlink", 230.0 / 300.0),
        # NCCL src/graph/topo.cc sets PCIe bw = width*speed/80, i.e. 75% of the raw rate
        # (Gen3 x16 = 12 GB/s, topo.h PCI_BW); no PCIe-only nccl-tests figure in our data.
        ("pcie", 0.75),
        # No measurement in our data; same 75% rule as PCIe (both are load/store fabrics).
        ("cpu_link", 0.75),
        # NVIDIA/nccl#412 (maintainer): ~24 GB/s busbw per HDR 200 Gb/s NIC (25 GB/s line).
        ("ib", 24.0 / 25.0),
        # RoCE assumed like IB (same NICs, same RDMA path).
        ("ethernet", 24.0 / 25.0),
        ("ideal", 1.0),
    ),
    protocols=(
        # Efficiencies: LL sends 8-byte lines of 4 data + 4 flag bytes; LL128 uses 120 of
        # 128 bytes (NCCL src/include/device.h, NCCL_LL128_DATAELEMS / LINEELEMS); Simple
        # sends raw data.
        # Per-step software latency: LL128 and Simple from NCCL src/graph/tuning.cc hwLat
        # (NVLink, Ring: 1.9 and 3.4 us) less our 0.7 us GPU->NVSwitch->GPU route latency.
        # LL's step (1.5 us) and base (3 us) are fitted to two latency figures: 8x A100 1 KiB
        # all-reduce 45 us (Azure ND A100 v4) and 2x A100 32 B 10.1 us (NVIDIA/nccl#583).
        # LL128/Simple base latencies (122/134 us per call) are fitted once to the 8x A100
        # bandwidth ramp, 1 MiB..8 GiB (Azure ND A100 v4 table; comparison printed by
        # tests/test_collectives.py). They stand for the pipeline start-up that makes busbw
        # climb slowly with size; charged once per call, not per step, so large rings do
        # not inherit an 8-GPU fit.
        # Network extras per step crossing a NIC: tuning.cc hwLat NET minus NVLINK, Ring
        # (LL 2.7-0.6, LL128 4.0-1.9, Simple 14-3.4 us).
        Protocol("LL", 0.5, 3.0e-6, 1.5e-6, 2.1e-6),
        Protocol("LL128", 120.0 / 128.0, 122e-6, 1.2e-6, 2.1e-6),
        Protocol("Simple", 1.0, 134e-6, 2.7e-6, 10.6e-6),
    ),
)

# Hand-checkable model: full line rate, link latencies only, one protocol.
IDEAL_CALIBRATION = Calibration(
    link_efficiency=tuple((k, 1.0) for k, _ in NCCL_CALIBRATION.link_efficiency),
    protocols=(Protocol("Simple", 1.0, 0.0, 0.0, 0.0),),
)


def busbw_factor(op: str, n: int) -> float:
    """nccl-tests doc/PERFORMANCE.md: busbw = algbw x this factor."""
    if n <= 1:
        return 1.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0

