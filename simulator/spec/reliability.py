"""Reliability specs of a training run: failure processes, checkpointing, restarts and slow
nodes, in internal units (rates per unit per second, bytes, bytes/s, seconds), with the
defaults and where each comes from.

Default failure rates: the root causes of the 419 unexpected interruptions of Llama 3 405B's
pre-training in a 54-day snapshot on 16,384 H100 GPUs (2,048 hosts of 8), Table 5 of Dubey et
al. 2024, "The Llama 3 Herd of Models" (arXiv:2407.21783, Sec 3.3.4), plus its 47 planned
interruptions (automated maintenance). Each class's rate is its count / (54 days x the units
it is counted per). The printed table is inconsistent: its counts sum to 419 but its
percentages to 94.9%, because "Faulty GPU" is printed as 148 and 30.1% (148/419 = 35.3%;
126 would give 30.1% and the text's 58.7% GPU share). This module takes the printed counts,
the reading whose total is the stated 419, so the GPU class is 268/419 = 64.0% rather than
58.7%. Scaling with the unit count (per GPU or per host) is the model of Kokolis et al. 2025
("Revisiting Reliability in Large-Scale ML Research Clusters", HPCA, arXiv:2410.21680): job
MTTF = 1 / (N_nodes x r_f). Which unit each class scales with is this module's assumption.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECONDS_PER_DAY = 86400.0
UNITS = ("gpu", "host", "job")

# Llama 3 (Dubey et al. 2024), Sec 3.3.4: the snapshot and its cluster.
LLAMA3_SOURCE = "Llama 3 (Dubey et al. 2024) Table 5: 54-day snapshot, 16,384 H100 on 2,048 hosts"
LLAMA3_DAYS = 54
LLAMA3_UNITS = {"gpu": 16_384, "host": 2_048}

# Table 5 rows (component, interruption count as printed) grouped into the classes below.
LLAMA3_TABLE5 = {
    "gpu": (
        ("Faulty GPU", 148),
        ("GPU HBM3 Memory", 72),
        ("GPU SRAM Memory", 19),
        ("GPU System Processor", 17),
        ("Silent Data Corruption", 6),
        ("GPU Thermal Interface + Sensor", 6),
    ),
    "host": (
        ("Host Maintenance (unplanned)", 32),
        ("SSD", 3),
        ("Power Supply", 3),
        ("Server Chassis", 2),
        ("IO Expansion Board", 2),
        ("CPU", 2),
        ("System Memory", 2),
    ),
    "nic": (("NIC", 7),),
    "switch": (("Network Switch/Cable", 35),),
    "software": (("Software Bug", 54), ("Dependency", 2), ("NCCL Watchdog Timeouts", 7)),
}
LLAMA3_UNEXPECTED = 419
LLAMA3_PLANNED = 47  # automated maintenance (firmware upgrades) and operator changes, Sec 3.3.4


@dataclass(frozen=True, kw_only=True)
class FailureClass:
    """One failure process: arrivals per unit (a GPU, a host, or the whole job) at a rate, with
    Weibull-distributed times between the job's arrivals (shape 1: Poisson)."""

    name: str
    unit: str  # gpu | host | job
    rate_per_unit_s: float  # failures per unit per second (1 / MTBF of one unit)
    weibull_shape: float = 1.0
    takes_host: bool = False  # the failed host leaves until repaired (a spare replaces it)
    planned: bool = False  # announced: checkpoint first, no lost work, no detection
    source: str = ""


def _llama3_class(name: str, unit: str, takes_host: bool, note: str) -> FailureClass:
    count = sum(n for _, n in LLAMA3_TABLE5[name])
    rows = ", ".join(f"{c} {n}" for c, n in LLAMA3_TABLE5[name])
    units = LLAMA3_UNITS["gpu" if unit == "gpu" else "host"]
    return FailureClass(
        name=name,
        unit=unit,
        takes_host=takes_host,
        rate_per_unit_s=count / (LLAMA3_DAYS * SECONDS_PER_DAY * units),
        source=f"{LLAMA3_SOURCE}: {count} interruptions ({rows}) per {units:,} {unit}s; {note}",
    )


