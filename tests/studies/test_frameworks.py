"""One scenario under every framework profile, `clustersim frameworks`, and the planner keeping
to the strategies a framework offers."""

from __future__ import annotations

import json

from simulator.cli.main import main
from simulator.scenario.load import load_scenario, scenario_from_dict
from simulator.studies.frameworks import compare


def test_compare_runs_each_framework_that_offers_the_strategy():
    rows = {r.framework: r for r in compare(load_scenario("llama2-7b-zero3-8xa100"))}
    assert list(rows) == ["pytorch-fsdp", "pytorch-fsdp2", "deepspeed", "megatron"]
    assert "does not support strategy zero3" in rows["megatron"].error
    assert rows["deepspeed"].peak_bytes != rows["pytorch-fsdp"].peak_bytes
    # ZeRO-3 under DeepSpeed: reduce_bucket_size buckets, not one reduce-scatter per block.
    assert (
        rows["deepspeed"].collectives["reduce_scatter (dp)"]["count"]
        < rows["pytorch-fsdp"].collectives["reduce_scatter (dp)"]["count"]
    )


def test_compare_drops_the_options_of_the_other_frameworks():
    s = scenario_from_dict(
        {
            "model": {"preset": "gpt3-125m"},
            "training": {
                "framework": "deepspeed",
                "strategy": "zero3",
                "deepspeed": {"stage3_max_live_parameters": 1e7},
            },
            "cluster": {"topology": "dgx-a100"},
        }
    )
    rows = {r.framework: r for r in compare(s)}
    assert (
        not rows["pytorch-fsdp"].error
        and not rows["pytorch-fsdp2"].error
        and not rows["deepspeed"].error
    )


def test_frameworks_command_prints_the_comparison_and_the_cases(capsys):
    assert main(["frameworks"]) == 0
    out = capsys.readouterr().out
    assert "deepspeed" in out and "cannot run it" in out and "collectives per step" in out
    assert main(["frameworks", "--cases", "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)
    assert {c["framework"] for c in cases} == {
        "deepspeed",
        "pytorch-fsdp",
        "pytorch-fsdp2",
        "megatron",
    }


def test_plan_min_gpus_keeps_to_the_frameworks_strategies(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(
        json.dumps(
            {
                "model": {"preset": "gpt3-350m"},
                "training": {"framework": "megatron", "strategy": "zero1"},
                "cluster": {"topology": "dgx-a100"},
            }
        )
    )
    assert main(["plan", "min-gpus", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {r["strategy"] for r in plan["at_minimum"]} == {"ddp", "zero1"}
    assert main(["plan", "min-gpus", str(path), "--strategies", "zero3"]) == 2
    assert "framework megatron does not offer zero3" in capsys.readouterr().err


def test_a_sweep_axis_over_frameworks_derives_each(tmp_path):
    base = scenario_from_dict(
        {
            "model": {"preset": "gpt3-125m"},
            "training": {"strategy": "zero3"},
            "cluster": {"topology": "dgx-a100"},
        }
    )
    from simulator.scenario.load import derive

    assert derive(base, {"training.framework": "deepspeed"}).training.framework.name == "deepspeed"
