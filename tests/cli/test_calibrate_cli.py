"""`clustersim calibrate` and `collective --calibration` on the command line: the profile, the
report, --json, --plot, and exit code 2 with a message (no traceback) for every user mistake."""

from __future__ import annotations

import json

import pytest
import yaml

from simulator.cli.main import main
from simulator.core.resources import data_dir
from tests.conftest import AZURE_A100
from tests.studies.calibrate.test_nccl_tests import FIXTURES


def test_calibrate_writes_a_profile_and_prints_the_fit(tmp_path, capsys):
    out = tmp_path / "a100.yaml"
    assert (
        main(["calibrate", "--nccl-tests", f"{AZURE_A100}:dgx-a100", "--out", str(out), "--no-loo"])
        == 0
    )
    text = capsys.readouterr().out
    assert (
        "nccl.ampere.nvlink_efficiency" in text
        and f"wrote {out}" in text
        and "median |error|" in text
    )
    profile = yaml.safe_load(out.read_text())
    assert profile["clustersim_calibration"] == 1 and profile["inputs"][0]["kind"] == "nccl-tests"
    assert profile["command"].startswith("clustersim calibrate --nccl-tests")
    # An existing profile is kept unless --force.
    assert main(["calibrate", "--nccl-tests", f"{AZURE_A100}:dgx-a100", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (
        main(
            [
                "calibrate",
                "--nccl-tests",
                str(AZURE_A100),
                "--topology",
                "dgx-a100",
                "--out",
                str(out),
                "--force",
                "--no-loo",
                "--json",
                "--plot",
                str(tmp_path / "fit.png"),
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["summary"]) == {"collectives"} and (tmp_path / "fit.png").stat().st_size > 0


def test_a_calibrated_collective_table(tmp_path, a100_profile, capsys):
    assert main(["collective", "--topology", "dgx-a100", "--sizes", "1M", "--json"]) == 0
    builtin = json.loads(capsys.readouterr().out)[0]
    assert (
        main(
            [
                "collective",
                "--topology",
                "dgx-a100",
                "--sizes",
                "1M",
                "--json",
                "--calibration",
                str(a100_profile),
            ]
        )
        == 0
    )
    calibrated = json.loads(capsys.readouterr().out)[0]
    assert (
        calibrated["time_s"] > builtin["time_s"]
    )  # the fitted per-call overhead (the Azure table's small sizes: ~11 us) adds to every call


@pytest.mark.parametrize(
    "argv, message",
    [
        (["calibrate", "--out", "p.yaml"], "--nccl-tests: nothing to calibrate on"),
        (
            ["calibrate", "--nccl-tests", str(AZURE_A100), "--out", "p.yaml"],
            "which topology did it run on?",
        ),
        (["calibrate", "--nccl-tests", f"{AZURE_A100}:dgx-a1000", "--out", "p.yaml"], "dgx-a100"),
        (
            [
                "calibrate",
                "--nccl-tests",
                f"{FIXTURES / 'failed_all_reduce_perf.log'}:dgx-a100",
                "--out",
                "p.yaml",
            ],
            "the run failed",
        ),
        (
            ["calibrate", "--nccl-tests", "missing.txt:dgx-a100", "--out", "p.yaml"],
            "file not found",
        ),
        (["calibrate", "--runs", "missing.yaml", "--out", "p.yaml"], "file not found"),
        (
            ["calibrate", "--nccl-tests", f"{AZURE_A100}:dgx-a100", "--out", "p.txt"],
            "a profile is a YAML file",
        ),
        (
            ["calibrate", "--nccl-tests", f"{AZURE_A100}:dgx-a100", "--out", "nowhere/p.yaml"],
            "does not exist",
        ),
        (
            ["collective", "--topology", "dgx-a100", "--calibration", "missing.yaml"],
            "--calibration: no calibration",
        ),
    ],
)
def test_user_mistakes_exit_2_with_a_message(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_runs_file_on_the_command_line(tmp_path, capsys):
    small = {
        "model": {"preset": "gpt3-125m"},
        "training": {"strategy": "ddp", "seq_len": 1024},
        "cluster": {"topology": "dgx-a100"},
    }
    (tmp_path / "runs.yaml").write_text(
        yaml.safe_dump(
            {
                "runs": [
                    {
                        "id": "mb1",
                        "scenario": small,
                        "step_time": "60 ms",
                        "max_memory_allocated": "3 GiB",
                    },
                    {
                        "id": "mb4",
                        "scenario": {
                            **small,
                            "training": {**small["training"], "micro_batch_size": 4},
                        },
                        "step_time": "150 ms",
                    },
                ]
            }
        )
    )
    assert (
        main(
            ["calibrate", "--runs", str(tmp_path / "runs.yaml"), "--out", str(tmp_path / "p.yaml")]
        )
        == 0
    )
    text = capsys.readouterr().out
    # Two runs identify one constant (leave-one-out needs one run more than constants).
    assert "compute.a100-80gb.end_to_end" in text and "too few measurements (2 groups)" in text
    assert "Memory (compared, not fitted)" in text and "max_memory_allocated" in text
    profile = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert [c["name"] for c in profile["constants"] if c["status"] == "fitted"] == [
        "compute.a100-80gb.end_to_end"
    ]
    assert all(r["loo"] is not None for r in profile["residuals"])


def test_the_shipped_runs_file_parses():
    from simulator.studies.calibrate.runs import read_runs

    runs = read_runs(data_dir("calibration") / "mpt-a100-runs.yaml")
    assert [r.measured for r in runs] == [2262, 4641, 10811, 20513, 58782, 142830]
