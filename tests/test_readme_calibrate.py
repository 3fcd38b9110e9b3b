"""The README's "Calibrate to your cluster" commands run as written (from the repository root, in a
scratch folder here so nothing is left behind)."""

from __future__ import annotations

import re
import shlex

import pytest

from simulator.cli.main import main
from tests.helpers import PROJECT_ROOT


def readme_commands() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("### Calibrate to your cluster", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)[1]
    return [
        line.split("#", 1)[0].strip()
        for line in block.splitlines()
        if line.startswith(".venv/bin/clustersim")
    ]


@pytest.mark.slow
def test_readme_calibrate_commands_run_as_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "simulator").mkdir()
    (tmp_path / "simulator" / "data").symlink_to(PROJECT_ROOT / "simulator" / "data")
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert len(commands) == 4
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    assert (tmp_path / "a100.yaml").is_file() and (tmp_path / "mpt.yaml").is_file()
