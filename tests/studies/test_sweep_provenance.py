"""A sweep's results record (FILE.sweep.json): rows are reused only when the code, the sweep
definition, --network and every input file (sweep file, base scenario, topology YAMLs named by
path) are unchanged; otherwise the rerun is refused, saying what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simulator.core.provenance
from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.provenance import file_digest, version_string
from simulator.core.resources import topology_dir
from simulator.studies.sweep.provenance import sweep_provenance
from simulator.studies.sweep.runner import run_sweep
from simulator.studies.sweep.spec import load_sweep, sweep_from_dict

BASE = {
    "name": "tiny",
    "model": {"preset": "gpt3-125m"},
    "training": {"micro_batch_size": 1, "seq_len": 512, "global_batch_size": 16},
    "cluster": {"topology": "my-topo.yaml", "num_gpus": 8},
}
AXES = {"training.strategy": ["ddp", "zero3"]}


@pytest.fixture
def files(tmp_path, monkeypatch) -> dict[str, Path]:
    """scen/base.yaml naming scen/my-topo.yaml (relative to the base's folder, as `run` resolves
    it), sweeps/s.yaml with base ../scen/base.yaml; run from tmp_path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scen").mkdir()
    (tmp_path / "sweeps").mkdir()
    topology = tmp_path / "scen" / "my-topo.yaml"
    topology.write_text(
        (topology_dir() / "dgx-a100.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    base = tmp_path / "scen" / "base.yaml"
    base.write_text(json.dumps(BASE), encoding="utf-8")
    sweep = tmp_path / "sweeps" / "s.yaml"
    sweep.write_text(json.dumps({"base": "../scen/base.yaml", "axes": AXES}), encoding="utf-8")
    return {
        "topology": topology,
        "base": base,
        "sweep": sweep,
        "out": tmp_path / "out" / "results.csv",
    }


def sweep_cli(files: dict[str, Path], *extra: str) -> int:
    return main(["sweep", str(files["sweep"]), "--out", str(files["out"]), "-j", "1", "-q", *extra])


def refusal(capsys, files) -> str:
    """The error of a refused rerun, after checking it left the results as they were."""
    before = files["out"].read_bytes()
    assert sweep_cli(files) == 2
    err = capsys.readouterr().err
    assert (
        "--out" in err and "nothing was overwritten" in err and "add --force to start over" in err
    )
    assert "Traceback" not in err and files["out"].read_bytes() == before
    return err


def test_record_holds_code_definition_and_input_digests(files):
    run_sweep(load_sweep(files["sweep"]), files["out"], jobs=1)
    record = json.loads((files["out"].parent / "results.csv.sweep.json").read_text())
    prov = record["provenance"]
    assert prov["clustersim"] == version_string()
    assert prov["network"] == "fluid"
    assert set(prov["definition"]) == {"base", "set", "mode", "axes", "columns"}
    assert prov["inputs"] == {
        str(files[k].resolve()): file_digest(files[k]) for k in ("sweep", "base", "topology")
    }


def test_unchanged_inputs_resume(files, capsys):
    assert sweep_cli(files) == 0
    first = files["out"].read_bytes()
    summary = run_sweep(load_sweep(files["sweep"]), files["out"], jobs=1)
    assert summary.computed == 0 and summary.resumed == 2
    assert files["out"].read_bytes() == first


def test_edited_topology_file_is_refused_naming_it_and_force_starts_over(files, capsys):
    assert sweep_cli(files) == 0
    first = files["out"].read_bytes()
    topology = files["topology"]
    topology.write_text(topology.read_text().replace("nvlink_bw: 300 GB/s", "nvlink_bw: 150 GB/s"))
    err = refusal(capsys, files)
    assert "topology file scen/my-topo.yaml changed" in err
    assert "code changed" not in err and "definition changed" not in err
    assert sweep_cli(files, "--force") == 0
    assert files["out"].read_bytes() != first  # the stale rows were not reused: slower NVLink
    assert (
        sweep_cli(files) == 0 and run_sweep(load_sweep(files["sweep"]), files["out"]).computed == 0
    )


def test_code_change_is_refused_naming_the_versions(files, capsys, monkeypatch):
    assert sweep_cli(files) == 0
    old = version_string()
    monkeypatch.setattr(
        simulator.core.provenance, "version_string", lambda: "0.2.0.dev0+code.000000000000"
    )
    err = refusal(capsys, files)
    assert f"the code changed: {old} -> 0.2.0.dev0+code.000000000000" in err


def test_network_change_is_refused(files, capsys):
    assert sweep_cli(files) == 0
    assert sweep_cli(files, "--network", "analytic") == 2
    assert "--network changed: fluid -> analytic" in capsys.readouterr().err


def test_definition_and_base_file_changes_are_named(files, capsys):
    assert sweep_cli(files) == 0
    fewer = {"base": "../scen/base.yaml", "axes": {"training.strategy": ["ddp"]}}
    files["sweep"].write_text(json.dumps(fewer))
    err = refusal(capsys, files)
    assert (
        "the sweep file sweeps/s.yaml changed" in err
        and "the sweep definition changed (axes)" in err
    )
    files["sweep"].write_text(json.dumps({"base": "../scen/base.yaml", "axes": AXES}))
    files["base"].write_text(json.dumps({**BASE, "training": {**BASE["training"], "seq_len": 256}}))
    err = refusal(capsys, files)
    assert (
        "the base scenario file scen/base.yaml changed" in err and "definition changed" not in err
    )


def test_a_renamed_copy_of_the_sweep_file_resumes(files):
    run_sweep(load_sweep(files["sweep"]), files["out"], jobs=1)
    copy = files["sweep"].with_name("copy.yaml")
    copy.write_bytes(files["sweep"].read_bytes())
    assert run_sweep(load_sweep(copy), files["out"], jobs=1).computed == 0


def test_topologies_named_by_the_axes_are_inputs(tmp_path):
    tmp_path = tmp_path.resolve()  # topology paths are recorded resolved
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text((topology_dir() / "dgx-a100.yaml").read_text(encoding="utf-8"))
    sweep = sweep_from_dict(
        {"base": BASE, "axes": {"cluster.topology": ["a.yaml", "b.yaml", "dgx-a100", "gone.yaml"]}},
        tmp_path,
    )
    inputs = sweep_provenance(sweep, "fluid").inputs
    # Shipped names are covered by the code hash; a missing file is recorded, so its invalid
    # rows are not reused once it appears.
    assert inputs == {
        str(tmp_path / "a.yaml"): file_digest(tmp_path / "a.yaml"),
        str(tmp_path / "b.yaml"): file_digest(tmp_path / "b.yaml"),
        str(tmp_path / "gone.yaml"): "missing",
    }
    old = sweep_provenance(sweep, "fluid").record()
    (tmp_path / "gone.yaml").write_text((tmp_path / "a.yaml").read_text())
    (changed,) = sweep_provenance(sweep, "fluid").changes(old)
    assert changed.endswith("gone.yaml changed (it was missing)")


def test_a_record_without_provenance_is_refused(files, capsys):
    assert sweep_cli(files) == 0
    record_path = files["out"].parent / "results.csv.sweep.json"
    record = json.loads(record_path.read_text())
    del record["provenance"]
    record["fingerprint"] = "0123456789abcdef"  # what clustersim 0.1 wrote
    record_path.write_text(json.dumps(record))
    assert "older clustersim" in refusal(capsys, files)


def test_stale_rows_are_refused_through_the_api_too(files):
    sweep = load_sweep(files["sweep"])
    run_sweep(sweep, files["out"], jobs=1)
    files["topology"].write_text(files["topology"].read_text() + "\n# edited\n")
    with pytest.raises(UserError) as exc:
        run_sweep(sweep, files["out"], jobs=1)
    (problem,) = exc.value.problems
    assert problem.path == "--out" and "my-topo.yaml changed" in problem.message
