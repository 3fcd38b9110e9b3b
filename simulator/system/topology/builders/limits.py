"""Bounds on a topology file's numbers, checked before anything is built.

A typo (gpus_per_host: 100000, dims: [1000, 1000, 1000], bw: 400 B/s) must be refused at once
with its field, not run into minutes of building, a MemoryError or a step that never ends.
The bounds are generous next to every system shipped today; each says where it comes from.
"""

from __future__ import annotations

# The largest cluster clustersim builds: 2^18 GPUs (e.g. 32,768 hosts of 8). Larger inputs are
# refused before anything is built (a typo such as num_hosts: 1000000000 would otherwise take
# minutes and tens of GB).
MAX_GPUS = 262_144

# GPUs in one host (one scale-up domain): the largest NVLink domain announced is NVL576 (Vera
# Rubin Ultra NVL576, 576 GPUs; GB200 NVL72 ships today); 1,024 leaves headroom and refuses a
# host of 100,000 GPUs, which is a mistake (a cluster is many hosts: num_hosts).
MAX_GPUS_PER_HOST = 1_024

# NICs per host: one per GPU is the most any design uses (GB200 NVL72: 72 ConnectX-7 for 72 GPUs).
MAX_NICS_PER_HOST = MAX_GPUS_PER_HOST

# CPU sockets per host: 8-socket x86 servers are the largest common ones; HPE Superdome Flex
# reaches 32 sockets in one system image.
MAX_CPUS_PER_HOST = 32

# Fat-tree fan-out (hosts_per_leaf, spines per pod, cores_per_spine): no switch has more than
# 512 ports (Broadcom Tomahawk 5: 512 x 100G), so a leaf serves at most 512 hosts and a spine
# level has at most 512 switches per pod; 1,024 leaves headroom.
MAX_FANOUT = 1_024

# Oversubscription of a fat-tree level: 1 (non-blocking) to a few x in practice; 64:1 is
# already far beyond any GPU fabric.
MAX_OVERSUBSCRIPTION = 64.0

# Torus dimensions: TPU v4 / v5p slices are 3D tori (Jouppi et al., ISCA 2023), so 2 or 3 dims.
TORUS_DIMS = (2, 3)

# Directed edges of a graph drawn vertex by vertex (one host, a research shape, an explicit
# file): building and checking one costs about 2 us and 0.4 kB per edge in Python (measured:
# 262,144 edges in 0.5 s, ~100 MB), so 2^20 edges stay within a few seconds and ~400 MB. A
# fully connected graph of n GPUs has n(n-1) directed edges: at most 1,024 GPUs.
MAX_DRAWN_EDGES = 2**20

# Directed edges of a multi-host fat tree (built as numpy blocks, ~33 bytes per edge plus
# temporaries): the largest shipped cluster scaled to MAX_GPUS (h100-ndr-cluster, 32,768
# hosts) has about 2.4 million; 2^23 leaves over 3x headroom and keeps the arrays < 300 MB.
MAX_FABRIC_EDGES = 2**23

# Link figures (per direction). The slowest link in a GPU cluster is 1 GbE (125 MB/s); 1 MB/s
# or less is a unit slip (bytes for gigabits) that would make a step simulate for ever. The
# fastest is NVLink5 at 900 GB/s per direction; 1 PB/s is over 1,000x that.
MIN_LINK_BW = 1e6
MAX_LINK_BW = 1e15
# Latency: a transoceanic round trip is ~0.2 s; one link of a cluster taking over a second is a
# unit slip ('1 s' for '1 us').
MAX_LINK_LATENCY = 1.0
