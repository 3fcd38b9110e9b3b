"""Wall time of the goodput Monte Carlo (issue 12's target: 100 seeds of a 1M-step run in under
10 s on 2 cores).

The run: Llama 3 405B (preset) with ZeRO-3 on 16,384 H100 (h100-ndr-cluster, 2,048 hosts) and
the default reliability section (Llama 3 failure rates, Tectonic bandwidths, 10-min restarts),
1,000,000 steps of the given step time, so ~3,000 interruptions per run at 27.8 s a step. The
step time is an input here (the step simulation is not what is timed). Also: the cost of the
goodput section in `clustersim run` of the default scenario (its step time as input).

    .venv/bin/python benchmarks/bench_goodput.py [--step-s 27.8] [--runs 100]
"""

from __future__ import annotations

import argparse
import sys
import time
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
    from simulator.scenario.load import DEFAULT_SCENARIO, load_scenario, scenario_from_dict
    from simulator.studies.goodput import simulate_goodput

    parser = argparse.ArgumentParser()
    parser.add_argument("--step-s", type=float, default=27.8)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes (default 2: the target is 2 cores)"
    )
    args = parser.parse_args()
    scenario = scenario_from_dict(SCENARIO)
    print(
        f"{args.runs} seeds of a {args.steps:,}-step run at {args.step_s:g} s/step "
        f"({args.steps * args.step_s / 86400:,.1f} failure-free days, 16,384 GPUs):"
    )
    walls = {}
    for jobs in sorted({1, args.jobs}):
        t0 = time.perf_counter()
        result = simulate_goodput(
            scenario, args.step_s, args.steps * args.step_s, runs=args.runs, seed=0, jobs=jobs
        )
        elapsed = time.perf_counter() - t0
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
    t0 = time.perf_counter()
    simulate_goodput(default, 1.0143, 48.3 * 86400)
    print(
        f"default scenario ({DEFAULT_SCENARIO}), {default.reliability.runs} runs: "
        f"{(time.perf_counter() - t0) * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
