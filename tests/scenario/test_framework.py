"""training.framework and its option sections: defaults, element counts, and every bad input
ending in exit code 2 with the field path and what to do instead (validate = run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.scenario.load import scenario_from_dict
from simulator.spec.specs import DeepSpeedSpec, MegatronSpec

pytestmark = pytest.mark.timeout(120)

GOOD = {
    "name": "ok",
    "model": {"preset": "llama2-7b"},
    "training": {"strategy": "zero3", "seq_len": 4096},
    "cluster": {"topology": "dgx-a100"},
}


def data(**training) -> dict:
    d = json.loads(json.dumps(GOOD))
    d["training"].update(training)
    return d


def refused(tmp_path: Path, capsys, d: dict) -> str:
    """validate and run both exit 2 with the same stderr and no traceback."""
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(d))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert main(["run", str(path)]) == 2
    assert capsys.readouterr().err == err and "Traceback" not in err
    return err


def test_default_is_pytorch_fsdp_and_the_report_names_it(tmp_path, capsys):
    s = scenario_from_dict(GOOD)
    assert s.training.framework.name == "pytorch-fsdp"
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(GOOD))
    assert main(["run", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["training"]["framework"] == "pytorch-fsdp"


def test_deepspeed_defaults_are_deepspeeds_and_element_counts_parse():
    # deepspeed/runtime/zero/config.py: 5e8, 5e8, 5e7 (the docs say 5e8), 1e9, 1e9, 1e5, 1e9.
    d = DeepSpeedSpec()
    assert (d.reduce_bucket_size, d.allgather_bucket_size, d.stage3_prefetch_bucket_size) == (
        5 * 10**8,
        5 * 10**8,
        5 * 10**7,
    )
    assert (
        d.stage3_max_live_parameters,
        d.stage3_max_reuse_distance,
        d.stage3_param_persistence_threshold,
    ) == (10**9, 10**9, 10**5)
    assert d.overlap(3) and not d.overlap(1) and not d.overlap(2)
    # YAML reads 5e8 as the string "5e8": both it and the number are 500,000,000 elements.
    s = scenario_from_dict(
        data(
            framework="deepspeed",
            deepspeed={"reduce_bucket_size": "5e8", "stage3_max_live_parameters": 2e8},
        )
    )
    assert s.training.framework.deepspeed.reduce_bucket_size == 500_000_000
    assert s.training.framework.deepspeed.stage3_max_live_parameters == 200_000_000
    assert s.training.framework.deepspeed.stage3_prefetch_bucket_size == 50_000_000  # default kept


def test_megatron_bucket_default():
    # max(40M, 1M x dp) parameters with overlap_grad_reduce; one bucket without.
    assert MegatronSpec().bucket_params(64) is None
    assert MegatronSpec(overlap_grad_reduce=True).bucket_params(8) == 40_000_000
    assert MegatronSpec(overlap_grad_reduce=True).bucket_params(64) == 64_000_000


@pytest.mark.parametrize(
    "training, fragments",
    [
        ({"framework": "deepspeeed"}, ["training.framework", "did you mean 'deepspeed'"]),
        (
            {"framework": "deepspeed", "deepspeed": {"reduce_bucket_sise": 5e8}},
            [
                "training.deepspeed.reduce_bucket_sise: unknown key",
                "did you mean 'reduce_bucket_size'",
            ],
        ),
        (
            {"framework": "deepspeed", "deepspeed": {"stage3_max_live_parameters": "2 GB"}},
            ["training.deepspeed.stage3_max_live_parameters", "number of elements"],
        ),
        (
            {"framework": "deepspeed", "deepspeed": {"reduce_bucket_size": 1.5}},
            ["training.deepspeed.reduce_bucket_size", "whole number"],
        ),
        (
            {"framework": "deepspeed", "deepspeed": {"stage3_prefetch_bucket_size": -1}},
            ["training.deepspeed.stage3_prefetch_bucket_size"],
        ),
        # Options of another framework than the one chosen.
        (
            {"deepspeed": {"reduce_bucket_size": 5e8}},
            [
                "training.deepspeed: deepspeed options, but training.framework is pytorch-fsdp",
                "set training.framework: deepspeed",
            ],
        ),
        (
            {"framework": "pytorch-fsdp2", "fsdp2": {"reduce_bucket_size": 5e8}},
            ["training.fsdp2.reduce_bucket_size: unknown key", "an option of training.deepspeed"],
        ),
        (
            {"reduce_bucket_size": 5e8},
            ["training.reduce_bucket_size: unknown key", "an option of training.deepspeed"],
        ),
        (
            {"framework": "deepspeed", "zero3": {"backward_prefetch": False}},
            [
                "training.zero3.backward_prefetch: a PyTorch FSDP option, but training.framework is deepspeed"
            ],
        ),
        (
            {"framework": "pytorch-fsdp2", "zero3": {"limit_all_gathers": False}},
            ["training.zero3.limit_all_gathers", "FSDP2 removed limit_all_gathers"],
        ),
        (
            {"framework": "megatron", "strategy": "zero1", "bucket_size": "25 MiB"},
            ["training.bucket_size: a PyTorch DDP option", "training.megatron.bucket_size"],
        ),
        # Knobs that make no sense with the strategy.
        (
            {
                "framework": "deepspeed",
                "strategy": "zero1",
                "deepspeed": {"stage3_max_live_parameters": 1e8},
            },
            [
                "training.deepspeed.stage3_max_live_parameters: applies to ZeRO-3 (strategy zero3) only"
            ],
        ),
        (
            {"framework": "deepspeed", "deepspeed": {"use_multi_rank_bucket_allreduce": False}},
            ["training.deepspeed.use_multi_rank_bucket_allreduce: applies to ZeRO-1/2"],
        ),
        (
            {
                "framework": "pytorch-fsdp2",
                "strategy": "ddp",
                "fsdp2": {"reshard_after_forward": False},
            },
            ["training.fsdp2.reshard_after_forward: applies to fully_shard"],
        ),
        (
            {
                "framework": "megatron",
                "strategy": "ddp",
                "megatron": {"overlap_param_gather": True},
            },
            ["training.megatron.overlap_param_gather: needs the distributed optimizer"],
        ),
        (
            {
                "framework": "megatron",
                "strategy": "zero1",
                "megatron": {"overlap_param_gather": True},
            },
            ["needs overlap_grad_reduce"],
        ),
        # Strategies a framework does not offer.
        (
            {"framework": "megatron", "strategy": "zero3"},
            ["training.strategy: framework megatron does not support strategy zero3", "use zero1"],
        ),
        (
            {"framework": "deepspeed", "strategy": "hsdp", "shard_group_size": 8},
            ["framework deepspeed does not support strategy hsdp", "MiCS"],
        ),
        ({"framework": "deepspeed", "strategy": "ddp"}, ["does not support strategy ddp"]),
        ({"framework": "pytorch-fsdp2", "strategy": "zero1"}, ["does not support strategy zero1"]),
        (
            {"framework": "pytorch-fsdp2", "strategy": "fsdp-shard-grad-op"},
            [
                "training.strategy: fsdp-shard-grad-op is PyTorch FSDP1's",
                "training.fsdp2.reshard_after_forward: false",
            ],
        ),
        (
            {"framework": "deepspeed", "strategy": "fsdp-shard-grad-op"},
            ["training.strategy", "use zero2"],
        ),
        (
            {"strategy": "fsdp-shard-grad-op", "zero3": {"reshard_after_forward": True}},
            ["training.zero3.reshard_after_forward: fsdp-shard-grad-op keeps parameters unsharded"],
        ),
        (
            {"framework": "deepspeed", "strategy": "zero3", "parallelism": {"pp": 2}},
            ["pipeline engine supports ZeRO stage 1 only"],
        ),
        (
            {"framework": "deepspeed", "strategy": "zero3", "offload": {"params": "cpu"}},
            ["training.offload.params", "not modelled for the deepspeed profile"],
        ),
        (
            {"framework": "megatron", "strategy": "zero1", "offload": {"optimizer": "cpu"}},
            [
                "training.offload.optimizer: optimizer offload is not modelled for the megatron profile"
            ],
        ),
    ],
)
def test_bad_framework_input_exits_2_at_its_field(tmp_path, capsys, training, fragments):
    err = refused(tmp_path, capsys, data(**training))
    for fragment in fragments:
        assert fragment in err, err


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    err = refused(
        tmp_path,
        capsys,
        data(
            framework="deepspeed",
            bucket_size="25 MiB",
            deepspeed={"reduce_bucket_sise": 1},
            zero3={"backward_prefetch": False},
        ),
    )
    for field in (
        "training.deepspeed.reduce_bucket_sise",
        "training.bucket_size",
        "training.zero3.backward_prefetch",
    ):
        assert field in err


def test_allgather_bucket_size_warns_that_deepspeed_ignores_it():
    s = scenario_from_dict(
        data(framework="deepspeed", strategy="zero1", deepspeed={"allgather_bucket_size": 2e8})
    )
    assert any("all_gather_into_tensor" in w for w in s.warnings)


def test_the_cli_process_exits_2_without_a_traceback(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "model: {preset: llama2-7b}\ntraining: {framework: megatron, strategy: zero3}\n"
    )
    for command in ("validate", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "simulator", command, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert (
            "training.strategy: framework megatron does not support strategy zero3" in done.stderr
        )


def test_shard_grad_op_is_zero3_without_resharding_after_forward():
    # torch FSDP1 ShardingStrategy.SHARD_GRAD_OP: parameters gathered per block in forward and kept
    # unsharded until that block's backward; gradients reduce-scattered; everything sharded at rest.
    sgo = scenario_from_dict(data(strategy="FSDP-Shard-Grad-Op"))
    explicit = scenario_from_dict(data(strategy="zero3", zero3={"reshard_after_forward": False}))
    assert sgo.training.strategy == "zero3"
    assert sgo.training.sharding == explicit.training.sharding
    assert not sgo.training.sharding.reshard_after_forward
