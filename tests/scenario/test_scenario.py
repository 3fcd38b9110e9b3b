"""Scenario validation: every problem at once, dotted paths, 'did you mean', exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.resources import scenario_dir
from simulator.scenario.load import load_scenario, scenario_from_dict
from simulator.scenario.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
GOOD = """
name: ok
model: {preset: llama2-7b}
training: {strategy: zero3, micro_batch_size: 1, seq_len: 4096}
cluster: {topology: dgx-a100, num_hosts: 1}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_good_scenario_validates(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "validate", str(write(tmp_path, GOOD)))
    assert code == 0 and "ok" in out


# One test per class of mistake: (file text, expected fragments of the message).
MISTAKES = {
    "unknown preset with a close match": (
        GOOD.replace("llama2-7b", "llama-2-7b"),
        ["model.preset", "unknown model preset", "llama2-7b"],
    ),
    "missing key": (GOOD.replace("model: {preset: llama2-7b}\n", ""), ["model", "required"]),
    "wrong unit": (
        GOOD.replace("seq_len: 4096}", "seq_len: 4096, bucket_size: 25 parsecs}"),
        ["training.bucket_size", "expected a size such as"],
    ),
    "negative size": (
        GOOD.replace("micro_batch_size: 1", "micro_batch_size: -4"),
        ["training.micro_batch_size", "greater than or equal to 1"],
    ),
    "unknown strategy": (
        GOOD.replace("strategy: zero3", "strategy: zero4"),
        ["training.strategy", "did you mean", "zero3"],
    ),
    "zero GPUs": (
        GOOD.replace("num_hosts: 1}", "num_hosts: 1, num_gpus: 0}"),
        ["cluster.num_gpus", "greater than or equal to 1"],
    ),
    "misspelt key": (
        GOOD.replace("micro_batch_size", "micro_bach_size"),
        ["training.micro_bach_size", "unknown key", "micro_batch_size"],
    ),
    "unknown gpu": (
        GOOD.replace("num_hosts: 1}", "num_hosts: 1, gpu: a100-80g}"),
        ["cluster.gpu", "a100-80gb"],
    ),
    "unknown topology": (GOOD.replace("dgx-a100", "dgx-a10"), ["cluster.topology", "dgx-a100"]),
    "invalid yaml": ("model: [unclosed", ["invalid YAML", "line"]),
}


@pytest.mark.parametrize("kind", list(MISTAKES))
def test_each_mistake_gets_path_message_and_exit_2(kind, tmp_path, capsys):
    text, fragments = MISTAKES[kind]
    path = write(tmp_path, text)
    code, _out, err = run_cli(capsys, "run", str(path))
    assert code == 2
    assert "Traceback" not in err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_all_problems_reported_at_once(tmp_path):
    text = GOOD.replace("strategy: zero3", "strategy: zer3").replace(
        "micro_batch_size: 1", "micro_batch_size: 0"
    )
    with pytest.raises(UserError) as info:
        load_scenario(write(tmp_path, text))
    paths = {p.path for p in info.value.problems}
    # A shape error and a misspelt name in the same file are both reported.
    assert {"training.micro_batch_size", "training.strategy"} <= paths
    # The strategy is checked after the shape; both appear when the shape is valid.
    text2 = GOOD.replace("strategy: zero3", "strategy: zer3").replace("llama2-7b", "llama2-7")
    with pytest.raises(UserError) as info2:
        load_scenario(write(tmp_path, text2))
    assert {"training.strategy", "model.preset"} <= {p.path for p in info2.value.problems}


def test_model_needs_exactly_one_source():
    with pytest.raises(UserError, match="exactly one of"):
        scenario_from_dict({"model": {"preset": "gpt2", "params": 1e9}})


def test_aliases_and_global_batch():
    s = scenario_from_dict(
        {
            "model": {"preset": "gpt3-125m"},
            "training": {"strategy": "fsdp", "micro_batch_size": 2, "global_batch_size": 64},
            "cluster": {"topology": "dgx-a100"},
        }
    )
    assert s.strategy == "zero3"
    assert s.training.grad_accum_steps == 64 // (2 * 8)
    with pytest.raises(UserError, match="multiple of"):
        scenario_from_dict(
            {
                "model": {"preset": "gpt3-125m"},
                "training": {"micro_batch_size": 3, "global_batch_size": 64},
                "cluster": {"topology": "dgx-a100"},
            }
        )


def test_custom_gpu_in_yaml():
    s = scenario_from_dict(
        {
            "model": {"preset": "gpt3-125m"},
            "cluster": {
                "topology": "dgx-a100",
                "gpu": {
                    "name": "mygpu",
                    "memory": "24 GiB",
                    "hbm_bandwidth": "1 TB/s",
                    "peak_flops": {"bf16": "200 TFLOP/s"},
                },
            },
        }
    )
    assert s.cluster.gpu.memory_bytes == 24 * 2**30
    assert s.cluster.gpu.peak("bf16") == pytest.approx(200e12)
    assert s.cluster.gpu.efficiency.gemm_table == ""  # no shapes named: quantization


def _custom_gpu_with(efficiency: dict) -> dict:
    gpu = {"name": "mygpu", "memory": "24 GiB", "hbm_bandwidth": "1 TB/s"}
    gpu |= {"peak_flops": {"bf16": "200 TFLOP/s"}, "efficiency": efficiency}
    return {"model": {"preset": "gpt3-125m"}, "cluster": {"topology": "dgx-a100", "gpu": gpu}}


def test_a_custom_gpu_may_name_a_shipped_gemm_table():
    s = scenario_from_dict(_custom_gpu_with({"gemm_table": "H100-SXM-XLA"}))
    assert s.cluster.gpu.efficiency.gemm_table == "h100-sxm-xla"


def test_an_unknown_gemm_table_names_the_shipped_ones():
    with pytest.raises(UserError) as err:
        scenario_from_dict(_custom_gpu_with({"gemm_table": "h100-xla"}))
    assert "cluster.gpu.efficiency.gemm_table" in str(err.value)
    assert "h100-sxm-xla" in str(err.value)


def test_schema_is_json_schema_with_scenario_fields(capsys):
    schema = json_schema()
    assert {"model", "training", "cluster"} <= set(schema["properties"])
    code, out, _ = run_cli(capsys, "schema")
    assert code == 0 and json.loads(out)["title"] == "clustersim scenario"


def test_shipped_scenarios_validate(capsys):
    from simulator.studies.regress import find_scenarios

    scenarios, _sweeps = find_scenarios(scenario_dir())
    files = [str(p) for p in scenarios]
    assert files
    code, _, err = run_cli(capsys, "validate", *files)
    assert code == 0, err


def test_python_m_simulator_runs_default_scenario():
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in (
        "params_bytes",
        "grads_bytes",
        "optimizer_bytes",
        "activations_bytes",
        "buffers_bytes",
        "overhead_bytes",
        "total_bytes",
    ):
        assert isinstance(report["memory"]["per_gpu"][key], int)
    assert report["model"]["params"] == 6_738_415_616
    assert {
        "model_states_bytes",
        "capacity_bytes",
        "fits",
        "headroom_bytes",
        "cpu_per_host_bytes",
    } <= set(report["memory"])
