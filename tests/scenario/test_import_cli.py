"""`clustersim import`: the written file validates, every key is printed, --out is never
overwritten without --force, mistakes exit 2; the shipped real configs are found by name and
listed with --list."""

from __future__ import annotations

from simulator.cli.main import main
from simulator.scenario.importers import configs_dir, shipped_configs
from simulator.scenario.load import load_scenario
from tests.helpers import import_fixture

MIXTRAL = str(import_fixture("mixtral-8x7b-config.json"))


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
    ds = str(import_fixture("ds_zero_stage_3_config.json"))
    assert main(["import", ds, "--out", str(out)]) == 2
    assert "none of the files describes the model" in capsys.readouterr().err
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    assert main(["import", str(junk), "--out", str(out)]) == 2
    assert "not a file clustersim can import" in capsys.readouterr().err
    assert not out.exists()


def test_strict_refuses_unknown_keys(tmp_path, capsys):
    out = tmp_path / "s.yaml"
    ds = str(import_fixture("ds_zero_stage_3_config.json"))
    args = ["import", MIXTRAL, ds, "--topology", "dgx-h100", "--num-hosts", "8", "--out", str(out)]
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert "stage3_param_persitence_threshold" in err and not out.exists()
    assert main(args) == 0


# ------------------------------------------------------------------ shipped configs, by name


def test_shipped_configs_have_their_sources():
    shipped = shipped_configs()
    assert set(shipped) == {
        "mixtral-8x7b-config.json",
        "megatron-train_mixtral_8x7b_distributed.sh",
        "ds_zero_stage_3_config.json",
        "ds_zero2_cpu_offload_config.json",
        "torchtitan-llama3_8b.toml",
        "accelerate-fsdp.yaml",
    }
    readme = (configs_dir() / "README.md").read_text()
    for name in shipped:
        assert f"`{name}`" in readme, name  # its source and license
    assert (configs_dir() / "LICENSE-Apache-2.0.txt").is_file()


def test_list_names_each_shipped_config_with_its_kind(capsys):
    assert main(["import", "--list"]) == 0
    printed = capsys.readouterr().out
    assert "torchtitan-llama3_8b.toml" in printed and "torchtitan TOML" in printed
    assert "megatron-train_mixtral_8x7b_distributed.sh  Megatron-LM arguments" in printed
    assert "README.md  " not in printed and "LICENSE" not in printed.split("(real configs")[0]


def test_a_shipped_config_by_name_is_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no such files here: the names are the shipped configs'
    options = ["--topology", "dgx-h100", "--num-hosts", "2"]
    assert (
        main(
            [
                "import",
                "mixtral-8x7b-config",
                "ds_zero_stage_3_config.json",
                *options,
                "--out",
                "by-name.yaml",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "mixtral-8x7b-config: num_local_experts = 8 -> model.architecture.moe" in printed
    by_path = [MIXTRAL, str(import_fixture("ds_zero_stage_3_config.json"))]
    assert main(["import", *by_path, *options, "--name", "x", "--out", "by-path.yaml"]) == 0
    named = load_scenario(tmp_path / "by-name.yaml")
    pathed = load_scenario(tmp_path / "by-path.yaml")
    assert (named.model, named.training, named.cluster) == (
        pathed.model,
        pathed.training,
        pathed.cluster,
    )


def test_neither_a_file_nor_a_shipped_name_exits_2_naming_the_shipped_ones(tmp_path, capsys):
    out = str(tmp_path / "s.yaml")
    assert main(["import", "no-such-config.json", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "no-such-config.json: (top level): no such file, nor a shipped config" in err
    assert "torchtitan-llama3_8b.toml" in err
    assert main(["import", "--out", out]) == 2
    assert "FILE: no config given" in capsys.readouterr().err
    assert main(["import", "torchtitan-llama3_8b.toml"]) == 2
    assert "--out: required" in capsys.readouterr().err
