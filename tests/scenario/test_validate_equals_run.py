"""`validate` accepts a scenario exactly when `run` (without the goodput Monte Carlo) does not
refuse it: over every shipped scenario and over variants that change the strategy, framework,
degrees, forced collective algorithm, topology, batch and sequence of a small model.

A refusal is exit 2 with the file named; a run that would refuse only mid-simulation (the
forced NVLS algorithm on an A100 host once did) fails the equality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.core.resources import scenario_dir
from simulator.scenario.load import scenario_names

pytestmark = pytest.mark.timeout(60)

# A 4-layer Llama-shaped decoder: every degree below divides its heads, FFN and vocabulary.
ARCH = {
    "num_layers": 4,
    "hidden_size": 256,
    "num_heads": 8,
    "num_kv_heads": 8,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
    "ffn": "swiglu",
    "ffn_hidden_size": 768,
    "position_embedding": "rotary",
    "norm": "rmsnorm",
    "bias": False,
    "tied_embeddings": False,
}
BASE = {
    "name": "variant",
    "model": {"architecture": ARCH},
    "training": {"strategy": "zero3", "seq_len": 256},
    "cluster": {"topology": "dgx-a100"},
}
H100X2 = {"topology": "h100-ndr-cluster", "num_hosts": 2}
A100X2 = {"topology": "a100-hdr-superpod", "num_hosts": 2}

# (training changes, cluster) pairs: accepted and refused ones, each a different way in.
VARIANTS = [
    ({}, None),
    ({"strategy": "ddp"}, None),
    ({"strategy": "zero1", "framework": "megatron"}, None),
    ({"strategy": "zero2", "framework": "deepspeed"}, None),
    ({"strategy": "hsdp", "shard_group_size": 8}, H100X2),
    ({"collective_algorithm": "nvls"}, None),  # A100: no NVLink SHARP
    ({"collective_algorithm": "nvls"}, {"topology": "dgx-h100"}),
    ({"collective_algorithm": "nvls", "nvls": False}, {"topology": "dgx-h100"}),
    ({"collective_algorithm": "nvls", "strategy": "ddp"}, H100X2),  # all-reduce across hosts
    ({"collective_algorithm": "nvls_tree", "strategy": "ddp"}, H100X2),
    ({"collective_algorithm": "collnet", "strategy": "ddp"}, A100X2),  # no in-network reduction
    ({"collective_algorithm": "tree", "strategy": "ddp"}, A100X2),
    (
        {"collective_algorithm": "tree", "strategy": "ddp", "parallelism": {"tp": 8}},
        A100X2,
    ),  # tp inside a host
    ({"collective_algorithm": "pat", "strategy": "zero3"}, A100X2),
    ({"collective_algorithm": "hierarchical", "strategy": "ddp"}, A100X2),
    ({"parallelism": {"tp": 2, "pp": 2}, "strategy": "zero1"}, None),
    ({"parallelism": {"tp": 4, "sequence_parallel": True}, "seq_len": 250}, None),
    ({"parallelism": {"tp": 3}}, None),
    ({"global_batch_size": 64}, None),
    ({"global_batch_size": 4194304}, None),
    ({"strategy": "zero2", "zero3": {"limit_all_gathers": False}}, None),
    ({"shard_group_size": 4}, None),
    ({"strategy": "zero1", "bucket_size": "50 MiB"}, None),
    ({"precision": "fp8-mixed"}, None),
    ({"precision": "fp8-mixed"}, {"topology": "dgx-h100"}),
    # Context and expert parallelism: the strategy must model them, the model have experts.
    ({"parallelism": {"cp": 2}, "strategy": "zero1", "framework": "megatron"}, None),
    ({"parallelism": {"cp": 2}, "strategy": "zero1", "framework": "deepspeed"}, None),
    ({"parallelism": {"cp": 4}, "strategy": "ddp", "seq_len": 260}, None),
    ({"parallelism": {"ep": 2}, "strategy": "zero1", "framework": "megatron"}, None),
    # An attention kernel the GPU has no published figures for (A100) is refused.
    ({"attention_kernel": "cudnn"}, None),
    ({"attention_kernel": "flash-attention-3"}, {"topology": "dgx-h100"}),
    ({"attention_kernel": "flash-attention-2", "flash_attention": False}, None),
]


def _codes(capsys, path: Path) -> tuple[int, int]:
    validated = main(["validate", str(path)])
    ran = main(["run", "--no-goodput", str(path)])
    capsys.readouterr()
    return validated, ran


@pytest.mark.parametrize("name", scenario_names())
def test_shipped_scenarios_validate_and_run_alike(capsys, name):
    validated, ran = _codes(capsys, scenario_dir() / f"{name}.yaml")
    assert (validated, ran) == (0, 0)


@pytest.mark.parametrize("changes, cluster", VARIANTS)
def test_validate_accepts_exactly_what_run_runs(capsys, tmp_path, changes, cluster):
    data = json.loads(json.dumps(BASE))
    data["training"].update(changes)
    if cluster is not None:
        data["cluster"] = cluster
    path = tmp_path / "variant.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    validated, ran = _codes(capsys, path)
    assert validated in (0, 2) and ran in (0, 2)
    assert validated == ran


def test_the_variants_include_refusals_and_acceptances(capsys, tmp_path):
    """The list above is not one-sided (a test that could not fail otherwise)."""
    codes = set()
    for changes, cluster in VARIANTS[:8]:
        data = {
            **BASE,
            "training": {**BASE["training"], **changes},
            "cluster": cluster or BASE["cluster"],
        }
        path = tmp_path / "v.yaml"
        path.write_text(json.dumps(data))
        codes.add(main(["validate", str(path)]))
    capsys.readouterr()
    assert codes == {0, 2}
