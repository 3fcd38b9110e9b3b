"""A training step runs on every cloud and new-hardware topology (one host, and two where the
file describes a scalable cluster), with the collectives NCCL would pick there."""

from __future__ import annotations

import pytest

from simulator.scenario.load import scenario_from_dict
from simulator.studies.simulate import simulate
from simulator.system.topology.loader import load_topology

NEW = [
    "aws-p4d",
    "aws-p5",
    "azure-nd-h100-v5",
    "azure-nd-mi300x-v5",
    "dgx-b200",
    "gb200-nvl72",
    "gb200-nvl72-cluster",
    "gcp-a3-high",
    "gcp-a3-mega",
    "mi300x-8gpu",
]
SCALABLE = {
    "aws-p4d",
    "aws-p5",
    "azure-nd-h100-v5",
    "azure-nd-mi300x-v5",
    "dgx-b200",
    "gb200-nvl72-cluster",
    "gcp-a3-high",
    "gcp-a3-mega",
}


@pytest.mark.parametrize("topology", NEW)
def test_a_zero3_step_runs(topology):
    hosts = 2 if topology in SCALABLE else 1
    s = scenario_from_dict(
        {
            "model": {"preset": "llama2-7b"},
            "training": {
                "strategy": "zero3",
                "micro_batch_size": 1,
                "seq_len": 2048,
                "activation_checkpointing": "full",
            },
            "cluster": {"topology": topology, "num_hosts": hosts},
        }
    )
    out = simulate(s)
    step = out["step"]
    assert out["memory"]["fits"] and step["time_s"] > 0 and 0 < step["mfu"] < 1
    assert (
        s.cluster.num_gpus
        == hosts * load_topology(topology, hosts if topology in SCALABLE else None).gpus_per_host
    )


def test_training_nvls_setting_is_nccl_nvls_enable():
    # DDP's gradient all-reduce on one H100 box: NVLS by default, NCCL's ring with nvls: false.
    def run(nvls):
        s = scenario_from_dict(
            {
                "model": {"preset": "llama2-7b"},
                "training": {
                    "strategy": "ddp",
                    "micro_batch_size": 1,
                    "seq_len": 2048,
                    "activation_checkpointing": "full",
                    "nvls": nvls,
                },
                "cluster": {"topology": "dgx-h100", "num_hosts": 1},
            }
        )
        out = simulate(s)
        return {c["algorithm"] for c in out["collectives"] if c["op"] == "all_reduce"}, out["step"][
            "comm_s"
        ]

    (on_algos, on_comm), (off_algos, off_comm) = run(True), run(False)
    assert "nvls" in on_algos and "nvls" not in off_algos and on_comm < off_comm
