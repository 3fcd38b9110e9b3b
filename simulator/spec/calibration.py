"""A calibration profile as the simulation uses it: the collective model's constants and the
compute constants per GPU, resolved once at load from a scenario's `calibration: FILE`."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.system.comm.calibration import NCCL_CALIBRATION, Calibration
from simulator.system.hardware.catalog import get_gpu
from simulator.system.hardware.gpu import GPU
from simulator.system.knobs import with_gpu


@dataclass(frozen=True, kw_only=True)
class CalibrationSpec:
    """`values`: the profile's fitted constants by knob name (system/knobs.py); `comm`: the
    built-in calibration with them applied. The default is the built-in one, no profile."""

    source: str = ""  # the profile file ("" = built-in defaults)
    sha256: str = ""
    values: tuple[tuple[str, float], ...] = ()
    comm: Calibration = field(default=NCCL_CALIBRATION, repr=False)
    gpus: tuple[str, ...] = ()  # the catalog GPUs the profile was fitted on (() = any: built-in)

    @property
    def is_default(self) -> bool:
        return not self.source

    def fitted_on(self, gpu: str) -> bool:
        """Whether the profile may apply to this GPU: a constant fitted on one GPU is never
        applied to another. `gpu`: a catalog name or alias (a user-defined GPU is none of them)."""
        try:
            gpu = get_gpu(gpu).name
        except KeyError:
            pass
        return not self.gpus or gpu in self.gpus

    def gpu(self, gpu: GPU) -> GPU:
        """The GPU with the profile's compute constants for it (unchanged if it has none)."""
        return with_gpu(gpu, dict(self.values)) if self.values else gpu


DEFAULT_CALIBRATION = CalibrationSpec()
