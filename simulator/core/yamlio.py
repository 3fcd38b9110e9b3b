"""Reading YAML files: the only module that imports yaml.

Syntax errors become `ScenarioError`s that name the file, line and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulator.core.errors import Problem, ScenarioError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file; a clear error if it is missing, malformed or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(Problem("", "file not found", "give the path of a YAML file"), str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ScenarioError(Problem("", f"invalid YAML at {where}: {exc.problem}"), str(path)) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(Problem("", f"invalid YAML: {exc}"), str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(
            Problem("", f"expected a mapping of keys at the top of the file, got {type(data).__name__}"),
            str(path),
        )
    return data

