"""A unit's tasks replayed from the first micro-batch's (strategies/unit_template.py) are the tasks
issuing it afresh gives, field for field, on every kind of stage schedule."""

from __future__ import annotations

import itertools

import pytest

from simulator.execution.context import SimContext
from simulator.execution.schedule import ScheduleBuilder, Task
from simulator.execution.step import Comm, compute_model, rank_classes, stage_memory
from simulator.execution.strategies import passes
from simulator.execution.strategies.unit_template import pattern, record, replay
from simulator.scenario.load import load_scenario, scenario_from_dict

SCENARIOS = (
    "llama2-7b-zero3-8xa100",  # FSDP's per-layer gathers and reduce-scatters (session hooks)
    "llama2-70b-tp8-64xa100",  # tensor parallelism folded in, DDP
    "mixtral-8x7b-ep8-64xh100",  # expert all-to-alls, pipeline stages
    "gpt3-175b-megatron-1024xa100",  # 3D, interleaved pipeline
)


def _schedules(scenario) -> list[tuple[Task, ...]]:
    ctx = SimContext()
    comm = Comm(
        ctx.comm(scenario.cluster, scenario.calibration.comm, nvls=scenario.training.nvls),
        scenario.training.collective_algorithm,
        "fluid",
    )
    classes = rank_classes(scenario, stage_memory(scenario), compute_model(scenario), comm)
    return [c.schedule.tasks for c in classes]


def _afresh(monkeypatch) -> None:
    """Every unit issued afresh: no two issues share a template key."""
    counter = itertools.count()
    monkeypatch.setattr(passes, "pattern", lambda deps: next(counter))


@pytest.mark.parametrize("name", SCENARIOS)
def test_replayed_schedule_equals_the_one_issued_afresh(name, monkeypatch):
    scenario = load_scenario(name)
    replayed = _schedules(scenario)
    _afresh(monkeypatch)
    assert _schedules(scenario) == replayed


def test_combined_1f1b_passes_are_issued_afresh_and_unchanged(monkeypatch):
    """Combined 1F1B (training.moe.overlap 1f1b) switches halves inside a unit: never replayed."""
    data = load_scenario("mixtral-8x7b-ep8-64xh100").data()
    data["training"]["moe"]["overlap"] = "1f1b"
    data["training"]["parallelism"]["pipeline"] = {
        "schedule": "interleaved-1f1b",
        "virtual_stages": 2,
    }
    scenario = scenario_from_dict(data)
    replayed = _schedules(scenario)
    _afresh(monkeypatch)
    assert _schedules(scenario) == replayed


def test_replay_maps_inputs_in_their_pattern_and_moves_own_tasks():
    """By hand: a unit of two tasks, the second waiting for the first and for input 1; its
    inputs (7, None, 3) recorded, replayed with (2, None, 9): ids move, the input at position 2
    maps to 9, and dependencies stay sorted."""
    b = ScheduleBuilder(
        tasks=[Task(name=f"t{i}", stream="compute", phase="forward") for i in range(8)]
    )
    first = b.add("mb0 fwd a", "compute", "forward", deps=(7, None, 3), duration_s=1.0)
    last = b.add("mb0 fwd a wait", "compute", "forward", deps=(first, 3))
    tpl = record(b, first, "mb0 fwd a", (7, None, 3), last)
    assert pattern((7, None, 3)) == pattern((2, None, 9)) == (0, None, 2)
    end = replay(b, tpl, "mb1 fwd a", (2, None, 9))
    assert end == len(b.tasks) - 1 == 11
    assert b.tasks[10] == Task(
        name="mb1 fwd a", stream="compute", phase="forward", deps=(2, 9), duration_s=1.0
    )
    assert b.tasks[11] == Task(
        name="mb1 fwd a wait", stream="compute", phase="forward", deps=(9, 10)
    )
