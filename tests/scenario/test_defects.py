"""Regression tests of the defects a new user found: each bad input ends in exit code 2 with one
clear message at the right field path (no traceback), `validate` rejects what `run` rejects,
and derived scenarios are validated again.

Each test is guarded by pytest-timeout: a past defect (bucket_size: 0) looped forever.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli.main import main

pytestmark = pytest.mark.timeout(60)

GOOD = {
    "name": "ok",
    "model": {"preset": "llama2-7b"},
    "training": {"strategy": "zero3", "seq_len": 4096},
    "cluster": {"topology": "dgx-a100"},
}


def write(tmp_path: Path, data: dict | str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))  # JSON is YAML
    return path


def with_(section: str, **fields) -> dict:
    data = json.loads(json.dumps(GOOD))
    data[section] = {**data.get(section, {}), **fields}
    return data


def both(capsys, path: Path) -> str:
    """`validate` and `run` both refuse the file with exit 2 and the same message on stderr."""
    assert main(["validate", str(path)]) == 2
    validate_err = capsys.readouterr().err
    assert main(["run", str(path)]) == 2
    run_err = capsys.readouterr().err
    assert validate_err == run_err and "Traceback" not in run_err
    return run_err


@pytest.mark.parametrize(
    "data, path, fragment",
    [
        (
            with_("training", precision="bf16-mixed")
            | {"cluster": {"topology": "dgx-a100", "gpu": "v100-32gb"}},
            "training.precision",
            "no bf16 units",
        ),
        (with_("training", collective_algorithm="tree"), "training.collective_algorithm", "tree"),
        (
            with_("training", collective_algorithm="hierarchical"),
            "training.collective_algorithm",
            "hierarchical",
        ),
        (with_("training", bucket_size=0), "training.bucket_size", "give a unit"),
        (with_("training", bucket_size=25), "training.bucket_size", "give a unit"),
        (with_("training", bucket_size="25 B"), "training.bucket_size", "below the minimum"),
        (with_("cluster", num_hosts=10**9), "cluster.num_hosts", "less than or equal"),
        (
            with_("cluster", topology="h100-ndr-cluster", num_hosts=100_000),
            "cluster.num_hosts",
            "262,144",
        ),
        ({"model": {"params": float("inf")}}, "model.params", "finite"),
        (with_("training", seq_len=10**12), "training.seq_len", "less than or equal"),
        (
            {"model": {"preset": "gpt2"}, "training": {"seq_len": 4096}},
            "training.seq_len",
            "1024 rows",
        ),
        (with_("cluster", topology="dgx-a1000"), "cluster.topology", "dgx-a100"),
        (
            with_(
                "cluster",
                gpu={
                    "name": "a100-80gb",
                    "memory": "80 GiB",
                    "hbm_bandwidth": "2 TB/s",
                    "peak_flops": {"bf16": "312 TFLOP/s"},
                },
            ),
            "cluster.gpu.name",
            "catalog GPU",
        ),
        # A key called `name` outside cluster.gpu is a key, not the GPU union's tag: it was
        # reported as "model: unknown key (did you mean 'model'?)".
        (with_("model", name="mine"), "model.name", "valid names: architecture"),
        (
            with_("cluster", gpu={"name": "x", "memory": "8 GiB", "bogus": 1}),
            "cluster.gpu.bogus",
            "unknown key",
        ),
        (
            with_("cluster", stragglers=[{"rank": 3, "slowdown": 2}, {"rank": 3, "slowdown": 1.5}]),
            "cluster.stragglers.1.rank",
            "twice",
        ),
    ],
)
def test_bad_field_exit_2_at_its_path(tmp_path, capsys, data, path, fragment):
    err = both(capsys, write(tmp_path, data))
    assert f": {path}:" in err and fragment in err, err


def test_custom_gpu_with_zero_memory_is_one_clear_message(tmp_path, capsys):
    gpu = {
        "name": "mygpu",
        "memory": "0 GiB",
        "hbm_bandwidth": "2 TB/s",
        "peak_flops": {"bf16": "312 TFLOP/s"},
    }
    err = both(capsys, write(tmp_path, with_("cluster", gpu=gpu)))
    assert "cluster.gpu.memory" in err and "below the minimum" in err
    assert "valid string" not in err and len(err.strip().splitlines()) == 1


def test_unknown_topology_is_reported_at_cluster_topology_once(tmp_path, capsys):
    err = both(capsys, write(tmp_path, with_("cluster", topology="dgx-a1000")))
    assert "cluster.topology.topology" not in err and err.count("cluster.topology") == 1


def test_names_are_case_insensitive_for_strategy_and_precision(tmp_path, capsys):
    path = write(tmp_path, with_("training", strategy="ZeRO3", precision="BF16-Mixed"))
    assert main(["validate", str(path)]) == 0


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model: {preset: llama2-7b}\nmodel: {preset: gpt2}\n", "appears twice"),
        ("a:" + " [" * 100 + " ]" * 100 + "\n", "nested more than"),
    ],
)
def test_unreadable_yaml(tmp_path, capsys, text, fragment):
    assert fragment in both(capsys, write(tmp_path, text))


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("name: caf\xe9\nmodel: {preset: llama2-7b}\n".encode("latin-1"), "not UTF-8"),
        ("model: {preset: llama2-7b}\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_non_utf8_files(tmp_path, capsys, raw, fragment):
    path = tmp_path / "s.yaml"
    path.write_bytes(raw)
    assert fragment in both(capsys, path)


def test_a_directory_is_not_file_not_found(tmp_path, capsys):
    folder = tmp_path / "x.yaml"
    folder.mkdir()
    assert "is a directory" in both(capsys, folder)


def test_sweep_file_given_to_run(tmp_path, capsys):
    sweep = write(tmp_path, {"base": GOOD, "axes": {"training.strategy": ["ddp"]}}, "sweep.yaml")
    assert "this is a sweep file" in both(capsys, sweep)


@pytest.mark.parametrize("option, target", [("--json-out", "dir"), ("--trace", "missing/t.json")])
def test_output_paths_are_checked_before_running(tmp_path, capsys, option, target):
    (tmp_path / "dir").mkdir()
    assert main(["run", str(write(tmp_path, GOOD)), option, str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert option in err and ("is a directory" in err or "does not exist" in err)


def test_ctrl_c_during_run_exits_130_without_traceback(tmp_path, capsys, monkeypatch):
    import simulator.studies.simulate as sim

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "simulate", interrupted)
    assert main(["run", str(write(tmp_path, GOOD))]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [["--gpu-days", "inf"], ["--gpu-days", "nan"], ["--pf-days", "-1"]]
)
def test_plan_budget_rejects_non_finite_budgets(capsys, args):
    assert main(["plan", "budget", "llama2-7b-zero3-8xa100", *args]) == 2
    assert "finite" in capsys.readouterr().err


def test_plan_budget_with_an_enormous_budget_finishes(capsys):
    # 1e12 GPU-days give a compute-optimal model of ~3e14 params: answered by the formula alone.
    assert (
        main(["plan", "budget", "llama2-7b-zero3-8xa100", "--gpu-days", "1e12", "--mfu", "0.4"])
        == 0
    )
    assert "compute-optimal" in capsys.readouterr().out


def test_warning_beyond_the_trained_context(tmp_path, capsys):
    path = write(tmp_path, with_("training", seq_len=8192))  # Llama 2 was trained at 4096
    assert main(["validate", str(path)]) == 0
    assert "warning: seq_len 8192 is beyond the 4096 tokens" in capsys.readouterr().out


def test_schema_types_unit_fields_as_strings():
    from simulator.scenario.schema import json_schema

    defs = json_schema()["$defs"]
    for model, field in [
        ("TrainingSection", "bucket_size"),
        ("TrainingSection", "framework_overhead"),
        ("CustomGPU", "memory"),
        ("CustomGPU", "hbm_bandwidth"),
        ("CustomGPU", "cuda_context"),
    ]:
        prop = defs[model]["properties"][field]
        types = {prop.get("type")} | {a.get("type") for a in prop.get("anyOf", [])}
        assert "string" in types and not types & {"integer", "number"}, (model, field, prop)