def default_failures() -> tuple[FailureClass, ...]:
    """The Llama 3 classes; the planned maintenance is a separate, planned class."""
    return (
        _llama3_class("gpu", "gpu", True, "per GPU"),
        _llama3_class("host", "host", True, "per host"),
        _llama3_class("nic", "gpu", True, "per GPU: one 400 Gb/s RoCE NIC per GPU (Sec 3.3.1)"),
        _llama3_class(
            "switch",
            "host",
            False,
            "per host: the fabric grows with the hosts it joins "
            "(assumption); the job restarts on a working path, no host is lost",
        ),
        _llama3_class(
            "software",
            "host",
            False,
            "per host (assumption: one process group per GPU, "
            "more processes hit more bugs and timeouts)",
        ),
        FailureClass(
            name="maintenance",
            unit="host",
            planned=True,
            rate_per_unit_s=LLAMA3_PLANNED / (LLAMA3_DAYS * SECONDS_PER_DAY * LLAMA3_UNITS["host"]),
            source=f"{LLAMA3_SOURCE}: {LLAMA3_PLANNED} planned interruptions (automated maintenance, "
            "e.g. firmware upgrades), per host (assumption)",
        ),
    )


# Tectonic, Meta's distributed file system for Llama 3 checkpoints: "2 TB/s sustainable and
# 7 TB/s peak throughput" (Llama 3 paper, Sec 3.3.1). The sustained figure is taken for both
# writes and reads. Per host: the equal share of it among Llama 3's 2,048 hosts, the rate each
# host gets when all write at once (the paper gives no per-host figure).
TECTONIC_BW = 2e12
PER_HOST_BW = TECTONIC_BW / LLAMA3_UNITS["host"]
STORAGE_SOURCE = (
    "Tectonic 2 TB/s sustained (Llama 3 Sec 3.3.1), for writes and reads; per host its "
    "share among Llama 3's 2,048 hosts, 0.98 GB/s"
)

# Restart: the Llama 3 paper says only that job startup and checkpointing time were reduced; it
# gives no restart time. Kokolis et al. 2025 assume a restart overhead u0 of 5-20 min; 10 min is
# taken (covering detection and re-initialization; give detection separately if it is known).
DEFAULT_INITIALIZATION_S = 600.0
RESTART_SOURCE = (
    "restart overhead 10 min: Kokolis et al. 2025 (arXiv:2410.21680) assume 5-20 min; "
    "Llama 3 publishes no restart time"
)


@dataclass(frozen=True, kw_only=True)
class CheckpointSpec:
    size_bytes: int | None = None  # None: weights + optimizer states of the model (studies.goodput)
    mode: str = "sync"  # sync | async (the step pauses only to copy to host memory)
    interval_steps: int | None = None
    interval_s: float | None = None  # neither given: the optimal interval (Daly 2006)
    write_bw: float = TECTONIC_BW  # aggregate bytes/s
    write_bw_per_host: float = PER_HOST_BW
    read_bw: float = TECTONIC_BW
    read_bw_per_host: float = PER_HOST_BW
    pause_s: float | None = None  # async: the step's pause; None: the copy to host memory

    @property
    def optimal(self) -> bool:
        return self.interval_steps is None and self.interval_s is None


@dataclass(frozen=True, kw_only=True)
class RestartSpec:
    detection_s: float = 0.0
    initialization_s: float = DEFAULT_INITIALIZATION_S  # rescheduling, process start, NCCL init
    hot_spares: int | None = None  # None: a spare always replaces a failed host at once
    without_spare: str = "wait"  # wait (for a repair) | shrink (continue on fewer hosts)
    repair_s: float | None = None  # time to repair a failed host (needed with hot_spares)


@dataclass(frozen=True, kw_only=True)
class StragglerSpec:
    """Slow nodes appearing over time: the synchronous step runs `slowdown` times slower until
    the node is detected and removed (a restart from a fresh checkpoint)."""

    unit: str
    rate_per_unit_s: float
    slowdown: float
    detection_s: float


DEFAULT_RUNS = 100
# Causes of lost time besides the failure classes: slow-node removals, periodic checkpoints,
# running below full speed (their names are not available to failure classes).
STRAGGLER_CAUSE, CHECKPOINT_CAUSE, DEGRADED_CAUSE = RESERVED_CAUSES = (
    "straggler",
    "checkpoint",
    "degraded",
)


@dataclass(frozen=True, kw_only=True)
class ReliabilitySpec:
    enabled: bool = True
    failures: tuple[FailureClass, ...] = field(default_factory=default_failures)
    rate_scale: float = 1.0  # multiplies every failure rate (what-if)
    checkpoint: CheckpointSpec = CheckpointSpec()
    restart: RestartSpec = RestartSpec()
    stragglers: StragglerSpec | None = None
    runs: int = DEFAULT_RUNS
    seed: int | None = None  # None: training.seed
    window_s: float | None = None  # simulate a fixed wall-clock window instead of the whole run
