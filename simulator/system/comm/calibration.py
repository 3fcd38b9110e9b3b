"""The constants of the collective cost model, in one place.

NCCL's own tuning model (src/graph/tuning.cc, nccl_tables.py) is the skeleton: per-algorithm
and per-protocol latencies, per-architecture bandwidth caps and NVLS efficiencies. On top of
it clustersim routes every flow on the topology and charges link efficiencies, and a few free
constants are calibrated on public nccl-tests tables, each named below with its data set:

- NVLink efficiency per architecture: what a ring reaches of the line rate (maintainers'
  figures; Blackwell from Azure's ND GB200 v6 ring table).
- A100 per-step latency (+1.1 us over NCCL's table): fitted to two A100 latency figures.
- Ring LL128 and Simple pipeline fill: fitted to the 8x A100 Azure ND A100 v4 table.
- NVLS latency, fill and per-chunk-round sync: fitted to Azure's 8x H100 and 8x H200 NVLS tables.
- xGMI efficiency: fitted to one RCCL 8x MI300X figure.

Everything else comes from data sheets or NCCL's source. `NCCL_CALIBRATION` is the default; a
user's calibration profile (`clustersim calibrate`, constants named in system/knobs.py) sets some
of its figures, `IDEAL_CALIBRATION` is the hand-checkable one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.system.comm import nccl_tables as nccl
from simulator.system.comm.nccl_tables import GBPS, US
from simulator.system.hardware.gpu import ARCHS as GPU_ARCHS

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all")
# Algorithm families with their own rows in NCCL's tables, and "p2p" (pipeline sends and
# DeepEP's chunked all-to-all: P2P_* below); NCCL's all-to-all and clustersim's hierarchical
# all-reduce use the ring's.
FAMILIES = ("ring", "tree", "nvls", "nvls_tree", "collnet", "pat", "p2p")
ARCHS = GPU_ARCHS  # NCCL's per-architecture rows: one per GPU architecture of the catalog


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """An NCCL protocol: data bytes per wire byte. LL sends 8-byte lines of 4 data + 4 flag
    bytes; LL128 uses 120 of 128 bytes (src/include/device.h, NCCL_LL128_DATAELEMS /
    LINEELEMS); Simple sends raw data."""

    name: str
    efficiency: float


@dataclass(frozen=True, kw_only=True)
class Step:
    """The figures of one (algorithm family, protocol)."""

    base_s: float = 0.0  # once per call (NCCL baseLat)
    step_s: float = 0.0  # per step inside a node, beyond the route's link latencies
    pci_step_s: float = 0.0  # the same where the node's GPUs talk over PCIe (no NVLink)
    net_step_s: float = 0.0  # per step that crosses the network, beyond its route's latencies
    per_rank_s: float = 0.0  # per rank of the group (PAT's nRanks x 2.8 us)
    bw_factor: float = 1.0  # NCCL's algorithm bandwidth factor
    fill_steps: float = 0.0  # pipeline fill and drain, in steps of the pipeline unit
    fill_unit_bytes: float = (
        0.0  # largest unit a rank sends per step (ring); 0 = NCCL's NVLS chunks
    )
    net_fill_unit_bytes: float = 0.0  # the unit where the phase crosses the network (0: the same)
    round_s: float = 0.0  # synchronization per chunk round (NVLS)


@dataclass(frozen=True, kw_only=True)
class ArchFigures:
    """What depends on the GPU architecture."""

    link_efficiency: tuple[tuple[str, float], ...] = ()  # overrides by link kind
    step_extra_s: float = 0.0  # per intra-node step, on top of NCCL's hwLat
    net_step_extra_s: float = (
        0.0  # per network step, on top of NCCL's hwLat (a calibration profile's)
    )
    ll_cap_Bps: float = math.inf  # LL bus-bandwidth cap on one node (llMaxBws)
    nvls_efficiency: float = 0.0  # 0: no NVLink SHARP
    nvls_channels: tuple[int, int] = (16, 16)  # (one node, several nodes)


@dataclass(frozen=True)
class Calibration:
    """Everything tuned to measurements, in one place (hashable: contexts key on it)."""

    link_efficiency: tuple[tuple[str, float], ...]
    protocols: tuple[Protocol, ...]
    steps: tuple[tuple[tuple[str, str], Step], ...]  # ((family, protocol), figures)
    archs: tuple[tuple[str, ArchFigures], ...]
    ll_cap_nodes_Bps: tuple[
        tuple[int, float], ...
    ] = ()  # LL cap across nodes, by minimum node count
    # A calibration profile's (`clustersim calibrate`): both keep built-in predictions at 1 and 0.
    # bandwidth_scale: the share of the modelled link bandwidth a system reaches, on every link
    # kind alike (a common factor on the link efficiencies: a slower clock, NCCL build or fabric
    # setting than the tables' systems); NCCL's LL caps are the tuner's, not the links', and stay.
    bandwidth_scale: float = 1.0
    # call_overhead_s: once per collective call, beyond NCCL's baseLat (host launch, NCCL's
    # per-call setup as nccl-tests times it).
    call_overhead_s: float = 0.0

    def efficiency(self, link_kind: str, arch: str = "ampere") -> float:
        """A link kind's efficiency (bandwidth_scale is applied separately, in CommContext)."""
        own = dict(self.arch(arch).link_efficiency)
        return own.get(link_kind, dict(self.link_efficiency)[link_kind])

    def step(self, family: str, protocol: str) -> Step | None:
        return dict(self.steps).get((family, protocol))

    def arch(self, arch: str) -> ArchFigures:
        return dict(self.archs).get(arch, ArchFigures())

    def ll_cap(self, arch: str, nodes: int) -> float:
        if nodes <= 1:
            return self.arch(arch).ll_cap_Bps
        caps = [cap for least, cap in self.ll_cap_nodes_Bps if nodes >= least]
        return caps[-1] if caps else math.inf


