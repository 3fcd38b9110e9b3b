"""Where the shipped files live, so that both a source checkout and an installed wheel find them.

Scenarios and topologies sit at the top of the repository (`scenarios/`, `topologies/`), where a
user looks for them; `setup.py` copies them into the wheel as `simulator/data/<kind>/` at build
time. Validation cases and calibration data are package data under `simulator/data/` in both.
A wheel is installed unpacked, so each Traversable is a real directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# The kinds kept at the top of the repository and mapped into the package when a wheel is built.
TOP_LEVEL_KINDS = ("scenarios", "topologies")


def data_dir(kind: str) -> Path:
    """The folder of shipped `kind` files ('topologies', 'scenarios', 'validation', 'calibration')."""
    packaged = Path(str(files("simulator.data").joinpath(kind)))
    if kind in TOP_LEVEL_KINDS and not packaged.is_dir():
        # A source checkout (editable install or PYTHONPATH): the top-level folder beside the package.
        return Path(str(files("simulator"))).parent / kind
    return packaged


def topology_dir() -> Path:
    return data_dir("topologies")


def scenario_dir() -> Path:
    return data_dir("scenarios")
