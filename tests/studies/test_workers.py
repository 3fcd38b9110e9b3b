"""Pool workers (sweep points, goodput Monte Carlo runs) never outlive their command: killed with
SIGKILL, the main process cannot stop its pool, and the workers notice and exit."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT
from tests.studies.test_sweep import child_processes, live_processes, wait_for

pytestmark = pytest.mark.timeout(120)


def test_workers_exit_when_their_main_process_is_killed():
    code = (
        "import time; from simulator.studies.workers import worker_pool; p = worker_pool(2); "
        "futures = [p.submit(time.sleep, 3600) for _ in range(2)]; time.sleep(3600)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: len(child_processes(proc.pid)) >= 2, timeout_s=60)
        workers = child_processes(proc.pid)
    finally:
        proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert wait_for(lambda: not workers & live_processes(), timeout_s=30), (
        "orphaned workers still run"
    )
