"""Host builders (nvswitch, pcie, nvlink-pairs): one host drawn as a `Sketch`, then either
that host alone or `num_hosts` copies of it joined by a fat tree (fabric.py)."""

from __future__ import annotations

from simulator.core.errors import Problem
from simulator.system.topology.builders.built import Built, Sketch
from simulator.system.topology.builders.fabric import fabric_params, fat_tree, replicate
from simulator.system.topology.builders.limits import (
    MAX_CPUS_PER_HOST,
    MAX_GPUS,
    MAX_GPUS_PER_HOST,
    MAX_NICS_PER_HOST,
)
from simulator.system.topology.builders.params import Params


def _gpus_per_host(p: Params) -> int:
    return p.int(
        "gpus_per_host",
        8,
        maximum=MAX_GPUS_PER_HOST,
        why=f"a host, one scale-up domain, holds at most {MAX_GPUS_PER_HOST:,} GPUs, the "
        "largest NVLink domain announced being NVL576; a cluster is num_hosts hosts "
        "with nic: and fabric: sections",
    )


def _nvswitch_host(p: Params, nics: int, nic_pcie_bw: float) -> tuple[Sketch, bool]:
    """GPUs all-to-all through NVSwitch; the switch chips are one crossbar vertex because NCCL
    stripes every transfer over all of them (DGX A100: 6 NVSwitches, 12 NVLink3 links per GPU)."""
    b = Sketch()
    g = _gpus_per_host(p)
    nvlink_bw = p.bw("nvlink_bw")
    nvlink_lat = p.duration("nvlink_latency", 0.35e-6)
    pcie_lat = p.duration("pcie_latency", 0.5e-6)
    # NVLink SHARP: third-generation NVSwitch (NVLink4) and later with Hopper+ GPUs (NCCL
    # docs, NCCL_NVLS_ENABLE); said per file because the same builder draws A100 boxes.
    b.nvls = p.bool("nvls", False)
    b.vertex("nvswitch", "nvswitch")
    for i in range(g):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu"))
        b.cable(f"gpu{i}", "nvswitch", nvlink_bw, nvlink_lat, "nvlink")
    for r in range(nics):
        # GPU and NIC share a PCIe switch on DGX/HGX boards: one PCIe hop between them.
        b.vertex(f"nic{r}", "nic")
        b.cable(f"gpu{r * g // nics}", f"nic{r}", nic_pcie_bw, pcie_lat, "pcie")
    b.gpus_per_host = g
    return b, True


