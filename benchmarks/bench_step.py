"""Wall time to simulate one training step, from 8 to 16,384 GPUs (issue 4's performance targets).

Targets: a 96-layer GPT-3 175B ZeRO-3 step on 16,384 H100s in a three-level fat tree in under
2 s; the wall time at 16,384 GPUs at most 3x that at 8 GPUs (homogeneous cluster: one rank
class). Each figure is the median of REPEATS runs measured in one process, "cold" from empty
caches (the topology is built and every collective routed), "warm" with the topology and
collective plans already cached (a sweep's second point on the same cluster):

    .venv/bin/python benchmarks/bench_step.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPEATS = 3


def scenario(hosts: int) -> dict:
    return {"name": f"gpt3-175b-zero3-{hosts * 8}xh100",
            "model": {"preset": "gpt3-175b"},
            "training": {"strategy": "zero3", "precision": "bf16-mixed", "micro_batch_size": 1,
                         "seq_len": 2048, "activation_checkpointing": "full"},
            "cluster": {"topology": "h100-ndr-cluster", "num_hosts": hosts}}


def clear_caches() -> None:
    from simulator.system.comm import collectives
    from simulator.execution import layout
    from simulator.system.comm import network
    from simulator.system.topology import graph as topology

    for mod in (topology, collectives, layout):
        for obj in vars(mod).values():
            if hasattr(obj, "cache_clear"):
                obj.cache_clear()
    network._RATES_MEMO.clear()


def time_once(hosts: int, cold: bool = True) -> tuple[float, float, dict]:
    from simulator.scenario.load import scenario_from_dict
    from simulator.studies.simulate import simulate

    if cold:
        clear_caches()
    t0 = time.perf_counter()
    s = scenario_from_dict(scenario(hosts))
    t1 = time.perf_counter()
    report = simulate(s)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0, report


def main() -> None:
    print(f"{'GPUs':>6} {'cold load':>10} {'cold total':>11} {'warm total':>11} {'step (s)':>9} {'MFU':>6} "
          f"{'exposed comm (s)':>17}")
    cold, warm = {}, {}
    for hosts in (1, 64, 2048):
        runs = [time_once(hosts) for _ in range(REPEATS)]
        warm_runs = [time_once(hosts, cold=False) for _ in range(REPEATS)]
        load = statistics.median(r[0] for r in runs)
        cold[hosts * 8] = statistics.median(r[1] for r in runs)
        warm[hosts * 8] = statistics.median(r[1] for r in warm_runs)
        step = runs[0][2]["step"]
        print(f"{hosts * 8:>6} {load:>9.3f}s {cold[hosts * 8]:>10.3f}s {warm[hosts * 8]:>10.3f}s "
              f"{step['time_s']:>9.2f} {step['mfu']:>6.3f} {step['exposed_comm_s']:>17.2f}")
    print(f"16,384 GPUs cold: {cold[16384]:.2f} s (target < 2 s)")
    print(f"ratio 16,384 / 8 GPUs: cold {cold[16384] / cold[8]:.1f}x, warm {warm[16384] / warm[8]:.1f}x "
          f"(target <= 3x)")


if __name__ == "__main__":
    main()
