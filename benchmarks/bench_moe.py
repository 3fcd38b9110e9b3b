"""Wall time to simulate one mixture-of-experts step (issue 17's speed targets).

Targets: "an EP 64 step of DeepSeek-V3 on 2,048 GPUs and an EP 64 x DP all-to-all step on
16,384 GPUs each simulate in under 2 s". Cases (`simulate_step` alone, imports and the
scenario's loading excluded; medians of REPEATS runs in one process):

- DeepSeek-V3 on 2,048 H800: scenarios/deepseek-v3-2048xh800.yaml as shipped (pp 16 x ep 64 x
  dp 128, ZeRO-1, 120 micro-batches of 1 x 4,096 per pipeline, its MoE dispatcher; h800-ib-cluster
  x 256 hosts).
- DeepSeek-V3 on 16,384 H800: the same scenario dict with `cluster.num_hosts: 2048` (pp 16 x ep
  64 x dp 1,024, so edp 16; the same global batch of 15,360 sequences: 15 micro-batches per
  pipeline). Every stage's 1,024 GPUs run 16 EP 64 all-to-alls at once on the three-level fat
  tree.
- The same 16,384 GPUs with a global batch of 122,880 (120 micro-batches per pipeline, as many
  tasks as the 2,048-GPU step): for reference, no target.

"cold" simulates with a fresh SimContext (the topology is built and every collective routed and
costed); "warm" reuses one SimContext (a sweep's second point: plans and rate memos there). The
simulated step time is printed beside each, so a speed-up that changed a result shows here.
"cold cpu" is the process's CPU time of the cold runs (median): on a shared machine wall time
also counts the time other processes hold the cores.

    .venv/bin/python benchmarks/bench_moe.py [--repeats 3] [--no-reference]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "deepseek-v3-2048xh800.yaml"
TARGET_S = 2.0


def scenario(hosts: int = 256, global_batch: int | None = None) -> dict:
    from simulator.core.yamlio import read_yaml

    data = read_yaml(SCENARIO)
    if hosts != 256:
        data["name"] = f"deepseek-v3-ep64-{hosts * 8}xh800"
        data["cluster"]["num_hosts"] = hosts
    if global_batch is not None:
        data["training"]["global_batch_size"] = global_batch
    return data


def time_step(data: dict, ctx=None) -> tuple[float, float, float]:
    """(wall and CPU seconds of simulate_step, the simulated step time); a fresh SimContext
    unless given."""
    from simulator.execution.context import SimContext
    from simulator.execution.step import simulate_step
    from simulator.scenario.load import scenario_from_dict

    s = scenario_from_dict(data)
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate_step(s, ctx=ctx if ctx is not None else SimContext())
    return time.perf_counter() - t0, time.process_time() - c0, result.time_s


def row(label: str, data: dict, repeats: int, target: float | None) -> None:
    from simulator.execution.context import SimContext

    cold = [time_step(data) for _ in range(repeats)]
    shared = SimContext()
    time_step(data, shared)
    warm = [time_step(data, shared) for _ in range(repeats)]
    steps = {s for _, _, s in cold + warm}
    assert len(steps) == 1, f"the simulated step differs between runs: {steps}"
    cold_s = statistics.median(t for t, _, _ in cold)
    cpu_s = statistics.median(c for _, c, _ in cold)
    warm_s = statistics.median(t for t, _, _ in warm)
    goal = f"(target < {target:g} s)" if target is not None else "(reference)"
    print(f"{label:44s} {cold_s:8.3f} {cpu_s:8.3f} {warm_s:8.3f}   {steps.pop()!r:>20s}  {goal}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--no-reference", action="store_true", help="skip the 120-micro-batch 16,384-GPU row"
    )
    args = ap.parse_args(argv)
    print(
        f"{'case':44s} {'cold (s)':>8s} {'cold cpu':>8s} {'warm (s)':>8s}   "
        f"{'simulated step (s)':>20s}"
    )
    row("DeepSeek-V3 EP 64, 2,048 H800", scenario(), args.repeats, TARGET_S)
    row("DeepSeek-V3 EP 64 x DP, 16,384 H800", scenario(2048), args.repeats, TARGET_S)
    if not args.no_reference:
        row(
            "  same, 120 micro-batches (batch 122,880)",
            scenario(2048, 122_880),
            args.repeats,
            None,
        )


if __name__ == "__main__":
    main()
