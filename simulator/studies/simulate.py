"""One scenario end to end: specs -> memory model -> step engine -> report dict."""

from __future__ import annotations

from typing import Any

from simulator.execution.memory import memory_breakdown
from simulator.report.report import build_report, step_sections
from simulator.scenario.load import Scenario
from simulator.execution.step import simulate_step


def simulate(scenario: Scenario, trace_path: str | None = None, backend: str = "fluid") -> dict[str, Any]:
    """The full report for a scenario, as the JSON contract's dict."""
    mem = memory_breakdown(scenario)
    step = simulate_step(scenario, mem, backend=backend)
    if trace_path:
        from simulator.report.trace import write_trace

        write_trace(step, trace_path)
    return build_report(scenario, mem, step_sections(scenario, step))
