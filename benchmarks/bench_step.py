"""Wall time to simulate one training step, from 8 to 16,384 GPUs (the foundations issue's targets).

Targets: a 96-layer GPT-3 175B ZeRO-3 step on 16,384 H100s (h100-ndr-cluster x 2,048 hosts,
a three-level fat tree) in under 2 s, and a cold 16,384-GPU step at most 3x a cold 8-GPU one
(homogeneous cluster: one rank class). Each figure is the median of REPEATS runs in one
process (imports excluded; benchmarks/bench_scale.py times whole processes):
"cold" loads the scenario and simulates it with a fresh SimContext (the topology is built and
every collective routed), "warm" reuses one SimContext (a sweep's second point on the same
cluster: topology and collective plans already there). The totals are the whole report
(`studies.simulate`: memory, the step, fit suggestions when it does not fit, and the goodput
Monte Carlo of 100 runs); "cold step" is the step alone (`simulate_step` with a fresh context):

    .venv/bin/python benchmarks/bench_step.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPEATS = 3
HOSTS = (1, 64, 2048)


def scenario(hosts: int) -> dict:
    return {
        "name": f"gpt3-175b-zero3-{hosts * 8}xh100",
        "model": {"preset": "gpt3-175b"},
        "training": {
            "strategy": "zero3",
            "precision": "bf16-mixed",
            "micro_batch_size": 1,
            "seq_len": 2048,
            "activation_checkpointing": "full",
        },
        "cluster": {"topology": "h100-ndr-cluster", "num_hosts": hosts},
    }


def time_once(hosts: int, ctx=None) -> tuple[float, float, dict]:
    """(load seconds, load + simulate seconds, report); a fresh SimContext unless one is given."""
    from simulator.execution.context import SimContext
    from simulator.scenario.load import scenario_from_dict
    from simulator.studies.simulate import simulate

    t0 = time.perf_counter()
    s = scenario_from_dict(scenario(hosts))
    t1 = time.perf_counter()
    report = simulate(s, ctx=ctx if ctx is not None else SimContext())
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0, report


def time_step(hosts: int) -> float:
    """Seconds of simulate_step alone, with a fresh SimContext."""
    from simulator.execution.context import SimContext
    from simulator.execution.step import simulate_step
    from simulator.scenario.load import scenario_from_dict

    s = scenario_from_dict(scenario(hosts))
    t0 = time.perf_counter()
    simulate_step(s, ctx=SimContext())
    return time.perf_counter() - t0


def main() -> None:
    from simulator.execution.context import SimContext

    time_once(1)  # imports and first-call costs, so the 8-GPU row is not charged for them
    print(
        f"{'GPUs':>6} {'cold load':>10} {'cold total':>11} {'warm total':>11} {'cold step':>10} {'step (s)':>9} "
        f"{'MFU':>6} {'exposed comm (s)':>17}"
    )
    cold, warm = {}, {}
    for hosts in HOSTS:
        runs = [time_once(hosts) for _ in range(REPEATS)]
        shared = SimContext()
        time_once(hosts, shared)
        warm_runs = [time_once(hosts, shared) for _ in range(REPEATS)]
        load = statistics.median(r[0] for r in runs)
        cold[hosts * 8] = statistics.median(r[1] for r in runs)
        warm[hosts * 8] = statistics.median(r[1] for r in warm_runs)
        step = runs[0][2]["step"]
        step_only = statistics.median(time_step(hosts) for _ in range(REPEATS))
        print(
            f"{hosts * 8:>6} {load:>9.3f}s {cold[hosts * 8]:>10.3f}s {warm[hosts * 8]:>10.3f}s {step_only:>9.3f}s "
            f"{step['time_s']:>9.2f} {step['mfu']:>6.3f} {step['exposed_comm_s']:>17.2f}"
        )
    print(f"16,384 GPUs cold: {cold[16384]:.2f} s (target < 2 s)")
    print(
        f"cold ratio 16,384 / 8 GPUs: {cold[16384] / cold[8]:.1f}x (target <= 3x); "
        f"warm ratio {warm[16384] / warm[8]:.1f}x"
    )


if __name__ == "__main__":
    main()
