"""Parameterized topology builders: a few YAML lines -> vertex and edge arrays.

A topology file is a mapping with `name`, `description`, `source` (where its figures come
from), `gpu` (a GPU catalog name) and `builder`, plus that builder's keys below. Each
builder reads its keys through a `Params` reader (params.py; every problem is collected with
its dotted path, unknown keys are reported with a suggestion) and returns a `Built`: vertex
and directed-edge arrays (a full-duplex cable is two edges with the same per-direction
figures), the GPUs in rank order (host-major) and, for multi-host clusters, the index arrays
the closed-form fat-tree router needs. `TOPOLOGY_BUILDERS` is the registry. Bandwidths take
units ("300 GB/s", "400 Gb/s"; per direction), latencies too ("0.35 us"); a bare number (bw: 400)
is refused. Every count and figure is bounded (limits.py: GPUs, GPUs per host, drawn and fabric
edges, fan-out, link rates and latencies), and a builder checks its bounds before drawing.

Host builders (hosts.py), one host, or `num_hosts` copies of it in a fat tree (fabric.py):
  nvswitch       GPUs all-to-all through one NVSwitch crossbar. gpus_per_host (8),
                 nvlink_bw, nvlink_latency (0.35 us), pcie_latency (0.5 us), nvls (false:
                 NVLink SHARP, Hopper+ with third-generation NVSwitch).
  xgmi           GPUs joined pairwise by direct links (AMD Infinity Fabric). gpus_per_host (8),
                 link_bw (per peer), link_latency (0.35 us), link_kind (xgmi), pcie_latency.
  pcie           GPUs under PCIe switches under CPU sockets. gpus_per_host (8),
                 gpus_per_switch (2), cpus (2), pcie_bw, switch_uplink_bw (pcie_bw),
                 pcie_latency (0.5 us), cpu_link_bw and cpu_link_latency (0.5 us) if cpus > 1.
  nvlink-pairs   pcie plus NVLink bridges joining GPUs 0-1, 2-3, ...: nvlink_bw, nvlink_latency.
  All four take num_hosts (1) and, for more than one host, both sections:
    nic:     per_host (8), bw (the NIC rate), pcie_bw (GPU <-> NIC), latency (0)
    fabric:  levels (2 or 3), rail_optimized (true), hosts_per_leaf (32), spines (= hosts_per_leaf),
             link_latency (0.6 us), link_kind (ib, ethernet or efa), sharp (false: in-network
             reduction, NCCL's CollNet), oversubscription {leaf, spine} (1),
             and for levels 3: hosts_per_pod (all hosts), cores_per_spine (8).
  Vertex names: h{i}.gpu{j}, h{i}.nvswitch, h{i}.pcie{s}, h{i}.cpu{c}, h{i}.nic{r}; leaf{k},
  spine{k}, core{k}.

Research shapes (shapes.py), GPUs named gpu0, gpu1, ...: ring and fully-connected take
num_gpus; torus takes dims (2 or 3 integers >= 2, wrap-around). All take link_bw,
link_latency (0), link_kind (nvlink) and gpus_per_host (all GPUs in one host).

Explicit graphs (builder: explicit), every vertex and edge listed:
  vertices:  list of {name, kind, host}. name: unique. kind: one of VERTEX_KINDS (gpu).
             host: an integer >= 0 grouping GPUs into hosts (GPUs default to host 0;
             other vertices have none unless given).
  edges:     list of {src, dst, bw, latency, kind, duplex}. src, dst: vertex names, different
             (a self-loop is refused). bw: required. latency (0). kind: one of LINK_KINDS
             (nvlink). duplex (true): also the edge dst -> src with the same figures.
  Every GPU must reach every other GPU; an edge may be listed once per direction. Ranks are
  the GPUs in listed order, stably sorted by host.
  Example:
    builder: explicit
    vertices:
      - {name: gpu0, kind: gpu, host: 0}
      - {name: gpu1, kind: gpu, host: 0}
      - {name: sw, kind: nvswitch}
    edges:
      - {src: gpu0, dst: sw, bw: 300 GB/s, latency: 0.35 us}
      - {src: gpu1, dst: sw, bw: 300 GB/s, latency: 0.35 us, kind: nvlink, duplex: true}

Vertex kinds: gpu, nvswitch, pcie_switch, cpu, nic, leaf, spine, core.
Link kinds (they select a protocol-efficiency factor in comm.calibration.Calibration):
nvlink, pcie, cpu_link, ib, ethernet, ideal, efa, xgmi. docs/topologies.md has an example of each builder.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.system.topology.builders.built import (
    LINK_KINDS,
    VERTEX_KINDS,
    Built,
    FabricIndex,
    Sketch,
)
from simulator.system.topology.builders.hosts import HOST_BUILDERS, build_hosts
from simulator.system.topology.builders.params import Params
from simulator.system.topology.builders.shapes import explicit, fully_connected, ring, torus

__all__ = [
    "HOST_BUILDERS",
    "LINK_KINDS",
    "TOPOLOGY_BUILDERS",
    "VERTEX_KINDS",
    "Built",
    "FabricIndex",
    "Params",
    "Sketch",
]

TOPOLOGY_BUILDERS: dict[str, Callable[[Params, int | None], Built]] = {
    "nvswitch": lambda p, n: build_hosts(p, "nvswitch", n),
    "pcie": lambda p, n: build_hosts(p, "pcie", n),
    "nvlink-pairs": lambda p, n: build_hosts(p, "nvlink-pairs", n),
    "xgmi": lambda p, n: build_hosts(p, "xgmi", n),
    "ring": ring,
    "torus": torus,
    "fully-connected": fully_connected,
    "explicit": explicit,
}
