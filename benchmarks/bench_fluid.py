"""The fluid network's link sharing on a large pipeline layout: wall time to simulate the Llama 3
405B step in Meta's layout (mesh order [tp, pp, dp], interleaved 1F1B, ZeRO-2) on the
meta-roce-h100 topology (16 flows per GPU pair, ECMP), the validation cases
`llama3-405b-table4-*` of simulator/data/validation/model_parallel.yaml.

Every stage's data-parallel collectives and every pipeline's sends share the fabric, so one
group of concurrent phases holds ~14 phases on ~67,000 (link, phase) entries and thousands
of distinct groups occur per step; max-min rates are filled per sub-group linked by links that
can fill (network.py, sharing.FillSplit). Before that change (commit 3b6e428, this benchmark on
the same 2-core machine, two rounds): 8,192 GPUs 8.8 / 9.4 s, 16,384 GPUs 10.2 / 10.5 s (a
whole `clustersim run` process, whose first step pays more for fresh memory: 16.8 s at 8,192).
Each figure below is the median of REPEATS runs of `simulate_step` with a fresh SimContext in
one process, imports excluded; the step time printed must not move (the cases' validation
figures):

    .venv/bin/python benchmarks/bench_fluid.py [--all]   # --all adds the 16,384-GPU case
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPEATS = 3
BEFORE_S = {8192: 9.1, 16384: 10.4}  # wall seconds before the split (see module doc)


def scenario(gpus: int):
    from simulator.scenario.load import scenario_from_dict

    cases = yaml.safe_load((ROOT / "simulator/data/validation/model_parallel.yaml").read_text())
    found = [c for c in cases["cases"] if c["id"] == f"llama3-405b-table4-{gpus}"]
    return scenario_from_dict(found[0]["scenario"])


def time_step(gpus: int) -> tuple[float, float]:
    """(wall seconds, step seconds) of simulate_step with a fresh SimContext."""
    from simulator.execution.context import SimContext
    from simulator.execution.step import simulate_step

    s = scenario(gpus)
    t0 = time.perf_counter()
    step = simulate_step(s, ctx=SimContext())
    return time.perf_counter() - t0, step.time_s


def main() -> None:
    sizes = (8192, 16384) if "--all" in sys.argv else (8192,)
    print(f"{'GPUs':>6} {'wall (s)':>9} {'before (s)':>11} {'step time (ms)':>16}")
    for gpus in sizes:
        runs = [time_step(gpus) for _ in range(REPEATS)]
        wall = statistics.median(r[0] for r in runs)
        print(f"{gpus:>6} {wall:>9.2f} {BEFORE_S[gpus]:>11.1f} {runs[0][1] * 1e3:>16.4f}")


if __name__ == "__main__":
    main()
