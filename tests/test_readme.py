"""The README's YAML examples are valid as written: each scenario block is accepted by the same
checks `validate` and `run` make, the sweep block by the sweep loader (its base given inline), and
the reliability block inside the default scenario."""

from __future__ import annotations

import re

import pytest
import yaml

from simulator.core.resources import scenario_dir
from simulator.scenario.load import scenario_from_dict
from simulator.studies.sweep.spec import sweep_from_dict
from tests.helpers import PROJECT_ROOT

BLOCKS = re.findall(
    r"```yaml\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL
)


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