def _pcie_host(
    p: Params, nics: int, nic_pcie_bw: float, bridges: bool = False
) -> tuple[Sketch, bool]:
    """GPUs behind PCIe switches under CPU sockets; optional NVLink bridges between GPU pairs."""
    b = Sketch()
    g = _gpus_per_host(p)
    per_switch = p.int(
        "gpus_per_switch", 2, maximum=g, why=f"a PCIe switch serves at most the host's {g} GPUs"
    )
    cpus = p.int(
        "cpus",
        2,
        maximum=MAX_CPUS_PER_HOST,
        why=f"at most {MAX_CPUS_PER_HOST} CPU sockets per host (HPE Superdome Flex: 32)",
    )
    pcie_bw = p.bw("pcie_bw")
    uplink_bw = p.bw("switch_uplink_bw", pcie_bw)
    pcie_lat = p.duration("pcie_latency", 0.5e-6)
    n_switches = -(-g // per_switch)
    for c in range(cpus):
        b.vertex(f"cpu{c}", "cpu")
    if cpus > 1:
        cpu_bw, cpu_lat = p.bw("cpu_link_bw"), p.duration("cpu_link_latency", 0.5e-6)
        for c in range(cpus - 1):
            b.cable(f"cpu{c}", f"cpu{c + 1}", cpu_bw, cpu_lat, "cpu_link")
    for s in range(n_switches):
        b.vertex(f"pcie{s}", "pcie_switch")
        b.cable(f"pcie{s}", f"cpu{s * cpus // n_switches}", uplink_bw, pcie_lat, "pcie")
    for i in range(g):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu"))
        b.cable(f"gpu{i}", f"pcie{i // per_switch}", pcie_bw, pcie_lat, "pcie")
    if bridges:
        bridge_bw = p.bw("nvlink_bw")
        bridge_lat = p.duration("nvlink_latency", 0.35e-6)
        for i in range(0, g - 1, 2):
            b.cable(f"gpu{i}", f"gpu{i + 1}", bridge_bw, bridge_lat, "nvlink")
    for r in range(nics):
        gpu = r * g // nics
        b.vertex(f"nic{r}", "nic")
        b.cable(f"pcie{gpu // per_switch}", f"nic{r}", nic_pcie_bw, pcie_lat, "pcie")
    b.gpus_per_host = g
    return b, False


def _xgmi_host(p: Params, nics: int, nic_pcie_bw: float) -> tuple[Sketch, bool]:
    """GPUs joined pairwise by direct links (AMD Infinity Fabric: 7 xGMI links per MI300X, one
    to each peer, ROCm docs mi300.md); each NIC hangs off one GPU's PCIe switch."""
    b = Sketch(mesh=True)
    g = _gpus_per_host(p)
    link_bw = p.bw("link_bw")
    link_lat = p.duration("link_latency", 0.35e-6)
    kind = p.choice("link_kind", ("xgmi", "nvlink", "ideal"), "xgmi")
    pcie_lat = p.duration("pcie_latency", 0.5e-6)
    for i in range(g):
        b.gpu_ids.append(b.vertex(f"gpu{i}", "gpu"))
    for i in range(g):
        for j in range(i + 1, g):
            b.cable(f"gpu{i}", f"gpu{j}", link_bw, link_lat, kind)
    for r in range(nics):
        b.vertex(f"nic{r}", "nic")
        b.cable(f"gpu{r * g // nics}", f"nic{r}", nic_pcie_bw, pcie_lat, "pcie")
    b.gpus_per_host = g
    return b, True


HOST_BUILDERS = {
    "nvswitch": _nvswitch_host,
    "xgmi": _xgmi_host,
    "pcie": _pcie_host,
    "nvlink-pairs": lambda p, n, bw: _pcie_host(p, n, bw, bridges=True),
}


def build_hosts(p: Params, builder: str, num_hosts: int | None) -> Built:
    """A host builder's parameters plus optional `nic:` and `fabric:` sections (a fat tree)."""
    hosts = (
        num_hosts
        if num_hosts is not None
        else p.int(
            "num_hosts", 1, maximum=MAX_GPUS, why=f"clustersim builds up to {MAX_GPUS:,} GPUs"
        )
    )
    p.used.add("num_hosts")
    nic = p.sub("nic", required=False)
    fabric = p.sub("fabric", required=False)
    nics = (
        nic.int(
            "per_host",
            8,
            maximum=MAX_NICS_PER_HOST,
            why=f"at most {MAX_NICS_PER_HOST:,} NICs per host (one per GPU)",
        )
        if nic
        else 0
    )
    nic_pcie_bw = nic.bw("pcie_bw") if nic else 1.0
    template, pxn = HOST_BUILDERS[builder](p, nics, nic_pcie_bw)
    if hosts * template.gpus_per_host > MAX_GPUS:
        where = p.where("num_hosts") if num_hosts is None else "num_hosts"
        g = template.gpus_per_host
        p.problems.append(
            Problem(
                where,
                f"{hosts:,} hosts x {g:,} GPUs = {hosts * g:,} GPUs; clustersim "
                f"builds up to {MAX_GPUS:,}",
                f"use at most {MAX_GPUS // g:,} hosts",
            )
        )
        hosts = 1
    if hosts > 1 and (nic is None or fabric is None):
        p.problems.append(
            Problem(
                p.where("num_hosts"),
                f"{hosts} hosts need `nic:` and `fabric:` sections",
                "this file describes a single host; use a multi-host topology",
            )
        )
    if hosts == 1 or nic is None or fabric is None:
        out = replicate(template, 1).built()
        if nic:
            nic.bw("bw")
            nic.duration("latency", 0.0)
            nic.finish()
        if fabric:
            fabric_params(fabric, 1)
        return out
    return fat_tree(template, pxn, hosts, nic, fabric)
