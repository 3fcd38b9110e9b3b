"""`clustersim import`: the written file validates, every key is printed, --out is never
overwritten without --force, mistakes exit 2."""

from __future__ import annotations

from simulator.cli.main import main
from simulator.scenario.load import load_scenario
from tests.helpers import PROJECT_ROOT

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "import"
MIXTRAL = str(FIXTURES / "mixtral-8x7b-config.json")


def test_import_writes_a_scenario_that_validate_accepts(tmp_path, capsys):
    out = tmp_path / "mixtral.yaml"
    args = ["import", MIXTRAL, "--topology", "dgx-h100", "--num-hosts", "8", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "num_local_experts = 8 -> model.architecture.moe.num_experts" in printed
    assert "rope_theta = 1000000.0: ignored (" in printed
    assert "wrote " in printed and "0 refused" in printed
    assert load_scenario(out).model.params == 46_702_792_704
    assert main(["validate", str(out)]) == 0


def test_out_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "s.yaml"
    out.write_text("keep me\n")
    assert main(["import", MIXTRAL, "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me\n"
    assert main(["import", MIXTRAL, "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("# Imported by")


def test_missing_model_and_unreadable_files_exit_2(tmp_path, capsys):
    out = tmp_path / "s.yaml"
    ds = str(FIXTURES / "ds_zero_stage_3_config.json")
    assert main(["import", ds, "--out", str(out)]) == 2
    assert "none of the files describes the model" in capsys.readouterr().err
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    assert main(["import", str(junk), "--out", str(out)]) == 2
    assert "not a file clustersim can import" in capsys.readouterr().err
    assert not out.exists()


def test_strict_refuses_unknown_keys(tmp_path, capsys):
    out = tmp_path / "s.yaml"
    ds = str(FIXTURES / "ds_zero_stage_3_config.json")
    args = ["import", MIXTRAL, ds, "--topology", "dgx-h100", "--num-hosts", "8", "--out", str(out)]
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert "stage3_param_persitence_threshold" in err and not out.exists()
    assert main(args) == 0
