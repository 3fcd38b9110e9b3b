"""The command registry: each module here defines `add_subcommands(subparsers)`; a new command
is a module plus its name in COMMANDS (the order of `clustersim --help`)."""

from __future__ import annotations

import importlib

COMMANDS = (
    "run",
    "validate",
    "import_configs",
    "plan",
    "sweep",
    "plot",
    "regress",
    "topology",
    "collective",
    "frameworks",
    "calibrate",
    "accuracy",
    "catalog",
)


def register_all(subparsers) -> None:
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_subcommands(subparsers)
