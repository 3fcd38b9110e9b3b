"""The README's YAML examples are valid as written: each scenario block is accepted by the same
checks `validate` and `run` make, the sweep block by the sweep loader (its base given inline), and
the reliability block inside the default scenario. Its `clustersim import` examples run as
written, from a folder outside the checkout (shipped configs by name), with the `run`s after them."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from simulator.cli.main import main
from simulator.core.resources import scenario_dir
from simulator.scenario.load import scenario_from_dict
from simulator.studies.sweep.spec import sweep_from_dict
from tests.helpers import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
IMPORT_BLOCKS = [
    b for b in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) if "clustersim import" in b
]


def _default_scenario() -> dict:
    return yaml.safe_load((scenario_dir() / "llama2-7b-zero3-8xa100.yaml").read_text())


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_yaml_block_is_valid(block):
    data = yaml.safe_load(block)
    if {"model", "cluster"} <= set(data):
        assert scenario_from_dict(data).name == data["name"]
    elif "axes" in data:
        sweep = sweep_from_dict({**data, "base": _default_scenario()})
        assert list(sweep.paths) == list(data["axes"])
    elif set(data) == {"reliability"}:
        scenario = scenario_from_dict({**_default_scenario(), **data})
        assert scenario.reliability is not None
    else:
        pytest.fail(f"a README YAML block of an unknown kind: {sorted(data)}")


def test_every_kind_of_block_is_present():
    kinds = [frozenset(yaml.safe_load(b)) for b in BLOCKS]
    assert any({"model", "cluster"} <= k for k in kinds) and any("axes" in k for k in kinds)


def _commands(block: str) -> list[list[str]]:
    """The block's commands (continuation lines joined, comments dropped), without the
    `.venv/bin/clustersim` in front."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == ".venv/bin/clustersim", line
            commands.append(words[1:])
    return commands


def test_the_first_example_after_the_quickstart_imports_a_shipped_config():
    using_it = README.split("## Using it", 1)[1]
    first = re.search(r"```bash\n(.*?)```", using_it, re.DOTALL)
    assert first is not None and _commands(first.group(1))[0][0] == "import"


@pytest.mark.parametrize(
    "block", IMPORT_BLOCKS, ids=[f"import{i}" for i in range(len(IMPORT_BLOCKS))]
)
def test_readme_import_examples_run_as_written(block, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no tests/ beside it: the config names are the shipped ones
    commands = _commands(block)
    assert any(c[0] == "import" and "--list" not in c for c in commands)
    for command in commands:
        assert command[0] in ("import", "run"), command
        assert main(command) == 0, command
    assert "wrote " in capsys.readouterr().out
