"""The layering of the package: imports only point to earlier layers (core.layers.LAYERS), and
yaml, pydantic and simpy stay in their one home each."""

from __future__ import annotations

import ast
from pathlib import Path

import simulator
from simulator.core.layers import CONFINED, LAYERS, layer_of

ROOT = Path(simulator.__file__).parent


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import statement, functions' included."""
    found = []
    for path in ROOT.rglob("*.py"):
        module = "simulator." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found += [(module, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_imports_never_point_to_a_later_layer():
    upward = []
    for src, dst in imports():
        a, b = layer_of(src), layer_of(dst)
        if a and b and LAYERS.index(b) > LAYERS.index(a):
            upward.append(f"{src} -> {dst}")
    assert not upward, "\n".join(upward)


def test_confined_libraries_stay_home():
    strays = [
        f"{src} imports {lib}"
        for src, dst in imports()
        for lib, homes in CONFINED.items()
        if dst.split(".")[0] == lib and not src.startswith(homes)
    ]
    assert not strays, "\n".join(strays)


def test_every_module_is_in_a_layer():
    modules = {src for src, _ in imports()}
    loose = [
        m for m in modules if layer_of(m) is None and m not in ("simulator", "simulator.__main__")
    ]
    assert not loose, loose
