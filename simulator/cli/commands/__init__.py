"""Subcommands contributed by feature modules: every module here defines
`add_subcommands(subparsers)`, and cli.py registers them all (sorted by module name)."""

from __future__ import annotations

import importlib
import pkgutil


def register_all(subparsers) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}").add_subcommands(subparsers)
