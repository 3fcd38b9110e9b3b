"""Process pools for the studies (sweep points, goodput Monte Carlo runs) whose workers never
outlive the command: Ctrl-C is left to the main process, SIGTERM kills a worker, and a worker
whose main process is gone (killed with SIGKILL, so it could not stop its pool) exits instead of
computing on for nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

# How often a pool worker checks that its main process is still alive.
PARENT_POLL_S = 0.5


def worker_pool(max_workers: int, poll_s: float = PARENT_POLL_S) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor whose workers run `_worker_init`."""
    return ProcessPoolExecutor(
        max_workers=max_workers, initializer=_worker_init, initargs=(poll_s,)
    )


def _worker_init(poll_s: float) -> None:
    """In each pool worker: leave Ctrl-C to the main process (it stops the pool, without a
    traceback from every worker), die of SIGTERM (a forked worker inherits the CLI's handler,
    but the pool is stopped by terminate()), and exit once the main process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The parent now: the main process, or the fork server that is (and exits with it).
    parent = os.getppid()
    threading.Thread(
        target=_exit_with_parent, args=(parent, poll_s), name="pool-parent-watch", daemon=True
    ).start()


def _exit_with_parent(parent: int, poll_s: float) -> None:
    while os.getppid() == parent:  # an orphan is adopted by init or a subreaper: the ppid changes
        time.sleep(poll_s)
    os._exit(1)


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now (Python >= 3.14 has terminate_workers; before, the process table)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):  # already gone
            process.terminate()