def _nccl_step(family: str, protocol: str, extra_base_s: float = 0.0, **fitted: float) -> Step:
    """NCCL's latencies of one (family, protocol): baseLat, and hwLat per step less the route
    latency the topology's links already charge (0.7 us GPU -> NVSwitch -> GPU; 1 us over a
    PCIe switch)."""
    p, hw = nccl.PROTOCOLS.index(protocol), nccl.HW_LAT_US
    return Step(
        base_s=nccl.BASE_LAT_US[family][p] * US + extra_base_s,
        step_s=(hw["nvlink"][family][p] - 0.7) * US,
        pci_step_s=(hw["pci"][family][p] - 1.0) * US,
        net_step_s=(hw["net"][family][p] - 0.7) * US,
        **fitted,
    )


# Ring pipeline fill (fitted to the Azure ND A100 v4 table, 1 MiB .. 8 GiB): a call spends
# FILL_STEPS steps of up to FILL_UNIT bytes per rank filling and draining the ring before
# and after every link is busy. It stands for the slow bandwidth ramp of nccl-tests tables
# between 4 MiB and 512 MiB, which NCCL's tuner does not model.
RING_FILL_STEPS = 7.0
RING_FILL_UNIT = 4 * 2**20
# NVLS (fitted to Azure's 8x H100 and 8x H200 NCCL_ALGO=NVLS tables): one chunk round of
# fill and 3.75 us of cross-GPU synchronization per chunk round (channels x heads x NCCL's
# chunk, nccl_tables.nvls_chunk), on NCCL's 25 us NVLS latency (hwLat) + 2 us.
NVLS_FILL_STEPS = 1.0
NVLS_ROUND_S = 3.75 * US
NVLS_EXTRA_S = 2.0 * US
# Point-to-point (family "p2p": a pipeline send, and the deepep algorithm's all-to-all, whose
# kernels pipeline chunks of a few tokens: algorithms/__init__.py): NCCL sends a p2p transfer
# in chunks of NCCL_P2P_NVL_CHUNKSIZE (512 KiB) between GPUs of a node and NCCL_P2P_NET_CHUNKSIZE (128 KiB)
# over the network (their defaults, NCCL src/init.cc), pipelined through its buffer, so the
# transfer's fill and drain is one chunk at its rate (the least a chunked pipeline pays). The
# ring's fitted fill (RING_FILL_*: a ring all-reduce's bandwidth ramp on Azure's table) is not
# taken for a lone send. The all-to-all's grouped sends keep the ring's row, as XLA's measured
# H100 all-to-all shows (algorithms/__init__.py). NCCL's tuning tables have no p2p row: the
# ring's baseLat and hwLat stand in. NCCL runs p2p in LL up to NCCL_P2P_LL_THRESHOLD (16 KiB)
# and Simple above (src/enqueue.cc): no LL128.
P2P_FILL_STEPS = 1.0
P2P_NVL_CHUNK = 512 * 2**10
P2P_NET_CHUNK = 128 * 2**10
P2P_LL_THRESHOLD = 16 * 2**10


