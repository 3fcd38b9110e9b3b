"""Issue 19's table, every row with its target beside it: the speed a capacity planner feels.

Rows (medians of REPEATS runs, one process; CPU seconds beside wall seconds, the steadier figure
on a shared 2-core machine):

1. `clustersim run` of the shipped Llama 3 405B scenario (tp 8 x pp 16 on 16,384 H100), a fresh
   Python process, goodput included, and with `--no-goodput`.
2. `clustersim run` of GPT-3 175B ZeRO-3 on 131,072 H100 (h100-ndr-cluster, 16,384 hosts), the
   same two ways.
3. A warm in-process evaluation of the default 8-GPU scenario (Llama-2-7B ZeRO-3) through the
   public API's `Session` (topology and routed collectives kept): the step alone, and with the
   goodput Monte Carlo.
4. A warm in-process evaluation of the 405B step (`Session`, `goodput=False`).
5. `plan parallel` of the 405B scenario (every layout's memory checked; the planner's default
   number simulated) in process.
6. The shipped sweep `llama2-capacity` (112 points) in process, on the sweep runner's workers.

    .venv/bin/python benchmarks/bench_speed.py [--repeats 3] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
LLAMA405 = "llama3-405b-tp8-pp16-16k-h100"
GPT3_131K = """\
name: gpt3-175b-zero3-131072xh100
model: {preset: gpt3-175b}
training: {strategy: zero3, precision: bf16-mixed, micro_batch_size: 1, seq_len: 2048,
           activation_checkpointing: full}
cluster: {topology: h100-ndr-cluster, num_hosts: 16384}
"""


def _process(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python -m simulator ...` in a fresh process."""
    t0 = time.perf_counter()
    r0 = os.times()
    subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    r1 = os.times()
    return time.perf_counter() - t0, (r1.children_user - r0.children_user) + (
        r1.children_system - r0.children_system
    )


def _inproc(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _row(
    what: str, runs: list[tuple[float, float]], target_s: float | None, unit: str = "s"
) -> None:
    wall, cpu = _median(runs)
    scale = 1000.0 if unit == "ms" else 1.0
    target = f"{target_s * scale:g} {unit}" if target_s is not None else "-"
    met = "" if target_s is None else ("  met" if wall <= target_s else "  MISSED")
    print(
        f"  {what:<58} {wall * scale:9.3f} {unit} wall {cpu * scale:9.3f} {unit} CPU"
        f"   target <= {target}{met}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true", help="leave out row 6 (~15-45 s)")
    args = parser.parse_args()
    n = args.repeats

    print("Issue 19's speed table (medians of", n, "runs):")
    with tempfile.TemporaryDirectory() as tmp:
        gpt3 = Path(tmp) / "gpt3-131k.yaml"
        gpt3.write_text(GPT3_131K)
        for label, target_args in (
            ("run 405B tp8 x pp16, 16,384 H100, process", ["run", LLAMA405]),
            ("run 175B ZeRO-3, 131,072 H100, process", ["run", str(gpt3)]),
        ):
            _process(target_args)  # bytecode cache, page cache
            _row(label + ", goodput", [_process(target_args) for _ in range(n)], 0.8)
            no_gp = [*target_args, "--no-goodput"]
            _row(label + ", --no-goodput", [_process(no_gp) for _ in range(n)], None)

    import simulator

    session = simulator.Session()
    small = simulator.load("llama2-7b-zero3-8xa100").data()
    for goodput, target in ((False, 0.001), (True, 0.003)):
        session.run(small, goodput=goodput)
        runs = [_inproc(lambda g=goodput: session.run(small, goodput=g)) for _ in range(max(n, 10))]
        _row(f"warm 8-GPU Llama-2-7B ZeRO-3, goodput={goodput}", runs, target, "ms")

    big = simulator.load(LLAMA405).data()
    session.run(big, goodput=False)
    _row(
        "warm 405B step", [_inproc(lambda: session.run(big, goodput=False)) for _ in range(n)], 0.05
    )

    from simulator.scenario.load import load_scenario
    from simulator.studies.parallel_plan import parallel_plan

    scenario = load_scenario(LLAMA405)
    plans = []

    def plan() -> None:
        plans.append(parallel_plan(scenario))

    _row("plan parallel 405B on 16,384 H100", [_inproc(plan) for _ in range(max(1, n // 3))], 2.0)
    p = plans[-1]
    print(f"    ({p.layouts} layouts, {p.fitting} fit, {p.memory_checks} memory checks)")

    if not args.skip_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "results.csv"
            sweep_args = [
                "sweep",
                str(ROOT / "scenarios" / "sweeps" / "llama2-capacity.yaml"),
                "--out",
                str(out),
            ]
            runs = []
            for _ in range(max(1, n // 3)):
                out.unlink(missing_ok=True)
                runs.append(_process(sweep_args))
            _row("shipped sweep llama2-capacity (112 points), process", runs, 5.0)


if __name__ == "__main__":
    main()
