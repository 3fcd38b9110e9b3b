"""One scenario end to end: specs -> memory model (-> step engine) -> report dict."""

from __future__ import annotations

from typing import Any

from simulator.memory import memory_breakdown
from simulator.report import build_report
from simulator.scenario import Scenario


def simulate(scenario: Scenario, trace_path: str | None = None) -> dict[str, Any]:
    """The full report for a scenario, as the JSON contract's dict."""
    mem = memory_breakdown(scenario)
    return build_report(scenario, mem)
