"""Wall time of `clustersim run` on the default scenario (issue 2's target: well under a second).

Reports the median of 5 in-process runs (load + memory model + step simulation + report) and
the median of 3 whole-command runs (a fresh Python process each, imports included):

    .venv/bin/python benchmarks/bench_run.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from simulator.report.text import render_text
    from simulator.scenario.load import DEFAULT_SCENARIO, load_scenario, scenario_path
    from simulator.studies.simulate import simulate

    path = scenario_path(DEFAULT_SCENARIO)
    inproc = []
    for _ in range(5):
        t0 = time.perf_counter()
        render_text(simulate(load_scenario(path)))
        inproc.append(time.perf_counter() - t0)
    whole = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "simulator", "run", str(path)],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        whole.append(time.perf_counter() - t0)
    print(f"default scenario {path.name}")
    print(
        f"  in-process run (median of 5):         {statistics.median(inproc) * 1e3:8.1f} ms "
        f"(first {inproc[0] * 1e3:.1f} ms)"
    )
    print(f"  `python -m simulator run` (median of 3): {statistics.median(whole) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
