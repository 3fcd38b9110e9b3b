"""The `clustersim` command: parses arguments and dispatches to cli/commands/*; the CLI layer
is the only one that prints.

A user mistake (UserError) prints every problem and exits with code 2, never a traceback;
Ctrl-C exits with 130 and a line saying so. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from simulator import __version__
from simulator.core.errors import UserError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with its own usage errors on stderr and exit code 2 (as argparse does), and the
    valid choices named."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clustersim", description="Simulate LLM training on GPU clusters: per-GPU memory "
                     "and OOM verdicts, step time, communication, time to train.")
    parser.add_argument("--version", action="version", version=f"clustersim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from simulator.cli import commands

    commands.register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clustersim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
