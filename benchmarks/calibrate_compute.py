"""Fit the compute model's one end-to-end factor to the MPT throughput table, and print it.

The GEMM, HBM and attention efficiencies in hardware.py are isolated-kernel measurements.
A training step sustains less than those rooflines add up to (framework and launch gaps,
clocks under sustained load; NCCL kernels holding SMs beside compute are modelled by the
engine, so they are not in the factor). One factor per GPU,
`end_to_end`, scales every kernel's time; this script fits it for A100 as the geometric mean
of predicted/published tokens/s over the six MPT rows (least squares in log space) with the
factor set to 1, and prints the fit and the table it leaves.

    .venv/bin/python benchmarks/calibrate_compute.py
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.execution.memory import memory_breakdown
from simulator.execution.step import simulate_step
from simulator.scenario.load import scenario_from_dict
from simulator.system import hardware
from tests.reference.mpt import MPT_A100_8GPU, mpt_scenario


def predictions(end_to_end: float) -> list[tuple[str, float, float]]:
    gpu = hardware.GPU_CATALOG["a100-80gb"]
    eff = dataclasses.replace(gpu.efficiency, end_to_end=end_to_end)
    hardware.GPU_CATALOG["a100-80gb"] = dataclasses.replace(gpu, efficiency=eff)
    try:
        rows = []
        for preset, mb, accum, published, _ in MPT_A100_8GPU:
            s = scenario_from_dict(mpt_scenario(preset, mb, accum))
            step = simulate_step(s, memory_breakdown(s))
            rows.append((preset, s.tokens_per_step / step.time_s / s.cluster.num_gpus, published))
        return rows
    finally:
        hardware.GPU_CATALOG["a100-80gb"] = gpu


def main() -> None:
    raw = predictions(1.0)
    log_ratio = [math.log(pred / pub) for _, pred, pub in raw]
    fitted = math.exp(-sum(log_ratio) / len(log_ratio))
    print(
        f"isolated-kernel model overestimates MPT throughput by x{1 / fitted:.3f} (geometric mean)"
    )
    print(
        f"fitted end_to_end factor for A100: {fitted:.3f}  (catalog: "
        f"{hardware.GPU_CATALOG['a100-80gb'].efficiency.end_to_end:.3f})"
    )
    print(f"{'model':<10}{'published':>11}{'raw':>10}{'fitted':>10}{'error':>9}")
    for (name, pred_raw, pub), (_, pred_fit, _) in zip(raw, predictions(round(fitted, 3))):
        print(
            f"{name:<10}{pub:>11,.0f}{pred_raw:>10,.0f}{pred_fit:>10,.0f}{100 * (pred_fit / pub - 1):>8.1f}%"
        )


if __name__ == "__main__":
    main()
