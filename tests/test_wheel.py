"""A wheel built from the repository works outside the checkout: shipped topologies,
scenarios and real framework configs are package data. Slow (builds a wheel and a fresh
virtual environment): CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from simulator.studies.cases import load_cases, shipped_files

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_installed_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT], cwd=tmp_path)
    wheel = next(dist.glob("clustersim-*.whl"))
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    bin_dir = env / ("Scripts" if sys.platform == "win32" else "bin")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [bin_dir / "python", "-c", "import simulator; print(simulator.__file__)"], cwd=elsewhere
    )
    assert str(env) in where.stdout and str(ROOT) not in where.stdout
    cli = bin_dir / "clustersim"
    assert "Scenario: llama2-7b-zero3-8xa100" in _run([cli, "run"], cwd=elsewhere).stdout
    assert "dgx-a100" in _run([cli, "topology", "list"], cwd=elsewhere).stdout
    assert "llama2-70b-ddp-8xa100" in _run([cli, "scenarios"], cwd=elsewhere).stdout
    report = json.loads(_run([cli, "run", "t5-11b-fsdp-8xa100", "--json"], cwd=elsewhere).stdout)
    assert report["memory"]["fits"] is True
    sweep = elsewhere / "sweep.yaml"
    sweep.write_text(
        json.dumps(
            {
                "base": {"model": {"preset": "gpt3-125m"}, "cluster": {"topology": "dgx-a100"}},
                "axes": {"training.strategy": ["ddp", "zero3"]},
            }
        )
    )
    _run([cli, "sweep", sweep, "--out", elsewhere / "out.csv", "--jobs", "1", "-q"], cwd=elsewhere)
    rows = (elsewhere / "out.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",ok," in r for r in rows[1:])
    accuracy = json.loads(
        _run([cli, "accuracy", "--category", "memory", "--json"], cwd=elsewhere).stdout
    )
    # the installed package's validation set is the checkout's: as many memory cases
    memory = [c for f in shipped_files() for c in load_cases(f) if c.category == "memory"]
    assert accuracy["summary"][0]["cases"] == len(memory)
    script = "from simulator.core.resources import data_dir; print(data_dir('calibration'))"
    azure = (
        Path(_run([bin_dir / "python", "-c", script], cwd=elsewhere).stdout.strip())
        / "azure-nd-a100-v4-all_reduce_perf.txt"
    )
    _run(
        [
            cli,
            "calibrate",
            "--nccl-tests",
            f"{azure}:dgx-a100",
            "--out",
            elsewhere / "a100.yaml",
            "--no-loo",
        ],
        cwd=elsewhere,
    )
    # The real framework configs are package data: `clustersim import` finds them by name.
    listed = _run([cli, "import", "--list"], cwd=elsewhere).stdout
    assert "torchtitan-llama3_8b.toml" in listed and str(ROOT) not in listed
    imported = elsewhere / "llama3-8b.yaml"
    args = ["--topology", "dgx-a100", "--num-hosts", "8", "--out", imported]
    _run([cli, "import", "torchtitan-llama3_8b.toml", *args], cwd=elsewhere)
    assert "llama3-8b" in _run([cli, "run", imported], cwd=elsewhere).stdout
