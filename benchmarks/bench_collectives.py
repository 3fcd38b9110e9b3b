"""Wall time to cost an all-reduce at 8, 512 and 16,384 GPUs, plus the fluid network's cost.

Run: .venv/bin/python benchmarks/bench_collectives.py [--repeats 5]
Prints medians over repeats. "cold" costs on a fresh CommContext (routing all flows of every
candidate algorithm); "warm" costs a new size on an already planned group.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.system.comm.cost import CommContext, collective_cost  # noqa: E402
from simulator.system.comm.network import FluidNetwork  # noqa: E402
from simulator.system.topology.loader import load_topology  # noqa: E402
from tests.reference.nccl import AZURE_A100_ALLREDUCE_BUSBW_GBPS as PUBLISHED_A100_BUSBW_GBPS  # noqa: E402

CASES = [(8, "dgx-a100", None), (512, "h100-ndr-cluster", 64), (16384, "h100-ndr-cluster", 2048)]
SIZE = 1 << 30


def _median_s(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_case(gpus: int, name: str, hosts: int | None, repeats: int) -> dict:
    """Median wall times for one cluster size."""

    load_s = _median_s(lambda _i: load_topology(name, hosts), repeats)
    topo = load_topology(name, hosts)
    assert topo.num_gpus == gpus
    cold_s = _median_s(lambda _i: collective_cost(topo, "all_reduce", "all", SIZE, ctx=CommContext(topo)), repeats)
    ctx = CommContext(topo)
    warm_s = _median_s(
        lambda i: collective_cost(topo, "all_reduce", "all", SIZE + 4 * (i + 1), ctx=ctx), repeats
    )
    cost = collective_cost(topo, "all_reduce", "all", SIZE, ctx=ctx)
    gather = collective_cost(topo, "all_gather", "all", SIZE, ctx=ctx)

    def fluid(_i):
        env = simpy.Environment()
        net = FluidNetwork(env, CommContext(topo))
        net.start(cost)
        net.start(gather)
        env.run()

    fluid_s = _median_s(fluid, repeats)
    return {
        "gpus": gpus,
        "topology": f"{name} x{topo.num_hosts}",
        "load_s": load_s,
        "cold_s": cold_s,
        "warm_s": warm_s,
        "fluid_s": fluid_s,
        "algorithm": f"{cost.algorithm}/{cost.protocol}",
        "busbw_GBps": cost.busbw_Bps / 1e9,
    }


def print_calibration() -> None:
    """Predicted vs published all-reduce busbw on 8x A100 NVSwitch."""
    topo = load_topology("dgx-a100")
    print("8x A100 NVSwitch all_reduce: predicted vs Azure ND A100 v4 nccl-tests busbw")
    print(
        f"{'size (B)':>12s} {'time (us)':>10s} {'predicted':>10s} {'published':>10s} {'error':>8s}  algorithm"
    )
    for size, published in PUBLISHED_A100_BUSBW_GBPS.items():
        c = collective_cost(topo, "all_reduce", "all", size)
        pred = c.busbw_Bps / 1e9
        print(
            f"{size:12d} {c.time_s * 1e6:10.1f} {pred:10.2f} {published:10.2f} {pred / published - 1:+8.1%}  "
            f"{c.algorithm}/{c.protocol}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print_calibration()
    print(f"all_reduce of {SIZE} B over every GPU; medians of {args.repeats} runs (seconds)")
    print(
        f"{'GPUs':>6s}  {'topology':24s} {'load':>8s} {'cold cost':>10s} {'warm cost':>10s} "
        f"{'fluid AR+AG':>12s}  {'algorithm':14s} {'busbw GB/s':>10s}"
    )
    for r in (bench_case(*case, args.repeats) for case in CASES):
        print(
            f"{r['gpus']:6d}  {r['topology']:24s} {r['load_s']:8.4f} {r['cold_s']:10.4f} {r['warm_s']:10.6f} "
            f"{r['fluid_s']:12.4f}  {r['algorithm']:14s} {r['busbw_GBps']:10.1f}"
        )


if __name__ == "__main__":
    main()