def p2p_protocol(size: int) -> str:
    """NCCL's protocol for a send: LL up to P2P_LL_THRESHOLD bytes, Simple above."""
    return "LL" if size <= P2P_LL_THRESHOLD else "Simple"


_NCCL_STEPS = (
    (("ring", "LL"), _nccl_step("ring", "LL")),
    (
        ("ring", "LL128"),
        _nccl_step("ring", "LL128", fill_steps=RING_FILL_STEPS, fill_unit_bytes=RING_FILL_UNIT),
    ),
    (
        ("ring", "Simple"),
        _nccl_step("ring", "Simple", fill_steps=RING_FILL_STEPS, fill_unit_bytes=RING_FILL_UNIT),
    ),
    (("tree", "LL"), _nccl_step("tree", "LL", bw_factor=nccl.TREE_LL_FACTOR)),
    (("tree", "LL128"), _nccl_step("tree", "LL128")),
    (("tree", "Simple"), _nccl_step("tree", "Simple", bw_factor=nccl.TREE_SIMPLE_FACTOR)),
    (
        ("nvls", "Simple"),
        _nccl_step(
            "nvls",
            "Simple",
            extra_base_s=NVLS_EXTRA_S,
            fill_steps=NVLS_FILL_STEPS,
            round_s=NVLS_ROUND_S,
        ),
    ),
    (
        ("nvls_tree", "Simple"),
        _nccl_step(
            "nvls_tree",
            "Simple",
            extra_base_s=NVLS_EXTRA_S,
            fill_steps=NVLS_FILL_STEPS,
            round_s=NVLS_ROUND_S,
        ),
    ),
    (("collnet", "Simple"), _nccl_step("collnet", "Simple")),
    (("p2p", "LL"), _nccl_step("ring", "LL")),
    (
        ("p2p", "Simple"),
        _nccl_step(
            "ring",
            "Simple",
            fill_steps=P2P_FILL_STEPS,
            fill_unit_bytes=P2P_NVL_CHUNK,
            net_fill_unit_bytes=P2P_NET_CHUNK,
        ),
    ),
    (
        ("pat", "Simple"),
        _nccl_step("pat", "Simple", bw_factor=nccl.PAT_FACTOR, per_rank_s=2.8 * US),
    ),
)

