"""Ctrl-C in the first fraction of a second, while clustersim is still being imported: one line
and exit code 130 (or the command had finished), never a traceback. The console script and
`python -m simulator` start in simulator/cli/entry.py, which imports nothing of clustersim's
before its try.

The interrupt is sent a delay after the entry module has been imported (Python's -X importtime
prints a line as each import completes): before that, Python itself is starting (its site
module, the .pth files of the environment) and no program of its own can catch a Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

ENTRY = "simulator.cli.entry"
SCRIPT = Path(sys.executable).parent / "clustersim"
# From the entry's import on: clustersim's own imports and the parser (about 0.3 s), then the run.
DELAYS = (0.0, 0.05, 0.1, 0.2, 0.3)


def interrupted(command: list[str], delay: float) -> tuple[int, str]:
    """(exit code, stderr without the import-time lines) of `command` sent SIGINT `delay` seconds
    after the entry module was imported."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", *command],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    entered = threading.Event()

    def read() -> None:  # drained all along: a full pipe would stop the child
        for line in proc.stderr:
            lines.append(line)
            if line.rstrip().endswith(f"| {ENTRY}"):
                entered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert entered.wait(60), "".join(lines)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    reader.join(timeout=10)
    return code, "".join(line for line in lines if not line.startswith("import time:"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("delay", DELAYS)
@pytest.mark.parametrize("how", ["console script", "python -m simulator"])
def test_ctrl_c_while_starting(how, delay):
    if how == "console script" and not SCRIPT.exists():
        pytest.skip(f"no console script at {SCRIPT} (clustersim not installed in this environment)")
    command = [str(SCRIPT)] if how == "console script" else ["-m", "simulator"]
    code, err = interrupted([*command, "run", "--no-goodput"], delay)
    assert "Traceback" not in err, err
    # 0: the command had finished. -SIGINT: ended by the signal itself, which a shell reports as
    # 130 too - while Python shuts down after the command (its handlers are reset by then), or
    # after the line under `python -m` (see entry.py).
    assert code in (0, 130, -signal.SIGINT), (code, err)
    assert err in ("", "clustersim: interrupted\n") and (code != 130 or err), (code, err)


def test_the_entry_imports_nothing_of_clustersim_before_its_try():
    code = f"import sys, {ENTRY}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'simulator'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == str(["simulator", "simulator.cli", ENTRY]), done.stderr


def test_the_console_script_and_python_m_start_in_the_entry():
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["scripts"]
    assert scripts == {"clustersim": f"{ENTRY}:main"}
    main_module = (PROJECT_ROOT / "simulator" / "__main__.py").read_text(encoding="utf-8")
    assert f"from {ENTRY} import main" in main_module
