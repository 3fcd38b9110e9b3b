"""Strategies turn a scenario into one rank's schedule of compute, collectives and memory events.

STRATEGIES maps a canonical strategy name to a builder `(Context) -> ScheduleBuilder`; a new
strategy is one module plus one line here.
"""

from __future__ import annotations

from simulator.execution.strategies import replicated, sharded

STRATEGIES = {
    "ddp": lambda ctx: replicated.build(ctx, stage=0),
    "zero1": lambda ctx: replicated.build(ctx, stage=1),
    "zero2": lambda ctx: replicated.build(ctx, stage=2),
    "zero3": lambda ctx: sharded.build(ctx, hybrid=False),
    "hsdp": lambda ctx: sharded.build(ctx, hybrid=True),
}
