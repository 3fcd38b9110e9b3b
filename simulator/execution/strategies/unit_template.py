"""A unit's tasks issued once per stage and replayed for every other micro-batch.

Every micro-batch of a stage issues the same tasks for a unit in a direction (block_run.py):
the same streams, durations, collectives and memory, and dependencies on the same tasks
relative to the unit's first one or to the tasks given as its inputs. Only the name's
micro-batch tag and the task ids differ. So the first issue is recorded (`record`), and the
next ones with inputs in the same pattern are copies with their names and ids moved
(`replay`): the same tasks, field for field, as issuing them again, without walking the layer
description (a pipeline stage's schedule is thousands of such units).

The pattern of the inputs: which are None and which repeat (the builder drops None and
duplicates before sorting a task's dependencies), so that mapping each recorded input to the
new one at its position gives what the builder would have made from the new inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.execution.schedule import ScheduleBuilder, Task


def pattern(deps: tuple) -> tuple:
    """Which inputs are None and which repeat an earlier one (index of the first equal)."""
    return tuple(None if d is None else deps.index(d) for d in deps)


@dataclass(frozen=True)
class UnitTemplate:
    """A unit's recorded tasks: per task its name after the unit's name, its fields, and its
    dependencies as indices among the unit's tasks (ascending) and positions among the inputs."""

    suffixes: tuple[str, ...]
    fields: tuple[dict[str, Any], ...]
    own: tuple[tuple[int, ...], ...]
    inputs: tuple[tuple[int, ...], ...]
    last: int  # the unit's last task, as an index among its tasks


def record(b: ScheduleBuilder, start: int, name: str, deps: tuple, last: int) -> UnitTemplate:
    """The template of the tasks b holds from `start` on, issued for a unit named `name` with
    inputs `deps`; `last` is the unit's last task."""
    position = {d: k for k, d in reversed(list(enumerate(deps))) if d is not None}
    suffixes, fields, own, inputs = [], [], [], []
    for t in b.tasks[start:]:
        assert t.name.startswith(name), (t.name, name)
        suffixes.append(t.name[len(name) :])
        fields.append({k: v for k, v in vars(t).items() if k not in ("name", "deps")})
        own.append(tuple(d - start for d in t.deps if d >= start))
        inputs.append(tuple(position[d] for d in t.deps if d < start))
    return UnitTemplate(tuple(suffixes), tuple(fields), tuple(own), tuple(inputs), last - start)


def replay(b: ScheduleBuilder, tpl: UnitTemplate, name: str, deps: tuple) -> int:
    """Issue the template's tasks for a unit named `name` with inputs `deps` (in the recorded
    pattern); returns the unit's last task."""
    start = len(b.tasks)
    tasks = b.tasks
    for suffix, kw, own, inputs in zip(tpl.suffixes, tpl.fields, tpl.own, tpl.inputs):
        if inputs:
            mapped = tuple(sorted({*(start + j for j in own), *(deps[k] for k in inputs)}))
        else:  # the unit's own tasks only: ascending as recorded
            mapped = tuple([start + j for j in own])
        tasks.append(Task(**kw, name=name + suffix, deps=mapped))
    return start + tpl.last
