"""The `clustersim` command: parses arguments and dispatches to cli/commands/*; the CLI layer
is the only one that prints.

A user mistake (UserError) prints every problem and exits with code 2, never a traceback;
Ctrl-C exits with 130 and a line saying so. Standard output that cannot be written (a full
disk, `> /dev/full`) is said in one line on stderr, exit code 2; a closed pipe (`| head`) ends
quietly with 0. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from simulator import __version__
from simulator.core.errors import UserError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with its own usage errors on stderr and exit code 2 (as argparse does), and the
    valid choices named."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clustersim",
        description="Simulate LLM training on GPU clusters: per-GPU memory "
        "and OOM verdicts, step time, communication, time to train.",
    )
    parser.add_argument("--version", action="version", version=f"clustersim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from simulator.cli import commands

    commands.register_all(sub)
    return parser


class StdoutError(Exception):
    """Standard output could not be written (the OSError is the cause)."""


class _GuardedStdout:
    """sys.stdout while a command runs: a failed write or flush raises StdoutError, so that it is
    told apart from the command's own OSErrors (which are bugs unless a command says otherwise)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise StdoutError() from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutError() from exc

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    real = sys.stdout
    guarded = sys.stdout = _GuardedStdout(real)
    try:
        try:
            code = _dispatch(argv)
        except (
            SystemExit
        ):  # argparse's --help, --version and usage errors: their output is flushed too
            guarded.flush()
            raise
        guarded.flush()  # here, not at interpreter exit, where a failure is a traceback-like warning
        return code
    except StdoutError as exc:
        cause = exc.__cause__
        assert isinstance(cause, OSError)  # StdoutError is only raised from an OSError
        return _stdout_failed(real, cause)
    finally:
        sys.stdout = real


def _dispatch(argv: list[str] | None) -> int:
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
    except BrokenPipeError:  # a worker's pipe; standard output's is a StdoutError
        return 0


def _stdout_failed(stream: TextIO, exc: OSError) -> int:
    """Say why standard output failed (a closed pipe: nothing to say), then point the process's
    standard output at /dev/null: Python flushes it once more at exit, and what is still buffered
    would fail again, with a warning and exit code 120 (Python's docs on SIGPIPE do the same)."""
    if stream is sys.__stdout__:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (an embedding host): nothing to redirect
            pass
    if isinstance(exc, BrokenPipeError):
        return 0
    print(f"clustersim: cannot write to standard output: {exc.strerror or exc}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
