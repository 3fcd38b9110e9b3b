"""NCCL's own cost-model constants, copied from its public source (NVIDIA/nccl at v2.30.7,
src/graph/tuning.cc unless noted), in its units (microseconds, GB/s) and index order.

These are the skeleton of the collective model (calibration.py): per-algorithm and
per-protocol latencies, per-architecture bandwidth caps and efficiencies. Nothing here is
fitted by clustersim.
"""

from __future__ import annotations

US = 1e-6
GBPS = 1e9
PROTOCOLS = ("LL", "LL128", "Simple")

# ncclTunerConstantsDefaults.baseLatencies [algo][LL, LL128, Simple] (us): once per call.
# CollNet, NVLS and NVLSTree carry 0 since v2.19 (their latency is all in hwLat below).
BASE_LAT_US = {
    "tree": (6.8, 14.0, 8.4),
    "ring": (6.6, 14.0, 8.4),
    "collnet": (0.0, 0.0, 0.0),
    "nvls": (0.0, 0.0, 0.0),
    "nvls_tree": (0.0, 0.0, 0.0),
    "pat": (8.0, 8.0, 8.0),
}

# hwLatencies [NVLINK | PCI | NET][algo][LL, LL128, Simple] (us): per algorithm step inside a
# node (NVLink or PCIe) and across the network. "collnet" is CollNetDirect's row.
HW_LAT_US = {
    "nvlink": {
        "tree": (0.6, 1.25, 4.0),
        "ring": (0.6, 1.9, 3.4),
        "collnet": (0.0, 0.0, 3.7),
        "nvls": (0.0, 0.0, 25.0),
        "nvls_tree": (0.0, 0.0, 25.0),
        "pat": (0.0, 0.0, 4.0),
    },
    "pci": {
        "tree": (1.0, 1.9, 4.0),
        "ring": (1.0, 2.5, 5.7),
        "collnet": (0.0, 0.0, 3.7),
        "nvls": (0.0, 0.0, 0.0),
        "nvls_tree": (0.0, 0.0, 0.0),
        "pat": (0.0, 0.0, 4.0),
    },
    "net": {
        "tree": (5.0, 8.5, 14.0),
        "ring": (2.7, 4.0, 14.0),
        "collnet": (0.0, 0.0, 31.0),
        "nvls": (0.0, 0.0, 18.0),
        "nvls_tree": (0.0, 0.0, 20.9),
        "pat": (0.0, 0.0, 14.0),
    },
}

# llMaxBws (GB/s): the LL protocol's bus-bandwidth cap. One node: by architecture (Volta,
# Ampere, Hopper, Blackwell rows); several nodes: the row of the CPU vendor (Intel's here,
# as on DGX systems) and column N2 (2 nodes) or N4 (4 and more).
LL_MAX_BW_ONE_NODE = {"volta": 39.0, "ampere": 87.7, "hopper": 141.0, "blackwell": 2 * 141.0}
LL_MAX_BW_NODES = {2: 39.0, 4: 20.4}

# Per-algorithm bandwidth factors of ncclTopoTuneModel: ring LL128 and tree all-reduce
# "busBw = 0.92 * busBw" (~120/128 of the line), tree LL "busBw / 3.8" (vs ring LL's 0.5),
# PAT "busBw *= 0.75"; NVLS "nvlsEfficiency" per architecture (v2.28+: Hopper 0.85,
# Blackwell 0.74; 0 = unsupported before Hopper).
TREE_SIMPLE_FACTOR = 0.92
TREE_LL_FACTOR = (1 / 3.8) / 0.5  # relative to the LL wire efficiency applied to every algorithm
PAT_FACTOR = 0.75
NVLS_EFFICIENCY = {"hopper": 0.85, "blackwell": 0.74}

# src/transport/nvls.cc: NVLS_NCHANNELS_SM90 16, NVLS_NCHANNELS_SM100_NVL 24 (one NVLink
# domain) and NVLS_NCHANNELS_SM100 32 (several nodes). src/include/device.h:
# NCCL_MAX_NVLS_ARITY 32 (the NVLS graph has min(32, local GPUs) heads, src/graph/search.cc).
NVLS_CHANNELS = {"hopper": (16, 16), "blackwell": (24, 32)}  # (one node, several nodes)
NVLS_MAX_ARITY = 32
# The CTAs (one per channel) an NCCL collective kernel holds on each GPU while it runs (the
# engine's interference, execution/engine.py). Ring, tree, PAT and CollNet inside one host:
# NCCL's INFO line "24 coll channels, 24 collnet channels, 16 nvls channels, 32 p2p channels"
# on 8x H100 HGX hosts (logs in public issues, NCCL 2.2x), assumed for every GPU. Across hosts
# the ring search finds one channel per NIC at network speed and ncclTopoPostset doubles the
# channels (src/graph/connect.cc): 2 per NIC, up to the one-host count ("16 coll channels"
# with 8 NICs per host). NVLS: NVLS_CHANNELS above. A send: NCCL_NCHANNELS_PER_NET_PEER's
# default 2 (src/graph/paths.cc), assumed for sends inside a host too.
COLL_CTAS = 24
CTAS_PER_NIC = 2
P2P_CTAS = 2
NVLS_CHUNK = 131072  # NCCL_NVLS_CHUNKSIZE default, 128 KiB


def nvls_chunk(nbytes: float, concurrent_ops: int) -> int:
    """NVLS all-reduce chunk size (src/enqueue.cc, topoGetAlgoInfo): 128 KiB, halved below 64,
    8 and 2 x (channels x heads x chunk) bytes, down to 16 KiB."""
    return _chunk_ladder(NVLS_CHUNK, nbytes, concurrent_ops, ((64, 65536), (8, 32768), (2, 16384)))


def nvls_tree_chunk(nbytes: float, concurrent_ops: int, nodes: int) -> int:
    """NVLSTree chunk size (same function): 128 KiB (64 KiB from 4 nodes), halved below 16, 4
    and 1 x (channels x heads x chunk) bytes, down to 32 KiB."""
    start = NVLS_CHUNK if nodes < 4 else 65536
    return _chunk_ladder(start, nbytes, concurrent_ops, ((16, 131072), (4, 65536), (1, 32768)))


def _chunk_ladder(
    chunk: int, nbytes: float, concurrent_ops: int, rungs: tuple[tuple[int, int], ...]
) -> int:
    """enqueue.cc's ladder: at each rung (k, size), a chunk above `size` becomes `size` when the
    message is under k x concurrent ops x the current chunk."""
    for k, size in rungs:
        if nbytes < k * concurrent_ops * chunk and chunk > size:
            chunk = size
    return chunk
