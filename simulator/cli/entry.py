"""The `clustersim` console script and `python -m simulator`: imports next to nothing itself, so
that Ctrl-C while the rest of clustersim is still being imported (its first fraction of a second)
ends as any other Ctrl-C does, with a line and exit code 130 rather than a traceback.

Its SIGINT handler remembers that Ctrl-C was pressed: from this module's import until clustersim's
modules are imported (the launcher's own lines: the console script pip writes, runpy for
`python -m`; then main()'s imports) it only remembers, so main() ends right after; from then on it
also raises KeyboardInterrupt, as Python's own does.
Remembering lets main() tell an interrupted import from a broken one where a library turns the
KeyboardInterrupt into an error of its own (pydantic-core's Rust init: a PanicException).
Before this module is imported, Python itself is starting, and no program can catch Ctrl-C.

Exit code 130, as a shell reports Ctrl-C. Under `python -m simulator`, Python itself now and then
ends the process by SIGINT after that line (seen under load, cause not pinned down), as it does
for a Ctrl-C while it shuts down after the command: a shell reports both as 130 all the same.
"""

import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C

_interrupted = False
_raising = False


def _on_sigint(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    if _raising:
        raise KeyboardInterrupt


_python_unraisable = sys.unraisablehook


def _unraisable(info) -> None:
    """A KeyboardInterrupt raised where Python cannot propagate it (a weakref callback of the
    import machinery, a __del__) would be printed with a traceback and lost: signal it again,
    to be raised at the next line that can take it. Python may run the handler at once, inside
    this hook, where a KeyboardInterrupt is as unraisable as before: then it is dropped here and
    main() ends the command with the interrupt it remembered (_interrupted)."""
    if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return
    _python_unraisable(info)


# Only where Ctrl-C would raise KeyboardInterrupt: not where it is ignored (`nohup`, a background
# job) or handled by a host program; only the main thread may set a handler.
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    try:
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _unraisable
    except ValueError:
        pass


def main() -> int:
    global _raising
    try:
        # Imported while Ctrl-C is only remembered: a KeyboardInterrupt raised inside a compiled
        # library's initialisation (pydantic-core's Rust) ends in a Rust panic message, not a
        # clean line. The imports take a fraction of a second; the interrupt is honoured after.
        # Commands import their libraries lazily; pydantic-core's Rust initialisation is the
        # one a KeyboardInterrupt breaks (a Rust panic note on stderr), so it is imported here,
        # while Ctrl-C is only remembered (~40 ms).
        import pydantic_core  # noqa: F401

        from simulator.cli.main import main as run

        _raising = True
        if _interrupted:
            raise KeyboardInterrupt
        code = run()
        if _interrupted and code == 0:  # a Ctrl-C that no line could raise (see _unraisable)
            raise KeyboardInterrupt
        return code
    except SystemExit:
        raise
    except BaseException as exc:
        if not (
            _interrupted or isinstance(exc, KeyboardInterrupt)
        ):  # not Ctrl-C: a bug, with its traceback
            raise
        try:
            print("clustersim: interrupted", file=sys.stderr)
        except (OSError, KeyboardInterrupt):  # stderr gone, or a second Ctrl-C: still exit 130
            pass
        return EXIT_INTERRUPTED
