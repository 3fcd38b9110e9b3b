"""Inputs that were accepted but meant something else: each is refused fast, by `validate` and
`run` alike, with exit 2 and the field's dotted path.

- tokens written where sequences are meant (global_batch_size 4194304 on 8 GPUs: 524,288
  micro-batches per step, which `run` once simulated, growing memory without limit);
- a forced NVLS algorithm on A100s (`validate` passed it, `run` refused it naming no field);
- knobs the chosen strategy ignores (a zero3 section under zero2, shard_group_size under zero3,
  a sequence that sequence parallelism cannot split, DDP's bucket options under ZeRO, a
  preset's shape overridden).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.scenario.schema_types import MAX_ACCUM

pytestmark = pytest.mark.timeout(10)

GOOD = {
    "name": "hostile",
    "model": {"preset": "llama2-7b"},
    "training": {"strategy": "zero3", "seq_len": 4096},
    "cluster": {"topology": "dgx-a100"},
}


def refused(capsys, tmp_path: Path, field: str, training: dict | None = None, **sections) -> str:
    """Both commands exit 2 naming the file and `field`; the message (stderr) is returned."""
    data = json.loads(json.dumps(GOOD))
    data["training"].update(training or {})
    data.update(sections)
    path = tmp_path / "hostile.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    messages = []
    for argv in (["validate", str(path)], ["run", "--no-goodput", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{path}: {field}:" in err
        messages.append(err)
    assert messages[0] == messages[1]
    return messages[0]


def test_global_batch_in_tokens_is_refused_with_the_sequences_it_likely_meant(capsys, tmp_path):
    err = refused(capsys, tmp_path, "training.global_batch_size", {"global_batch_size": 4194304})
    # 4194304 / (micro-batch 1 x 8 data-parallel GPUs) = 524288 micro-batches > MAX_ACCUM;
    # 4194304 tokens / 4096 per sequence = 1024 sequences.
    assert "524288 micro-batches" in err and str(MAX_ACCUM) in err
    assert "global_batch_size: 1024" in err


def test_global_batch_too_large_but_not_tokens_gets_the_largest_allowed(capsys, tmp_path):
    # 8 x 4096 + 8 sequences: not a multiple of seq_len 4096, one micro-batch past the bound.
    err = refused(
        capsys, tmp_path, "training.global_batch_size", {"global_batch_size": 8 * MAX_ACCUM + 8}
    )
    assert f"at most {8 * MAX_ACCUM} sequences" in err and "tokens" not in err


def test_the_largest_accumulation_is_accepted(capsys, tmp_path):
    data = {**GOOD, "training": {**GOOD["training"], "global_batch_size": 8 * MAX_ACCUM}}
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(data))
    assert main(["validate", str(path)]) == 0


def test_nvls_on_a100_names_the_field_the_topology_and_the_valid_algorithms(capsys, tmp_path):
    err = refused(
        capsys, tmp_path, "training.collective_algorithm", {"collective_algorithm": "nvls"}
    )
    assert "NVLink SHARP" in err and "dgx-a100" in err and "['ring']" in err


def test_nvls_turned_off_is_refused_where_the_topology_has_it(capsys, tmp_path):
    err = refused(
        capsys,
        tmp_path,
        "training.collective_algorithm",
        {"collective_algorithm": "nvls", "nvls": False},
        cluster={"topology": "dgx-h100"},
    )
    assert "not disabled" in err


def test_tree_is_refused_for_the_tensor_parallel_group_inside_one_host(capsys, tmp_path):
    # ddp's all-reduce spans 2 hosts (tree applies) but tp 8's all-reduce stays in one.
    err = refused(
        capsys,
        tmp_path,
        "training.collective_algorithm",
        {"strategy": "ddp", "collective_algorithm": "tree", "parallelism": {"tp": 8}},
        cluster={"topology": "a100-hdr-superpod", "num_hosts": 2},
    )
    assert "tp group" in err


@pytest.mark.parametrize("strategy", ["ddp", "zero1", "zero2"])
def test_a_zero3_section_under_another_strategy(capsys, tmp_path, strategy):
    err = refused(
        capsys,
        tmp_path,
        "training.zero3.backward_prefetch",
        {"strategy": strategy, "zero3": {"backward_prefetch": False}},
    )
    assert f"strategy {strategy} ignores it" in err


def test_shard_group_size_with_zero3(capsys, tmp_path):
    err = refused(capsys, tmp_path, "training.shard_group_size", {"shard_group_size": 4})
    assert "hsdp" in err


def test_sequence_parallel_with_a_sequence_tp_does_not_divide(capsys, tmp_path):
    err = refused(
        capsys,
        tmp_path,
        "training.seq_len",
        {"seq_len": 4095, "parallelism": {"tp": 8, "sequence_parallel": True}},
    )
    assert "4088 or 4096" in err  # the multiples of 8 either side of 4095


@pytest.mark.parametrize(
    "field, training",
    [
        ("training.bucket_size", {"strategy": "zero2", "bucket_size": "50 MiB"}),
        ("training.bucket_size", {"strategy": "zero3", "bucket_size": "50 MiB"}),
        (
            "training.gradient_as_bucket_view",
            {"strategy": "zero1", "gradient_as_bucket_view": True},
        ),
    ],
)
def test_ddp_bucket_options_under_zero(capsys, tmp_path, field, training):
    refused(capsys, tmp_path, field, training)


def test_ddp_bucket_options_are_accepted_under_ddp(capsys, tmp_path):
    data = {
        **GOOD,
        "model": {"preset": "gpt2"},
        "training": {
            "strategy": "ddp",
            "seq_len": 1024,
            "bucket_size": "50 MiB",
            "gradient_as_bucket_view": True,
        },
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(json.dumps(data))
    assert main(["validate", str(path)]) == 0


def test_a_preset_shape_override(capsys, tmp_path):
    err = refused(
        capsys, tmp_path, "model.num_layers", model={"preset": "llama2-7b", "num_layers": 8}
    )
    assert "model.params" in err
