"""The package's layers, in order: a module may import from its own layer and the ones before
it, never after (data flows scenario -> specs -> schedules -> engine -> metrics -> report).

Third-party libraries with one home: yaml (core/yamlio), pydantic (the YAML edge, scenario/),
simpy (the engine and the network model). tests/test_layers.py enforces all of it, and
docs/import_graph.py draws the graph.
"""

from __future__ import annotations

LAYERS = ("core", "model", "system", "spec", "execution", "report", "scenario", "studies", "cli")

# library -> the module prefixes allowed to import it
CONFINED = {
    "yaml": ("simulator.core.yamlio",),
    "pydantic": ("simulator.scenario",),
    "simpy": (
        "simulator.execution.engine",
        "simulator.system.comm.network",
        "simulator.studies.goodput",
    ),
}


def layer_of(module: str) -> str | None:
    """'simulator.system.comm.cost' -> 'system'; None for the package root and data."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None
