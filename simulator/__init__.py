"""clustersim: discrete-event simulator of LLM training on GPU clusters.

The Python API, imported on first use so that `import simulator` stays light:

    import simulator
    result = simulator.run(simulator.load("llama2-7b-zero3-8xa100"))
    result.memory.fits, result.step.time_s, result.to_dict()

`load`, `run`, `Session`, `sweep` and `Result` live in simulator/studies/api.py; `UserError` (every
user mistake, with field paths) in simulator/core/errors.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0.dev0"

_API = {
    "load": "simulator.studies.api",
    "run": "simulator.studies.api",
    "sweep": "simulator.studies.api",
    "Session": "simulator.studies.api",
    "Result": "simulator.studies.api",
    "UserError": "simulator.core.errors",
}

__all__ = ["Result", "Session", "UserError", "__version__", "load", "run", "sweep"]

if TYPE_CHECKING:
    from simulator.core.errors import UserError
    from simulator.studies.api import Result, Session, load, run, sweep


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
