"""The data-parallel strategy registry: canonical name -> strategy object, and every alias.

A new strategy is one module with a `Strategy` subclass plus one entry in `_ALL`.
"""

from __future__ import annotations

from simulator.core.errors import lookup
from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.ddp import DDP
from simulator.execution.strategies.fsdp import HSDP, Zero3
from simulator.execution.strategies.zero import Zero1, Zero2

_ALL: tuple[Strategy, ...] = (DDP(), Zero1(), Zero2(), Zero3(), HSDP())

STRATEGIES: dict[str, Strategy] = {s.name: s for s in _ALL}
ALIASES: dict[str, str] = {alias: s.name for s in _ALL for alias in s.aliases}


def get_strategy(name: str, path: str = "training.strategy") -> Strategy:
    """The strategy by name or alias (case-insensitive); UserError at `path` otherwise."""
    return lookup(name, STRATEGIES, path, "strategy", ALIASES)


def by_memory() -> list[Strategy]:
    """The strategies that need no extra settings, from most to least memory per GPU."""
    return sorted((s for s in _ALL if s.name != "hsdp"), key=lambda s: s.zero_stage)
