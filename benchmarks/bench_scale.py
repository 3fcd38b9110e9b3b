"""Whole-process wall time of `clustersim run` at 16,384 and 131,072 GPUs (the foundations
issue's targets: a cold 16,384-GPU start within 3x an 8-GPU one; 131,072 GPUs under 2 s).

Each case is a GPT-3 175B ZeRO-3 scenario on h100-ndr-cluster (three-level NDR fat tree)
scaled by cluster.num_hosts, written to a temporary directory and run as a fresh Python
process (imports, topology build, routing, step simulation and report included), once with
`--no-goodput` (the step: what the targets are about) and once as is (with the whole-run
goodput Monte Carlo of 100 runs, whose cost grows with the failures a large cluster has);
figures are medians of REPEATS runs after one unmeasured run, with Python's bytecode cache on
(as an installed wheel has it: under PYTHONDONTWRITEBYTECODE every run would first compile
the package, ~0.3 s). An 8-GPU run is timed too, as the floor a process costs:

    .venv/bin/python benchmarks/bench_scale.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ((1, None), (2048, None), (16384, 2.0))  # (hosts, target seconds)

SCENARIO = """\
name: gpt3-175b-zero3-{gpus}xh100
model: {{preset: gpt3-175b}}
training:
  strategy: zero3
  precision: bf16-mixed
  micro_batch_size: 1
  seq_len: 2048
  activation_checkpointing: full
cluster: {{topology: h100-ndr-cluster, num_hosts: {hosts}}}
"""


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(path: Path, *flags: str) -> float:
    """Seconds for one `clustersim run` in a fresh process."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(path), *flags],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for hosts, target in CASES:
            path = Path(tmp) / f"gpt3-175b-zero3-{hosts}-hosts.yaml"
            path.write_text(SCENARIO.format(gpus=hosts * 8, hosts=hosts), encoding="utf-8")
            run_once(
                path, "--no-goodput"
            )  # unmeasured: writes the bytecode cache, warms the disk cache
            medians[hosts] = statistics.median(
                run_once(path, "--no-goodput") for _ in range(args.repeats)
            )
            full = statistics.median(run_once(path) for _ in range(args.repeats))
            goal = f"  (target < {target:.0f} s)" if target else ""
            print(
                f"{hosts * 8:>8,} GPUs ({hosts:>6,} hosts): `clustersim run --no-goodput` {medians[hosts]:6.2f} s"
                f"{goal}; with goodput {full:6.2f} s (medians of {args.repeats})"
            )
    print(f"ratio 16,384 / 8 GPUs (whole process): {medians[2048] / medians[1]:.1f}x")


if __name__ == "__main__":
    main()
