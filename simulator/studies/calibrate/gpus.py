"""Which catalog GPU a measurement ran on, from the device name nccl-tests prints, and the check
that it is the GPU of the topology it is fitted against (a constant fitted on one GPU is never
applied to another).

nccl-tests prints each rank's `cudaDeviceProp.name` after its PCI bus id (writeDeviceReport):
"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL",
"NVIDIA H200", "Tesla V100-SXM2-32GB", "A100-SXM4-40GB" (older drivers), "AMD Instinct MI300X"
(rccl-tests). A name is read as its family (a100, h100, ...) narrowed by what the catalog tells
apart: memory size (a100-40gb / a100-80gb) and form factor (h100 SXM / PCIe / NVL). A name whose
family is not in the catalog cannot be checked, and is said so in a note.
"""

from __future__ import annotations

import re

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.system.hardware import gpu_names
from simulator.system.hardware.catalog import GPU_ALIASES

# Longest first: "gb200" before "b200".
_FAMILIES = sorted({name.split("-")[0] for name in gpu_names()}, key=len, reverse=True)
_MEMORY = re.compile(r"(\d+)\s*gb")
_FORMS = ("pcie", "nvl")  # form factors the catalog names; anything else is the SXM part


def device_gpus(device: str) -> tuple[str, ...] | None:
    """The catalog GPUs a device name can be (one, or several where the name does not tell them
    apart, e.g. "A100"); None where the name names no catalog family."""
    text = device.lower().replace("_", "-")
    family = next((f for f in _FAMILIES if re.search(rf"(?<![a-z0-9]){f}(?![0-9])", text)), None)
    if family is None:
        return None
    found = [g for g in gpu_names() if g.split("-")[0] == family]
    memory = _MEMORY.search(text)
    if memory:
        found = _narrow(found, lambda g: f"-{memory[1]}gb" in g)
    form = next((f for f in _FORMS if re.search(rf"(?<![a-z]){f}(?![a-z])", text)), None)
    found = (
        _narrow(found, lambda g: form in g.split("-"))
        if form
        else _narrow(found, lambda g: not set(_FORMS) & set(g.split("-")))
    )
    return tuple(found)


def _narrow(found: list[str], keep) -> list[str]:
    """Keep what matches, unless nothing does (the catalog does not tell that detail apart)."""
    kept = [g for g in found if keep(g)]
    return kept or found


def canonical(name: str) -> str:
    """A GPU name or alias -> its catalog name (a name the catalog does not know, as it is)."""
    key = name.strip().lower()
    key = GPU_ALIASES.get(key, key)
    return key if key in gpu_names() else name


def catalog_gpu(name: str, where: str) -> str:
    """A GPU named in a manifest -> its catalog name; UserError with the closest names if unknown."""
    key = canonical(name)
    if key not in gpu_names():
        raise UserError(
            Problem(
                where, f"unknown GPU {name!r}", did_you_mean(name, [*gpu_names(), *GPU_ALIASES])
            )
        )
    return key


def check_gpu(
    devices: list[str], topology_gpu: str, topology: str, declared: str | None = None
) -> list[str]:
    """A UserError (field `gpu`) when the file's GPU is not the topology's: the declared GPU (a
    manifest's `gpu`) first, then every device name the file prints. Returns notes on the device
    names that cannot be checked."""
    topology_gpu = canonical(topology_gpu)
    if declared is not None and declared != topology_gpu:
        raise UserError(
            Problem(
                "gpu",
                f"the data ran on {declared}, but topology {topology} has {topology_gpu}",
                f"give the topology the measurements ran on (one with gpu: {declared})",
            )
        )
    notes = []
    for device in dict.fromkeys(devices):
        can_be = device_gpus(device)
        if can_be is None:
            notes.append(
                f"GPU {device!r} is not one clustersim's catalog names: not checked against "
                f"{topology}'s {topology_gpu}"
            )
        elif topology_gpu not in can_be:
            raise UserError(
                Problem(
                    "gpu",
                    f"the data ran on {device!r} ({' or '.join(can_be)}), but topology "
                    f"{topology} has {topology_gpu}",
                    f"give the topology the measurements ran on (one with gpu: {can_be[0]}); "
                    "a constant fitted on one GPU is never applied to another",
                )
            )
    return notes
