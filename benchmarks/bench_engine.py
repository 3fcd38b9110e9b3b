"""Engine scaling: wall time of whole `clustersim run` processes whose cost used to grow badly.

- gradient accumulation 256 (the step's overlap arithmetic was quadratic in its spans);
- 1 vs 128 stragglers of equal slowdown on 512 GPUs (equal stragglers share one rank class).

    python benchmarks/bench_engine.py [--python PATH] [--flags FLAGS]

PATH: another checkout's interpreter; FLAGS: `clustersim run` options (default --no-goodput,
the step alone, without the whole-run Monte Carlo; give --flags "" for a checkout that predates
it). Python's bytecode cache is on, as an installed package has it. Prints the median of 3
runs of each; the straggler ratio should be close to 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "accum 256, gpt3-1.3b zero3, 8 GPUs": {
        "model": {"preset": "gpt3-1.3b"},
        "training": {"strategy": "zero3", "grad_accum_steps": 256, "seq_len": 2048},
        "cluster": {"topology": "dgx-a100"},
    },
    "1 straggler, 512 GPUs": {
        "model": {"preset": "gpt3-1.3b"},
        "training": {"strategy": "zero3", "seq_len": 2048},
        "cluster": {
            "topology": "a100-hdr-superpod",
            "num_hosts": 64,
            "stragglers": [{"rank": 5, "slowdown": 1.2}],
        },
    },
    "128 stragglers, 512 GPUs": {
        "model": {"preset": "gpt3-1.3b"},
        "training": {"strategy": "zero3", "seq_len": 2048},
        "cluster": {
            "topology": "a100-hdr-superpod",
            "num_hosts": 64,
            "stragglers": [{"rank": 4 * i + 1, "slowdown": 1.2} for i in range(128)],
        },
    },
}


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(python: str, path: Path, flags: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [python, "-m", "simulator", "run", str(path), "--json", *flags],
            check=True,
            stdout=subprocess.DEVNULL,
            env=ENV,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the clustersim to time"
    )
    parser.add_argument("--flags", default="--no-goodput", help="options of each `clustersim run`")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scenario in CASES.items():
            path = Path(tmp) / "s.yaml"
            path.write_text(json.dumps(scenario))
            results[name] = wall(args.python, path, shlex.split(args.flags))
            print(f"  {name:<36} {results[name]:7.2f} s  (whole process, median of 3)")
    ratio = results["128 stragglers, 512 GPUs"] / results["1 straggler, 512 GPUs"]
    print(f"  128 stragglers / 1 straggler: {ratio:.2f}x")


if __name__ == "__main__":
    main()
