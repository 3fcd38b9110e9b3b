"""Wall time of the goodput Monte Carlo (issue 12's target: 100 seeds of a 1M-step run in under
10 s on 2 cores).

The run: Llama 3 405B (preset) with ZeRO-3 on 16,384 H100 (h100-ndr-cluster, 2,048 hosts) and
the default reliability section (Llama 3 failure rates, Tectonic bandwidths, 10-min restarts),
1,000,000 steps of the given step time, so ~3,000 interruptions per run at 27.8 s a step. The
step time is an input here (the step simulation is not what is timed). Also: the cost of the
goodput section in `clustersim run` of the default scenario (its step time as input). These
runs take the vectorized renewal process (renewal.py); `--simpy` times the simpy processes
(process.py) on the same runs instead. Figures are medians of `--repeats` timings.

    .venv/bin/python benchmarks/bench_goodput.py [--step-s 27.8] [--runs 100] [--repeats 3] [--simpy]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENARIO = {
    "name": "bench-goodput-llama3-405b-16k",
    "model": {"preset": "llama3-405b"},
    "training": {
        "precision": "bf16-mixed",
        "strategy": "zero3",
        "seq_len": 4096,
        "activation_checkpointing": "full",
    },
    "cluster": {"topology": "h100-ndr-cluster", "num_hosts": 2048},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-s", type=float, default=27.8)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes (default 2: the target is 2 cores)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--simpy", action="store_true", help="the simpy processes, not renewal.py")
    args = parser.parse_args()
    with simpy_only() if args.simpy else nullcontext():
        bench(args)


def timed(args, f):
    """(median seconds of `args.repeats` calls of f, its last result)."""
    times, result = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench(args) -> None:
    from simulator.scenario.load import DEFAULT_SCENARIO, load_scenario, scenario_from_dict
    from simulator.studies.goodput import simulate_goodput

    scenario = scenario_from_dict(SCENARIO)
    print(
        f"{args.runs} seeds of a {args.steps:,}-step run at {args.step_s:g} s/step "
        f"({args.steps * args.step_s / 86400:,.1f} failure-free days, 16,384 GPUs), "
        f"{'simpy' if args.simpy else 'renewal'}, medians of {args.repeats}:"
    )
    walls = {}
    for jobs in sorted({1, args.jobs}):
        elapsed, result = timed(
            args,
            lambda jobs=jobs: simulate_goodput(
                scenario, args.step_s, args.steps * args.step_s, runs=args.runs, seed=0, jobs=jobs
            ),
        )
        events = sum(sum(r.interruptions.values()) for r in result.runs) / args.runs
        walls[jobs] = [r.wall_s for r in result.runs]
        print(
            f"  {jobs} process(es): {elapsed:.2f} s in all, {elapsed / args.runs * 1e3:.1f} ms per run, "
            f"{events:,.0f} interruptions per run"
        )
    assert len({tuple(w) for w in walls.values()}) == 1, "the same runs whatever the process count"
    print(
        f"  wall days p50 {result.percentile(result.wall_days, 50):,.1f}, "
        f"effective training time {100 * result.ettr.mean():.1f}%"
    )
    # What the goodput section adds to `clustersim run` of the default scenario (8 A100s, 48 days).
    default = load_scenario(DEFAULT_SCENARIO)
    elapsed, _ = timed(args, lambda: simulate_goodput(default, 1.0143, 48.3 * 86400))
    print(
        f"default scenario ({DEFAULT_SCENARIO}), {default.reliability.runs} runs: "
        f"{elapsed * 1e3:.0f} ms"
    )


def simpy_only():
    """renewal.supports answers False for the duration: every run takes the simpy processes."""
    from unittest import mock

    from simulator.studies.goodput import renewal

    return mock.patch.object(renewal, "supports", lambda model: False)


if __name__ == "__main__":
    main()
