"""All-to-all at scale (issue 17): wall time to plan and cost expert-parallel all-to-alls on the
h100-ndr-cluster fat tree (3 levels, pods of 128 hosts), and their busbw.

Cases: DeepSeek-V3's EP 64 on 2,048 GPUs (32 groups of 8 hosts) and EP 64 x DP 256 on 16,384
GPUs (256 groups run at once by cost_together; groups of 8 consecutive hosts, or strided so
that every group spans 64 hosts in all pods), one group of 8,192 and of 16,384 GPUs under the
file's ECMP (2 flows per pair: every pair crossing leaves is hashed) and under adaptive routing,
and plan_direct's routed flows at 1,024 GPUs (its limit) for reference.

Run: .venv/bin/python benchmarks/bench_all_to_all.py [--repeats 3] [--size-mib 256]
"cold": a fresh CommContext (plans every group's loads); medians over repeats.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.core.yamlio import read_yaml
from simulator.system.comm.algorithms.direct import plan_direct
from simulator.system.comm.cost import CommContext
from simulator.system.topology.loader import load_topology, topology_from_dict, topology_path


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _topology(hosts: int, policy: str | None = None):
    if policy is None:
        return load_topology("h100-ndr-cluster", hosts)
    data = read_yaml(topology_path("h100-ndr-cluster"))
    data["routing"] = {"policy": policy}
    return topology_from_dict(data, num_hosts=hosts)


def _row(label: str, topo, groups, size: int, repeats: int) -> None:
    def cold():
        return CommContext(topo).cost_together("all_to_all", groups, size)

    wall = _median_s(cold, repeats)
    cost = cold()
    print(
        f"{label:52s} {len(groups):>6d} x {len(groups[0]):<6d} {wall:8.3f} "
        f"{cost.busbw_Bps / 1e9:9.1f}  {cost.algorithm}/{cost.protocol}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=256, help="S: each rank's send buffer")
    args = ap.parse_args(argv)
    size, r = args.size_mib << 20, args.repeats
    print(f"all_to_all, S = {args.size_mib} MiB per rank, h100-ndr-cluster; cold wall time")
    print(f"{'case':52s} {'groups x GPUs':>15s} {'wall (s)':>8s} {'busbw GB/s':>9s}")
    small, big = _topology(256), _topology(2048)
    ep = tuple(tuple(range(i, i + 64)) for i in range(0, 2048, 64))
    _row("DeepSeek-V3 EP 64 on 2,048 GPUs", small, ep, size, r)
    ep = tuple(tuple(range(i, i + 64)) for i in range(0, 16384, 64))
    _row("EP 64 x DP 256, 16,384 GPUs (8 hosts per group)", big, ep, size, r)
    ep = tuple(tuple(range(i, 16384, 256)) for i in range(256))
    _row("EP 64 x DP 256, 16,384 GPUs (64 hosts per group)", big, ep, size, r)
    for gpus in (8192, 16384):
        _row(f"one group of {gpus:,}, ECMP 2 flows/pair", big, (tuple(range(gpus)),), size, r)
    adaptive = _topology(2048, "adaptive")
    for gpus in (8192, 16384):
        _row(f"one group of {gpus:,}, adaptive", adaptive, (tuple(range(gpus)),), size, r)
    group = tuple(range(1024))
    wall = _median_s(lambda: plan_direct(small, "all_to_all", group), r)
    print(
        f"{'reference: plan_direct, one group of 1,024 (flows)':52s} {1:>6d} x {1024:<6d} {wall:8.3f}"
    )


if __name__ == "__main__":
    main()