NCCL_CALIBRATION = Calibration(
    link_efficiency=(
        # NVIDIA/nccl-tests#149 (maintainer): NVLink3 25 GB/s line rate ~20 GB/s effective with
        # 128 B payloads (240 GB/s for 12 links), ~230 GB/s observed; Azure ND A100 v4 table:
        # 231.6 GB/s busbw at 8 GiB. 230 / 300 = 0.767. Newer NVLinks: ArchFigures below.
        ("nvlink", 230.0 / 300.0),
        # NCCL src/graph/topo.cc sets PCIe bw = width*speed/80, i.e. 75% of the raw rate
        # (Gen3 x16 = 12 GB/s, topo.h PCI_BW); no PCIe-only nccl-tests figure in our data.
        ("pcie", 0.75),
        # No measurement in our data; same 75% rule as PCIe (both are load/store fabrics).
        ("cpu_link", 0.75),
        # NVIDIA/nccl#412 (maintainer): ~24 GB/s busbw per HDR 200 Gb/s NIC (25 GB/s line);
        # NVIDIA/nccl-tests#290 (maintainer): 46-48 GB/s per NDR 400 Gb/s NIC (0.92-0.96).
        ("ib", 24.0 / 25.0),
        # RoCE and AWS EFA assumed like IB (RDMA NICs at line rate); no figure of their own held.
        ("ethernet", 24.0 / 25.0),
        ("efa", 24.0 / 25.0),
        # stas00/ml-engineering network/README.md: RCCL all-reduce on 8x MI300X, 4 GiB: 312.9
        # GB/s busbw over 7 xGMI links x 64 GB/s per GPU = 448 GB/s (the rings use every link).
        ("xgmi", 312.9 / 448.0),
        ("ideal", 1.0),
    ),
    protocols=(
        Protocol(name="LL", efficiency=0.5),
        Protocol(name="LL128", efficiency=120.0 / 128.0),
        Protocol(name="Simple", efficiency=1.0),
    ),
    steps=_NCCL_STEPS,
    archs=(
        ("volta", ArchFigures(ll_cap_Bps=nccl.LL_MAX_BW_ONE_NODE["volta"] * GBPS)),
        # A100 steps take 1.1 us longer than NCCL's hwLat: fitted to Azure ND A100 v4's 1 KiB
        # all-reduce (44.8 us on 8 GPUs) and NVIDIA/nccl#583's 2x A100 32 B (10.1 us).
        (
            "ampere",
            ArchFigures(step_extra_s=1.1 * US, ll_cap_Bps=nccl.LL_MAX_BW_ONE_NODE["ampere"] * GBPS),
        ),
        # NVIDIA/nccl-tests#212 (maintainer): "450GB/s is the line rate ... NCCL can get an
        # effective NVLink bandwidth of 370GB/s" on H100.
        (
            "hopper",
            ArchFigures(
                link_efficiency=(("nvlink", 370.0 / 450.0),),
                ll_cap_Bps=nccl.LL_MAX_BW_ONE_NODE["hopper"] * GBPS,
                nvls_efficiency=nccl.NVLS_EFFICIENCY["hopper"],
                nvls_channels=nccl.NVLS_CHANNELS["hopper"],
            ),
        ),
        # Azure AI-benchmarking-guide ND GB200 v6: ring all-reduce 679.6 GB/s busbw at 8 GiB of
        # 900 GB/s NVLink5 (NVIDIA/nccl#2140: 8x B300 ring 695).
        (
            "blackwell",
            ArchFigures(
                link_efficiency=(("nvlink", 680.0 / 900.0),),
                ll_cap_Bps=nccl.LL_MAX_BW_ONE_NODE["blackwell"] * GBPS,
                nvls_efficiency=nccl.NVLS_EFFICIENCY["blackwell"],
                nvls_channels=nccl.NVLS_CHANNELS["blackwell"],
            ),
        ),
        ("cdna3", ArchFigures()),  # RCCL: no LL cap or NVLS figures of its own held
    ),
    ll_cap_nodes_Bps=tuple((nodes, cap * GBPS) for nodes, cap in nccl.LL_MAX_BW_NODES.items()),
)

# Hand-checkable model: full line rate, link latencies only, one protocol; NVLS where NCCL has it.
IDEAL_CALIBRATION = Calibration(
    link_efficiency=tuple((k, 1.0) for k, _ in NCCL_CALIBRATION.link_efficiency),
    protocols=(Protocol(name="Simple", efficiency=1.0),),
    steps=tuple(((family, "Simple"), Step()) for family in FAMILIES),
    archs=tuple(
        (a, ArchFigures(nvls_efficiency=1.0 if a in nccl.NVLS_EFFICIENCY else 0.0)) for a in ARCHS
    ),
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
