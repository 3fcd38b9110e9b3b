"""`clustersim plan site`: GPUs in a site's power budget, sized for peak draw, by hand."""

from __future__ import annotations

import json

import pytest

from simulator.cli.main import main
from simulator.scenario.load import scenario_from_dict
from simulator.studies import site_plan

# Every activity draws 500 W and each host 1 kW besides its 8 GPUs: the peak per GPU is
# 500 + 1000 / 8 = 625 W whatever the timeline does.
FLAT = {
    "name": "site-flat",
    "model": {"preset": "llama2-7b"},
    "training": {"strategy": "zero3", "micro_batch_size": 1, "seq_len": 4096, "tokens": 1e9},
    "cluster": {
        "topology": "dgx-h100",
        "num_hosts": 1,
        "power": {
            "host": "1 kW",
            "pue": 1.1,
            "gpu": {"compute": "500 W", "memory": "500 W", "comm": "500 W", "idle": "500 W"},
        },
    },
}


def test_gpus_in_a_budget_by_hand():
    s = scenario_from_dict(FLAT)
    # 0.999 MW / (625 W x 1.25) = 1,278.7 -> 1,278 GPUs -> 159 whole hosts = 1,272 GPUs.
    plan = site_plan.site_plan(s, 0.999e6, pue=1.25, runs=3, seed=1)
    assert plan.peak_w_per_gpu == pytest.approx(625.0)
    assert plan.pue == 1.25
    assert (plan.gpus, plan.hosts) == (1272, 159)
    # The site at that size: (1,272 x 500 + 159 x 1,000) x 1.25, flat (no swing).
    assert plan.site_peak_w == pytest.approx((1272 * 500 + 159 * 1000) * 1.25)
    assert plan.site_peak_w <= 0.999e6
    assert plan.train is not None and plan.train.num_gpus == 1272
    # The run's days follow the re-simulated step: tokens / tokens per second.
    assert plan.train.days == pytest.approx(1e9 / plan.train.tokens_per_s / 86400)
    # Exactly on the boundary: 1 MW / 781.25 W = 1,280 GPUs = 160 hosts.
    assert site_plan.site_plan(s, 1e6, pue=1.25, runs=3, seed=1).gpus == 1280


def test_rounded_down_to_a_valid_layout():
    data = json.loads(json.dumps(FLAT))
    data["training"] = {**data["training"], "strategy": "ddp", "parallelism": {"tp": 8, "pp": 2}}
    data["model"] = {"preset": "llama2-13b"}
    data["cluster"]["num_hosts"] = 2
    s = scenario_from_dict(data)
    # 0.999 MW -> 159 hosts; tp x pp = 16 needs an even host count: 158 hosts, 1,264 GPUs.
    plan = site_plan.site_plan(s, 0.999e6, pue=1.25, runs=3, seed=1)
    assert (plan.gpus, plan.hosts) == (1264, 158)
    assert "not a valid layout" in plan.note


def test_the_command(tmp_path, capsys):
    import yaml

    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump(FLAT))
    args = ["plan", "site", str(path), "--site-power", "0.999MW", "--pue", "1.25", "--runs", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "GPUs = floor(999,000 / 781.2) = 1,278; whole hosts of 8: 1,272" in out
    assert "-> 1,272 GPUs on 159 hosts" in out
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpus"] == 1272
    assert main(["plan", "site", str(path), "--site-power", "20 furlongs"]) == 2
    assert main(["plan", "site", str(path), "--site-power", "20MW", "--pue", "0.9"]) == 2
