"""A sweep's Dask connection: a scheduler address or a LocalCluster of our own, closed on exit.

An interrupted sweep (Ctrl-C, SIGTERM) cancels its tasks and stops the workers it started;
that is expected, so it must not end in a screen of Dask warnings and worker tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any, Self

from simulator.core.errors import Problem, UserError

QUIET_LEVEL = logging.CRITICAL


def dask_session(address: str, jobs: int, processes: bool) -> DaskSession:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError(
            Problem(
                "--dask",
                "dask.distributed is not installed",
                "pip install 'dask[distributed]', or run without --dask",
            )
        ) from None
    if address == "local":
        cluster = LocalCluster(
            n_workers=jobs, threads_per_worker=1, processes=processes, dashboard_address=None
        )
        session = DaskSession(Client(cluster), cluster, processes)
        if processes:
            # Ctrl-C reaches every process of the terminal's group: the workers leave it to the
            # sweep (which stops them), instead of each printing a KeyboardInterrupt traceback.
            session.client.run(_ignore_sigint)
        return session
    try:
        return DaskSession(Client(address, timeout="10s"))
    except OSError as exc:
        raise UserError(
            Problem(
                "--dask",
                f"cannot reach the scheduler at {address}: {exc}",
                "give tcp://HOST:PORT of a running dask scheduler, or 'local'",
            )
        ) from None


class DaskSession:
    """A client (and the local cluster it owns), closed on exit; quiet when interrupted."""

    def __init__(self, client: Any, cluster: Any = None, processes: bool = False):
        self.client, self.cluster, self.processes = client, cluster, processes
        self._levels: dict[str, int] | None = None

    def __enter__(self) -> Self:
        return self

    def executor(self) -> Any:
        return self.client.get_executor()

    def interrupted(self) -> None:
        """Before the tasks are cancelled: cancelled tasks and stopped workers of our own
        cluster are not worth a warning (a remote cluster's workers are left alone)."""
        if self._levels is None:
            self._levels = _raise_levels(QUIET_LEVEL)
        if self.cluster is not None and self.processes:
            with contextlib.suppress(Exception):  # a worker already gone needs no quieting
                self.client.run(_raise_levels, QUIET_LEVEL)

    def __exit__(self, exc_type, exc, tb) -> None:
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        if interrupted:
            self.interrupted()
        try:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        except Exception:
            if not interrupted:  # else the interrupt is what happened; a failed close is its echo
                raise
        finally:
            for name, level in (self._levels or {}).items():
                logging.getLogger(name).setLevel(level)
            self._levels = None


def _raise_levels(level: int) -> dict[str, int]:
    """Raise the distributed loggers (its config sets some children's levels) to `level`; the
    previous levels."""
    names = [
        "distributed",
        *(n for n in logging.root.manager.loggerDict if n.startswith("distributed.")),
    ]
    previous = {}
    for name in names:
        logger = logging.getLogger(name)
        previous[name] = logger.level
        if logger.level < level:
            logger.setLevel(level)
    return previous


def _ignore_sigint() -> None:
    """Run on a worker process' event loop (its main thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
