"""Sweep throughput: points per second of a 1,000-point sweep of 64-GPU scenarios.

10 model presets x 4 strategies (DDP, ZeRO-1/2/3) x 25 sequence lengths, each on 8 hosts
(64 A100s) of a100-hdr-superpod, run through `run_sweep` with a process pool of --jobs workers
(default: every core). Prints the median of --runs runs (each to a fresh CSV):

    .venv/bin/python benchmarks/bench_sweep.py [--runs 3] [--jobs N] [--dask local]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESETS = [
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "gpt3-125m",
    "gpt3-350m",
    "gpt3-760m",
    "gpt3-1.3b",
    "mpt-1b",
    "mpt-3b",
]
SWEEP = {
    "base": {
        "name": "bench-sweep",
        "model": {"preset": "gpt2"},
        # 512 sequences = 64 GPUs x micro-batch 1 x 8 accumulation steps.
        "training": {
            "micro_batch_size": 1,
            "global_batch_size": 512,
            "activation_checkpointing": "full",
        },
        "cluster": {"topology": "a100-hdr-superpod", "num_hosts": 8},
    },
    "axes": {
        "model.preset": PRESETS,
        "training.strategy": ["ddp", "zero1", "zero2", "zero3"],
        "training.seq_len": {"start": 256, "stop": 6400, "step": 256},  # 25 values
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--dask", default=None, help="'local' or a scheduler address")
    args = parser.parse_args()

    from simulator.studies.sweep.runner import run_sweep
    from simulator.studies.sweep.spec import sweep_from_dict

    sweep = sweep_from_dict(SWEEP)
    n = len(sweep.points())
    assert n == 1000, n
    times, counts = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            t0 = time.perf_counter()
            summary = run_sweep(sweep, Path(tmp) / f"run{i}.csv", jobs=args.jobs, dask=args.dask)
            times.append(time.perf_counter() - t0)
            counts = summary.status_counts
            print(f"  run {i + 1}: {times[-1]:6.1f} s  {n / times[-1]:6.1f} points/s", flush=True)
        same = len({(Path(tmp) / f"run{i}.csv").read_bytes() for i in range(args.runs)}) == 1
    median = statistics.median(times)
    print(
        f"sweep of {n} points (64 GPUs each; {counts}), {args.jobs} worker(s) on {os.cpu_count()} cores"
        f"{', dask ' + args.dask if args.dask else ''}"
    )
    print(
        f"  median of {args.runs}: {median:.1f} s = {n / median:.1f} points/s "
        f"({args.jobs * median / n * 1e3:.0f} ms per point per worker); runs byte-identical: {same}"
    )


if __name__ == "__main__":
    main()
