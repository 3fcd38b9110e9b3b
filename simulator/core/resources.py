"""Where the files shipped inside the package live (importlib.resources), so that an installed
wheel finds them wherever it is, not only in a source checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_dir(kind: str) -> Path:
    """The folder of shipped `kind` files ('topologies', 'scenarios') inside the package.

    pip installs wheels unpacked, so the Traversable is a real directory."""
    return Path(str(files("simulator.data").joinpath(kind)))


def topology_dir() -> Path:
    return data_dir("topologies")


def scenario_dir() -> Path:
    return data_dir("scenarios")
