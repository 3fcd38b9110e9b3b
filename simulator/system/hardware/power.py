"""What a GPU draws by what it is doing, and what its host and the site add.

Per GPU: the board's rated power (TDP, from each data sheet) and its draw in four activities
of the simulated step (execution/energy.py):
- compute-bound kernels (GEMM, attention): at the TDP. Choukse et al. 2025 ("Power
  Stabilization for AI Training Datacenters", Microsoft / OpenAI / NVIDIA, arXiv 2508.14318,
  Sec 2): in the compute-heavy phase of each iteration the GPUs draw close to their TDP (large
  GEMMs run into the board's power limit, which lowers the clocks to hold it);
- memory-bound kernels (element-wise, norms, softmax, copies, the optimizer step):
  MEMORY_FRACTION of the TDP. Assumed: HBM-streaming kernels leave most of the tensor cores'
  and SMs' switching idle; no per-kernel-class board measurement was found to cite (Ujeniya et
  al. 2026, arXiv 2604.11391, measure H100 / H200 DGEMM and STREAM-triad power under caps but
  their figures were not retrieved);
- communication only (a collective in flight, the compute stream idle): COMM_FRACTION of the
  TDP. Assumed from Choukse et al. 2025: in the communication-heavy phase the power "drops
  significantly", towards idle (NCCL's kernels hold a few SMs, the links and HBM move data);
- waiting (pipeline bubbles, waits for other ranks, the end of the step): IDLE_FRACTION of
  the TDP. A training process keeps the GPU in its performance state with its CUDA context
  and memory held; an idle H200 SXM reads 80 W on nvidia-smi (80 / 700 = 11%, alice-benchmark
  H200 TDX measurements), and H100 SXM boards commonly read 60-90 W idle: 10% of the TDP is
  assumed for every GPU.
The fractions are one set for every GPU (no per-model measurement was found); a catalog
entry names its TDP's source, and a scenario may override any figure (`cluster.power.gpu`,
or a custom GPU's `power`).

Per host (CPUs, memory, NICs, NVSwitches, fans, power-supply losses): HOST_W_PER_GPU for each
GPU slot, constant through the step. Latif et al. 2024 (arXiv 2412.08602, IEEE Access 13,
"Single-Node Power Demand During AI Training: Measurements on an 8-GPU NVIDIA H100 System")
measured 8.4 kW peak on an 8x H100 HGX node with the GPUs near full utilisation (rated
10.2 kW: NVIDIA DGX H100 user guide); at 700 W per GPU that leaves 8.4 - 8 x 0.7 = 2.8 kW for
the rest of the node, 350 W per GPU slot. An upper estimate of the host's steady draw (fans
and CPUs run below their peak through most of a step).

The site: PUE (facility power / IT power). DEFAULT_PUE 1.1: Google's fleet-wide trailing
twelve-month PUE, 1.10 (Google data-centre efficiency page, 2021-2023), typical of the
hyperscale sites large training runs use; the Uptime Institute's 2021 survey average over all
large data centres is 1.57 (as cited by CNBC, 2022-04-13). Electricity price and grid carbon
intensity have no default (they vary by an order of magnitude between sites).

A power cap (`cluster.power_cap`, `nvidia-smi -pl`): the board lowers its SM clock until what
it draws is at most the cap. The clock / power curve: a board's draw is a floor (leakage, HBM
and uncore at rest; taken as its waiting draw, idle_w) plus dynamic power, and CMOS dynamic
power is C x V^2 x f with the voltage roughly linear in the clock over the DVFS range, so the
dynamic part goes as f^3 (DVFS_EXPONENT):
    P(phi) = idle_w + (P_1 - idle_w) x phi^3,   phi = f / f_uncapped.
An activity that draws P_1 uncapped runs, under a cap C below P_1, at
    phi = ((C - idle_w) / (P_1 - idle_w))^(1/3)
(`capped_clock`); at or above P_1 the cap does not bind (phi = 1). Compute-bound kernels (GEMM,
attention) take 1 / phi as long (their time is cycles x clock period); an H100 SXM at 500 W:
phi = (430 / 630)^(1/3) = 0.880, GEMMs 13.6% slower. Memory-bound kernels draw less
(memory_w), so a cap binds on them later, and their time hardly follows the SM clock (HBM has
its own clock): MEMORY_CLOCK_SENSITIVITY of their time follows it (assumed; IT4Innovations'
Karolina A100 nodes, SM clock limited to 1.29 of 1.41 GHz: "up to 10%" runtime increase for
compute-intensive GPU workloads, "no slowdown" for memory-bound ones, docs.it4i.cz "Energy
saving"). Communication (NVLink, NICs, copy engines) does not follow it.
Published checks (tests/system/test_power_cap.py): McDonald et al. 2022 ("Great Power, Great
Responsibility", NAACL Findings, arXiv 2205.09646): language-model training on V100s capped at
150 W of their 250 W, energy -13.7% and training time +6.8% on average; the Karolina limit's
+10% for compute-bound work at a 0.915 clock (1 / 0.915 = +9.3%). torchtitan's H100
benchmarks ran at the hosts' default 500 W limit ("tuning it up to 700W TDP can potentially
provide further speedups", pytorch/torchtitan docs/performance.md), with no 700 W run to
compare.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

COMPUTE_FRACTION = 1.0  # compute-bound kernels: at the TDP (Choukse et al. 2025)
MEMORY_FRACTION = 0.6  # memory-bound kernels (assumed, module doc)
COMM_FRACTION = 0.3  # communication only (assumed from Choukse et al. 2025's "towards idle")
IDLE_FRACTION = 0.1  # waiting, context held (H200 80 W / 700 W measured; H100 60-90 W)
HOST_W_PER_GPU = 350.0  # (8.4 kW node peak - 8 x 700 W) / 8, Latif et al. 2024
DEFAULT_PUE = 1.1  # Google fleet-wide TTM PUE 1.10
DVFS_EXPONENT = 3.0  # dynamic power ~ f x V^2, V ~ f over the DVFS range (module doc)
MEMORY_CLOCK_SENSITIVITY = 0.1  # share of a memory-bound kernel's time that follows the SM clock

ACTIVITY_SOURCE = (
    "compute-bound kernels at the TDP (Choukse et al. 2025, arXiv 2508.14318: GPUs near TDP in "
    "the compute phase); memory-bound kernels 60% of TDP, communication-only 30%, waiting 10% "
    "(assumed; communication phases drop towards idle per Choukse et al.; an idle H200 reads "
    "80 W of 700)"
)
HOST_SOURCE = (
    "350 W per GPU slot: Latif et al. 2024 (arXiv 2412.08602) 8x H100 node peak 8.4 kW less "
    "8 x 700 W GPUs, over 8 slots"
)
PUE_SOURCE = "1.1: Google fleet-wide trailing-twelve-month PUE 1.10 (Uptime 2021 average: 1.57)"


@dataclass(frozen=True, kw_only=True)
class GPUPower:
    """One GPU board's draw in watts by activity (module doc), with where the figures come from."""

    tdp_w: float
    compute_w: float  # compute-bound kernels (GEMM, attention)
    memory_w: float  # memory-bound kernels
    comm_w: float  # a collective in flight, the compute stream idle
    idle_w: float  # waiting: bubbles, waits for other ranks
    source: str
    assumed: str = ""  # figures with no measurement behind them

    def __post_init__(self):
        for name in ("tdp_w", "compute_w", "memory_w", "comm_w", "idle_w"):
            value = getattr(self, name)
            if not (value >= 0 and value < float("inf")):
                raise ValueError(f"GPU power {name} must be a finite number >= 0, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class CapClocks:
    """What a power cap does to the kernels (module doc): the compute-bound kernels' clock as a
    fraction of the uncapped one, and the memory-bound kernels' time factor."""

    compute_clock: float = 1.0
    memory_slowdown: float = 1.0

    @property
    def binds(self) -> bool:
        return self.compute_clock != 1.0 or self.memory_slowdown != 1.0


def capped_clock(draw_w: float, cap_w: float, floor_w: float) -> float:
    """The clock fraction at which an activity drawing draw_w uncapped draws cap_w: the
    dynamic part above floor_w goes as the clock cubed (module doc); 1 where the cap does
    not bind."""
    if cap_w >= draw_w or draw_w <= floor_w:
        return 1.0
    return ((cap_w - floor_w) / (draw_w - floor_w)) ** (1.0 / DVFS_EXPONENT)


def cap_clocks(power: GPUPower | None, cap_w: float | None) -> CapClocks:
    """The kernels' clocks under a per-GPU power cap; no cap (or no power figures): none."""
    if cap_w is None or power is None:
        return CapClocks()
    compute = capped_clock(power.compute_w, cap_w, power.idle_w)
    memory = capped_clock(power.memory_w, cap_w, power.idle_w)
    slow = 1.0 if memory == 1.0 else 1.0 + MEMORY_CLOCK_SENSITIVITY * (1.0 / memory - 1.0)
    return CapClocks(compute_clock=compute, memory_slowdown=slow)


def capped(power: GPUPower, cap_w: float | None) -> GPUPower:
    """The board's draw by activity under a power cap: each at most the cap (the clock falls
    until it is, module doc); unchanged (the same object) where the cap binds on none."""
    if cap_w is None:
        return power
    fields = ("compute_w", "memory_w", "comm_w", "idle_w")
    lowered = {f: cap_w for f in fields if getattr(power, f) > cap_w}
    if not lowered:
        return power
    source = f"{power.source}; capped at {cap_w:g} W"
    return dataclasses.replace(power, source=source, **lowered)  # type: ignore[arg-type]


def from_tdp(tdp_w: float, source: str) -> GPUPower:
    """A GPU's activity powers from its TDP and the shared fractions (module doc)."""
    return GPUPower(
        tdp_w=tdp_w,
        compute_w=COMPUTE_FRACTION * tdp_w,
        memory_w=MEMORY_FRACTION * tdp_w,
        comm_w=COMM_FRACTION * tdp_w,
        idle_w=IDLE_FRACTION * tdp_w,
        source=f"TDP {tdp_w:g} W: {source}; {ACTIVITY_SOURCE}",
        assumed="memory-bound, communication and waiting draws as fractions of the TDP",
    )


# TDPs (board power limits) from the data sheets each GPU's catalog entry cites.
V100_POWER = from_tdp(300.0, "NVIDIA Tesla V100 datasheet, SXM2 300 W")
A100_POWER = from_tdp(400.0, "NVIDIA A100 datasheet, SXM4 400 W")
H100_SXM_POWER = from_tdp(700.0, "NVIDIA H100 datasheet, SXM5 up to 700 W")
H800_POWER = from_tdp(700.0, "H800 SXM5 up to 700 W (as the H100 SXM5; third-party pages)")
H100_PCIE_POWER = from_tdp(350.0, "NVIDIA H100 datasheet, PCIe 300-350 W")
H100_NVL_POWER = from_tdp(400.0, "NVIDIA H100 datasheet, H100 NVL 350-400 W")
H200_POWER = from_tdp(700.0, "NVIDIA H200 datasheet, SXM up to 700 W")
B200_POWER = from_tdp(1000.0, "NVIDIA HGX/DGX B200 specifications, up to 1,000 W")
GB200_POWER = from_tdp(1200.0, "NVIDIA GB200 NVL72 specifications, up to 1,200 W per GPU")
MI300X_POWER = from_tdp(750.0, "AMD Instinct MI300X data sheet, 750 W OAM")
MI325X_POWER = from_tdp(1000.0, "AMD Instinct MI325X data sheet, 1,000 W OAM")
