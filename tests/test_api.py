"""The public Python API: simulator.load / run / Session / sweep."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import simulator
from simulator.cli.main import main
from simulator.core.errors import UserError
from tests.helpers import PROJECT_ROOT

SCENARIO = PROJECT_ROOT / "scenarios" / "llama2-7b-zero3-8xa100.yaml"


def test_run_to_dict_equals_the_cli_json(capsys):
    assert main(["run", str(SCENARIO), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    result = simulator.run(simulator.load(SCENARIO))
    assert result.to_dict() == cli  # the report has no elapsed-time fields
    assert result.memory.fits is cli["memory"]["fits"]
    assert result.memory.total_bytes == cli["memory"]["per_gpu"]["total_bytes"]
    assert result.step.time_s == cli["step"]["time_s"]
    assert result.collectives[0].op == cli["collectives"][0]["op"]
    assert result.goodput is not None
    assert result.goodput.wall_days == cli["training"]["goodput"]["wall_days"]


def test_a_session_reuses_its_caches_and_gives_identical_results(monkeypatch):
    from simulator.execution import context

    built = []
    real = context.load_topology
    monkeypatch.setattr(context, "load_topology", lambda *a, **k: built.append(a) or real(*a, **k))
    session = simulator.Session()
    data = simulator.load(SCENARIO).data()
    first = session.run(data, goodput=False)
    second = session.run(data, goodput=False)
    assert first.to_dict() == second.to_dict()
    assert len(built) == 1  # the topology was built once for both runs
    assert simulator.run(data, goodput=False).to_dict() == first.to_dict()
    assert len(built) == 2  # a run outside the session builds its own


def test_a_session_reads_a_topology_file_once_until_it_changes(monkeypatch, tmp_path):
    from simulator.system.topology import loader

    read = []
    real = loader.topology_info
    monkeypatch.setattr(loader, "topology_info", lambda *a, **k: read.append(a) or real(*a, **k))
    topo = tmp_path / "box.yaml"
    topo.write_text((loader.topology_path("dgx-a100")).read_text())
    data = simulator.load(SCENARIO).data()
    data["cluster"] = {"topology": str(topo), "num_hosts": 1}
    session = simulator.Session()
    first = session.run(data, goodput=False)
    assert session.run(data, goodput=False).to_dict() == first.to_dict()
    assert len(read) == 1
    # An edited file is read again (its size changed), and a bad edit is refused as without
    # the session.
    topo.write_text(topo.read_text().replace("gpu: a100-80gb", "gpu: a100-40gb") + "# edited\n")
    assert session.run(data, goodput=False).memory.capacity_bytes < first.memory.capacity_bytes
    assert len(read) == 2
    topo.write_text("builder: no-such-builder\n")
    with pytest.raises(simulator.UserError):
        session.run(data, goodput=False)


def test_bad_input_raises_user_error_with_the_field_path():
    data = simulator.load(SCENARIO).data()
    data["training"]["strategy"] = "zero4"
    with pytest.raises(UserError) as caught:
        simulator.load(data)
    assert [p.path for p in caught.value.problems] == ["training.strategy"]
    with pytest.raises(UserError):
        simulator.load(42)  # type: ignore[arg-type]


def test_sweep_reuses_the_sweep_study():
    rows = simulator.sweep(
        "llama2-7b-zero3-8xa100",
        {"training.micro_batch_size": [1, 2]},
        fixed={"reliability.enabled": False},
    )
    assert [r["training.micro_batch_size"] for r in rows] == [1, 2]
    assert all(r["status"] == "ok" for r in rows)
    assert rows[1]["mem_activations_bytes"] > rows[0]["mem_activations_bytes"]


def test_importing_simulator_stays_light():
    code = (
        "import sys, simulator; print(sorted(m for m in sys.modules if m.startswith('simulator')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['simulator']"
    assert "run" in dir(simulator)
    with pytest.raises(AttributeError):
        simulator.no_such_name  # noqa: B018


def test_the_readme_python_api_example_runs(capsys, tmp_path):
    import re
    import runpy

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [
        b
        for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if "import simulator\n" in b
    ]
    assert len(blocks) == 1
    example = tmp_path / "readme_example.py"
    example.write_text(blocks[0])
    runpy.run_path(str(example))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("True") and len(lines) == 5
