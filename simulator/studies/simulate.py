"""One scenario end to end: specs -> memory model -> step engine -> metrics -> report dict."""

from __future__ import annotations

from typing import Any

from simulator.execution.breakdown import step_breakdown
from simulator.execution.context import SimContext
from simulator.execution.memory import stage_memory
from simulator.execution.metrics import SECONDS_PER_DAY, step_metrics, training_metrics
from simulator.execution.step import simulate_step
from simulator.report.document import build_report
from simulator.spec.specs import Scenario
from simulator.studies import intervals
from simulator.studies.goodput import simulate_goodput
from simulator.studies.suggest import fit_suggestions


def simulate(
    scenario: Scenario,
    trace_path: str | None = None,
    backend: str = "fluid",
    ctx: SimContext | None = None,
    runs: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
    goodput: bool = True,
    interval: bool = True,
) -> dict[str, Any]:
    """The full report for a scenario, as the JSON contract's dict. Pass one `ctx` to reuse
    built topologies and collective plans across scenarios (sweeps, the planner). `runs` and
    `seed` override the reliability section's Monte Carlo of the whole run, which may use `jobs`
    processes; `goodput` False skips it. `interval` adds the 80% interval of the step time
    (studies/intervals.py; off where the validation cases themselves are predicted)."""
    stages = stage_memory(scenario)
    mem = max(stages, key=lambda m: (m.total_bytes, -m.stage))  # memory_breakdown's worst stage
    step = simulate_step(scenario, stages, backend=backend, ctx=ctx)
    metrics = step_metrics(scenario, step)
    if trace_path:
        from simulator.report.trace import write_trace

        write_trace(step, trace_path)
    suggestions = [] if mem.fits else fit_suggestions(scenario)
    training = training_metrics(scenario, metrics)
    found = (
        simulate_goodput(
            scenario, metrics.time_s, training.days * SECONDS_PER_DAY, runs, seed, jobs
        )
        if goodput
        else None
    )
    breakdown = step_breakdown(scenario, step)
    report = build_report(
        scenario, mem, suggestions, step, metrics, training, found, stages, breakdown
    )
    if interval:
        intervals.attach(report, scenario)
    return report
