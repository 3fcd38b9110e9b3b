"""`clustersim accuracy`: the JSON document for CI, a user's cases file, its mistakes, the plot, and
(slow) the README's summary block, regenerated and compared."""

from __future__ import annotations

import json
import re
import statistics

import pytest
import yaml

from simulator.cli.main import main
from simulator.report.accuracy import README_BEGIN, README_END
from simulator.studies.cases import load_cases, shipped_files
from tests.helpers import PROJECT_ROOT

USER_CASES = {
    "cases": [
        {
            "id": "my-allreduce-1g",
            "category": "collective",
            "role": "validation",
            "source": "my own nccl-tests run, 8x A100 (an example for the test)",
            "metric": "busbw_GBps",
            "published": 220.0,
            "tolerance": 0.1,
            "collective": {"topology": "dgx-a100", "op": "all_reduce", "size": 2**30},
        },
        {
            "id": "my-ddp-states",
            "category": "memory",
            "role": "validation",
            "source": "16 bytes per parameter (ZeRO paper Sec 3.1), an example",
            "metric": "model_states_gb",
            "published": 2.0,
            "tolerance": 0.05,
            "scenario": {
                "model": {"params": 1.25e8},
                "training": {"strategy": "ddp", "precision": "fp16-mixed", "optimizer": "adam"},
                "cluster": {"topology": "dgx-a100"},
            },
        },
    ]
}


def test_json_document_for_ci(capsys):
    assert main(["accuracy", "--category", "memory", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"set", "summary", "intervals", "cases"}
    assert doc["intervals"] is None  # memory cases feed no step-time interval
    assert doc["set"]["calibration"] is None and doc["set"]["slow_skipped"] == []
    (row,) = doc["summary"]
    cases = doc["cases"]
    # The shipped files' memory cases, all validation; those not marked a known deviation are
    # the ones within their tolerance.
    shipped = [c for f in shipped_files() for c in load_cases(f) if c.category == "memory"]
    assert {c.role for c in shipped} == {"validation"}
    assert (
        (row["category"], row["role"], row["cases"])
        == ("memory", "validation", len(cases))
        == ("memory", "validation", len(shipped))
    )
    errors = [abs(c["predicted"] / c["published"] - 1) for c in cases]
    assert row["median_abs_error"] == pytest.approx(statistics.median(errors))
    assert row["max_abs_error"] == pytest.approx(max(errors))
    within = sum(abs(c["error"]) <= c["tolerance"] for c in cases)
    assert row["within_tolerance"] == within == sum(c.known_deviation is None for c in shipped)
    assert {
        "id",
        "metric",
        "published",
        "predicted",
        "error",
        "tolerance",
        "source",
        "file",
        "role",
    } <= set(cases[0])


def test_a_users_cases_file_gets_the_same_report(tmp_path, capsys):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(USER_CASES))
    plot = tmp_path / "acc.png"
    assert (
        main(
            [
                "accuracy",
                "--cases",
                str(tmp_path / "mine.yaml"),
                "--no-shipped",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "2 cases from mine.yaml" in text and "| collective | validation | 1 |" in text
    assert "my own nccl-tests run" in text and plot.stat().st_size > 0
    # 1.25e8 params x 16 bytes = 2.0 GB exactly.
    assert re.search(r"my-ddp-states\s+model_states_gb\s+2\s+2\s+\+0\.0%", text)


def test_calibration_cases_are_shown_apart(capsys):
    assert main(["accuracy", "--category", "collective"]) == 0
    text = capsys.readouterr().out
    validation, calibration = text.index("Validation cases"), text.index("Calibration cases")
    assert validation < text.index("nccl-stas00-a100-allreduce-8gpu-16MiB") < calibration
    assert text.index("nccl-azure-nd-a100-v4-allreduce-8gpu-1MiB") > calibration


def test_with_a_profile_the_builtin_errors_are_beside(a100_profile, capsys):
    assert (
        main(["accuracy", "--category", "collective", "--calibration", str(a100_profile), "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["set"]["calibration"] == str(a100_profile)
    assert all("median_abs_error_builtin" in r for r in doc["summary"])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(metrc="x"), "cases.0.metrc: unknown key (did you mean 'metric'?)"),
        (lambda c: c.update(metric="busbw"), "unknown metric 'busbw' (did you mean 'busbw_GBps'?)"),
        (lambda c: c.update(role="train"), "cases.0.role: expected one of calibration, validation"),
        (lambda c: c["collective"].update(topology="dgx-a1000"), "dgx-a100"),
        (lambda c: c.pop("collective"), "a busbw_GBps case needs a collective mapping"),
        (lambda c: c.update(choices="dgx-a100"), "cases.0.choices: expected a list of non-empty"),
        (lambda c: c.update(choices=[""]), "cases.0.choices: expected a list of non-empty"),
    ],
)
def test_mistakes_in_a_cases_file_exit_2(tmp_path, capsys, edit, message):
    cases = json.loads(json.dumps(USER_CASES))
    edit(cases["cases"][0])
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cases))
    assert main(["accuracy", "--cases", str(tmp_path / "mine.yaml"), "--no-shipped"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_every_shipped_validation_run_lists_its_free_modelling_choices():
    # Issue 16, item 5: a validation case posed as a scenario (a run, or a paper's memory table)
    # says what stands for what its source leaves open. Collective cases carry theirs in
    # `source` (topology, NVLS, group).
    from simulator.studies.cases import load_cases, shipped_files

    cases = [c for f in shipped_files() for c in load_cases(f)]
    posed = [c for c in cases if c.role == "validation" and c.scenario is not None]
    assert len(posed) >= 40
    assert [c.id for c in posed if not c.choices] == []


def test_the_report_lists_each_cases_choices(capsys):
    assert main(["accuracy", "--category", "framework"]) == 0
    out = capsys.readouterr().out
    at = out.index("Free modelling choices made to pose each case")
    assert (
        "  kempnerforge-fsdp2-14.8b-8xh200: the network (one 400 Gb/s NIC per GPU) assumed"
        in out[at:]
    )


def test_option_mistakes_exit_2(capsys):
    assert main(["accuracy", "--no-shipped"]) == 2
    assert main(["accuracy", "--category", "memroy"]) == 2
    assert "no case of category memroy" in capsys.readouterr().err


@pytest.mark.slow
def test_readme_summary_is_what_the_command_prints(capsys):
    assert main(["accuracy", "--readme"]) == 0
    block = capsys.readouterr().out.strip()
    readme = (PROJECT_ROOT / "README.md").read_text()
    shown = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    assert shown == block, "regenerate the README block with `clustersim accuracy --readme`"
