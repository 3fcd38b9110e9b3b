"""Round trips: each format's real config (simulator/data/configs and tests/fixtures/import, sources in their READMEs), imported,
is the scenario written here by hand from reading the file with the framework's own semantics
(comments cite the lines): the same resolved specs and exactly the same prediction (step time,
memory, the whole report). Each format's unknown key (--strict) and contradictory key exit 2 with
the file and the key named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import simulator
from simulator.cli.main import main
from simulator.scenario.importers import import_files
from tests.helpers import import_fixture

LLAMA = import_fixture("llama-3.1-8b-config.json")
MIXTRAL = import_fixture("mixtral-8x7b-config.json")
MEGATRON = import_fixture("megatron-train_mixtral_8x7b_distributed.sh")
DS_ZERO2 = import_fixture("ds_zero2_cpu_offload_config.json")
DS_ZERO3 = import_fixture("ds_zero_stage_3_config.json")
TORCHTITAN = import_fixture("torchtitan-llama3_8b.toml")
ACCELERATE = import_fixture("accelerate-fsdp.yaml")

# llama-3.1-8b-config.json read by hand (LlamaForCausalLM: a gated SiLU MLP, RMSNorm, RoPE):
# "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
# "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
# "max_position_embeddings": 131072, "tie_word_embeddings": false, "attention_bias": false,
# "mlp_bias": false, "hidden_act": "silu"; "attention_dropout": 0.0 (no dropout masks).
LLAMA_31_8B = {
    "kind": "decoder",
    "ffn": "swiglu",
    "position_embedding": "rotary",
    "norm": "rmsnorm",
    "num_layers": 32,
    "hidden_size": 4096,
    "num_heads": 32,
    "num_kv_heads": 8,
    "ffn_hidden_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tied_embeddings": False,
    "bias": False,
}


def _round_trip(imported, hand: dict[str, Any]) -> simulator.Result:
    """The imported scenario against the hand-written one: equal specs, equal prediction."""
    got = imported.scenario
    assert got is not None
    assert not imported.refused
    want = simulator.load({"name": got.name, **hand})
    assert (got.model, got.training, got.cluster) == (want.model, want.training, want.cluster)
    assert got.warnings == want.warnings
    ran, expected = simulator.run(got, goodput=False), simulator.run(want, goodput=False)
    assert ran.step.time_s == expected.step.time_s
    assert ran.memory.total_bytes == expected.memory.total_bytes
    assert ran.memory.per_gpu == expected.memory.per_gpu
    assert ran.to_dict() == expected.to_dict()
    return ran


# ---------------------------------------------------------------------------- Hugging Face


def test_hf_config_alone_with_a_cluster():
    imported = import_files([LLAMA], topology="dgx-a100")
    # The config gives the model only: training is the scenario's defaults, as written by hand.
    hand = {
        "model": {"architecture": LLAMA_31_8B},
        "training": {"dropout": False},  # "attention_dropout": 0.0
        "cluster": {"topology": "dgx-a100"},
    }
    _round_trip(imported, hand)


def test_hf_mixtral_is_the_shipped_preset():
    imported = import_files([MIXTRAL], topology="dgx-h100", num_hosts=2)
    # num_local_experts 8 of intermediate_size 14336, num_experts_per_tok 2, 32 layers of 4096,
    # 32 heads / 8 KV heads, vocab 32000, untied: the mixtral-8x7b preset (its dropout off, as
    # "attention_dropout": 0.0 says). Only the model's name differs ("custom").
    preset = simulator.load(
        {
            "name": imported.document["name"],
            "model": {"preset": "mixtral-8x7b"},
            "cluster": {"topology": "dgx-h100", "num_hosts": 2},
        }
    )
    got = imported.scenario
    assert got is not None
    assert got.model.params == preset.model.params == 46_702_792_704
    assert got.training == preset.training and got.cluster == preset.cluster
    ran, expected = simulator.run(got, goodput=False), simulator.run(preset, goodput=False)
    assert ran.step.time_s == expected.step.time_s
    assert ran.memory.total_bytes == expected.memory.total_bytes


# ------------------------------------------------------------------------------ Megatron-LM


def test_megatron_launch_script():
    # GPUS_PER_NODE=2 is a shell variable behind --nproc_per_node: the GPUs are given here.
    imported = import_files([MEGATRON], topology="dgx-h100", num_gpus=2)
    hand = {
        "model": {
            "architecture": {
                # MODEL_ARGS: --num-layers 2 --hidden-size 256 --ffn-hidden-size 896
                # --num-attention-heads 2 --group-query-attention --num-query-groups 2
                # --max-position-embeddings 2048 --normalization RMSNorm --swiglu
                # --position-embedding-type rope --untie-embeddings-and-output-weights
                # --disable-bias-linear
                "num_layers": 2,
                "hidden_size": 256,
                "ffn_hidden_size": 896,
                "num_heads": 2,
                "num_kv_heads": 2,
                "max_position_embeddings": 2048,
                "norm": "rmsnorm",
                "ffn": "swiglu",
                "position_embedding": "rotary",
                "tied_embeddings": False,
                "bias": False,
                # DATA_ARGS --tokenizer-type Llama2Tokenizer: 32,000 tokens, padded to a
                # multiple of --make-vocab-size-divisible-by 128 x tp 1: 32,000
                "vocab_size": 32000,
                # MOE_ARGS --num-experts 2 --moe-router-topk 2; no --moe-ffn-hidden-size, so
                # Megatron's default, --ffn-hidden-size
                "moe": {"num_experts": 2, "experts_per_token": 2, "expert_ffn_hidden_size": 896},
            }
        },
        "training": {
            "framework": "megatron",
            # --use-distributed-optimizer: ZeRO-1
            "strategy": "zero1",
            # TRAINING_ARGS: "# --bf16" is commented out, so Megatron trains in fp32
            "precision": "fp32",
            "optimizer": "adamw",  # no --optimizer: Megatron's adam (decoupled weight decay)
            # --micro-batch-size 1 --global-batch-size 4, --seq-length 256
            "micro_batch_size": 1,
            "global_batch_size": 4,
            "seq_len": 256,
            "dropout": False,  # --attention-dropout 0.0 --hidden-dropout 0.0
            # MODEL_PARALLEL_ARGS: tp 1, pp 1, ep 2; --sequence-parallel, which Megatron turns
            # off at tensor parallelism 1
            "parallelism": {"tp": 1, "pp": 1, "ep": 2},
            "moe": {"dispatcher": "alltoall"},  # --moe-token-dispatcher-type alltoall
            # --overlap-param-gather --overlap-grad-reduce
            "megatron": {"overlap_grad_reduce": True, "overlap_param_gather": True},
        },
        "cluster": {"topology": "dgx-h100", "num_gpus": 2},
    }
    _round_trip(imported, hand)
    # 4 sequences / (micro-batch 1 x dp 2: ep shares the data-parallel ranks) = 2 micro-batches
    assert imported.scenario.training.grad_accum_steps == 2


# -------------------------------------------------------------------------------- DeepSpeed


def test_deepspeed_zero2_offload_with_an_hf_model():
    imported = import_files([LLAMA, DS_ZERO2], topology="dgx-a100")
    hand = {
        "model": {"architecture": LLAMA_31_8B},
        "training": {
            "framework": "deepspeed",
            "strategy": "zero2",  # "zero_optimization": {"stage": 2, ...}
            "offload": {"optimizer": "cpu"},  # "cpu_offload": true (ZeRO-Offload's older key)
            "optimizer": "adamw",  # "type": "Adam": DeepSpeed's Adam has adam_w_mode true
            "precision": "fp16-mixed",  # "fp16": {"enabled": true, ...}
            # "train_batch_size": 16 = micro-batch x "gradient_accumulation_steps": 1 x 8 GPUs
            # (DeepSpeed's identity): 2 sequences per GPU
            "global_batch_size": 16,
            "grad_accum_steps": 1,
            "micro_batch_size": 2,
            "dropout": False,  # the HF config's "attention_dropout": 0.0
            "gradient_clipping": True,  # "gradient_clipping": 1.0
        },
        "cluster": {"topology": "dgx-a100"},
    }
    _round_trip(imported, hand)


def test_deepspeed_zero3_knobs_with_an_hf_model():
    imported = import_files([LLAMA, DS_ZERO3], topology="dgx-a100")
    hand = {
        "model": {"architecture": LLAMA_31_8B},
        "training": {
            "framework": "deepspeed",
            "strategy": "zero3",  # "stage": 3
            "precision": "fp16-mixed",  # "fp16": {"enabled": true}
            "micro_batch_size": 8,  # "train_micro_batch_size_per_gpu": 8
            "grad_accum_steps": 1,  # "gradient_accumulation_steps": 1
            "dropout": False,
            "gradient_clipping": True,  # "gradient_clipping": 1.0
            # "stage3_max_live_parameters": 1.000000e+09, "stage3_max_reuse_distance":
            # 1.000000e+09, "stage3_prefetch_bucket_size": 6.039798e+07, "reduce_bucket_size":
            # 6.710886e+07, "contiguous_gradients": true; the misspelt
            # "stage3_param_persitence_threshold" is a key DeepSpeed does not read either
            "deepspeed": {
                "stage3_max_live_parameters": 1_000_000_000,
                "stage3_max_reuse_distance": 1_000_000_000,
                "stage3_prefetch_bucket_size": 60_397_980,
                "reduce_bucket_size": 67_108_860,
                "contiguous_gradients": True,
            },
        },
        "cluster": {"topology": "dgx-a100"},
    }
    _round_trip(imported, hand)


# ------------------------------------------------------------------------------- torchtitan

# What torchtitan does with any of its TOML files (config_manager.py and
# models/llama3/parallelize_llama.py at the fixture's commit): FSDP2 with MixedPrecisionPolicy
# param_dtype mixed_precision_param (default bfloat16) and reduce_dtype mixed_precision_reduce
# (default, and only value, float32: gradients are reduce-scattered in fp32).
TORCHTITAN_FSDP2 = {
    "framework": "pytorch-fsdp2",
    "precision": "bf16-mixed",
    "fsdp2": {"reduce_dtype": "fp32"},
    # [optimizer] name = "AdamW"
    "optimizer": "adamw",
    # [optimizer] without implementation (or the older fused): fused, torchtitan's default since
    # "use Fused AdamW as default" (#881, February 2025)
    "optimizer_implementation": "fused",
    # [activation_checkpoint] mode = 'selective' (selective_ac_option 'op' is torchtitan's own
    # choice of saved ops; clustersim's selective recomputation is Korthikanti et al.'s)
    "activation_checkpointing": "selective",
    # [training] seq_len = 8192
    "seq_len": 8192,
}


def _toml(tmp_path: Path, **lines: str) -> Path:
    """The real TOML with whole lines replaced (old line -> new line), as a user edits it."""
    text = TORCHTITAN.read_text()
    for old, new in lines.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "llama3_8b.toml"
    path.write_text(text)
    return path


def test_torchtitan_fsdp_takes_every_gpu():
    imported = import_files([TORCHTITAN], topology="dgx-a100", num_hosts=1)
    hand = {
        "model": {"preset": "llama3-8b"},  # [model] name = "llama3", flavor = "8B"
        "training": {
            **TORCHTITAN_FSDP2,
            # [parallelism] data_parallel_replicate_degree = 1, data_parallel_shard_degree = -1:
            # FSDP over what remains of the 8 GPUs after tp = pp = cp = 1, i.e. all 8
            "strategy": "zero3",
            "parallelism": {"tp": 1, "pp": 1, "cp": 1},
            # [training] batch_size = 1 is per data-parallel rank: the micro-batch
            "micro_batch_size": 1,
        },
        "cluster": {"topology": "dgx-a100", "num_hosts": 1},
    }
    _round_trip(imported, hand)
    assert imported.scenario.global_batch_size == 8  # 1 per rank x 8 ranks


def test_torchtitan_tensor_parallel_shards_norms_and_loss_over_the_sequence(tmp_path):
    # The same file with tp 2 and two replicas, on two hosts.
    path = _toml(
        tmp_path,
        **{
            "tensor_parallel_degree = 1": "tensor_parallel_degree = 2",
            "data_parallel_replicate_degree = 1": "data_parallel_replicate_degree = 2",
        },
    )
    imported = import_files([path], topology="dgx-a100", num_hosts=2)
    training = {
        **TORCHTITAN_FSDP2,
        # 16 GPUs / tp 2 = 8 data-parallel ranks = replicate 2 x shard -1 (what remains: 4)
        "strategy": "hsdp",
        "shard_group_size": 4,
        # torchtitan's tensor parallelism (apply_tp): attention_norm, ffn_norm and norm are
        # SequenceParallel and the loss is computed on the vocabulary-sharded logits (loss
        # parallel): activations outside the tensor-parallel regions are split over the sequence
        "parallelism": {"tp": 2, "pp": 1, "cp": 1, "sequence_parallel": True},
        "micro_batch_size": 1,  # batch_size = 1 per data-parallel rank, whatever tp is
    }
    hand = {
        "model": {"preset": "llama3-8b"},
        "training": training,
        "cluster": {"topology": "dgx-a100", "num_hosts": 2},
    }
    ran = _round_trip(imported, hand)
    assert imported.scenario.global_batch_size == 8
    # What sequence parallelism changes: without it every tensor-parallel rank holds the norms'
    # and the loss's activations whole.
    unsharded = copy.deepcopy(hand)
    unsharded["training"]["parallelism"]["sequence_parallel"] = False
    plain = simulator.run({"name": "no-sp", **unsharded}, goodput=False)
    assert plain.memory.activations_bytes > ran.memory.activations_bytes


def test_torchtitan_pipeline_splits_the_rank_batch_into_micro_batches(tmp_path):
    path = _toml(
        tmp_path,
        **{
            "pipeline_parallel_degree = 1": "pipeline_parallel_degree = 2",
            "batch_size = 1": "batch_size = 4",
        },
    )
    imported = import_files([path], topology="dgx-a100", num_hosts=1)
    training = {
        **TORCHTITAN_FSDP2,
        "strategy": "zero3",  # shard -1: 8 GPUs / pp 2 = 4
        "parallelism": {"tp": 1, "pp": 2, "cp": 1},
        # distributed/pipeline.py: batch_size 4 per data-parallel rank goes through the pipeline
        # as 4 / pipeline_parallel_microbatch_size (default 1) micro-batches of 1
        "micro_batch_size": 1,
        "grad_accum_steps": 4,
        # apply_fsdp: fsdp_reshard_after_forward "default" keeps the blocks unsharded between
        # forward and backward under pipeline parallelism (no all-gather per micro-batch)
        "fsdp2": {"reduce_dtype": "fp32", "reshard_after_forward": False},
    }
    hand = {
        "model": {"preset": "llama3-8b"},
        "training": training,
        "cluster": {"topology": "dgx-a100", "num_hosts": 1},
    }
    _round_trip(imported, hand)
    assert imported.scenario.global_batch_size == 16  # 4 per rank x 4 data-parallel ranks


# ------------------------------------------------------------------------------- accelerate


def test_accelerate_fsdp_with_an_hf_model():
    imported = import_files([LLAMA, ACCELERATE], topology="dgx-h100")
    hand = {
        "model": {"architecture": LLAMA_31_8B},
        "training": {
            # distributed_type: FSDP, no fsdp_version: FSDP1 (torch.distributed.fsdp)
            "framework": "pytorch-fsdp",
            "strategy": "zero3",  # fsdp_sharding_strategy: FULL_SHARD
            "precision": "bf16-mixed",  # mixed_precision: 'bf16'
            "zero3": {"backward_prefetch": True},  # fsdp_backward_prefetch: BACKWARD_PRE
            "offload": {"params": "none", "optimizer": "none"},  # fsdp_offload_params: false
            "activation_checkpointing": "none",  # fsdp_activation_checkpointing: false
            "dropout": False,
        },
        "cluster": {"topology": "dgx-h100", "num_gpus": 2},  # num_processes: 2
    }
    _round_trip(imported, hand)


# ---------------------------------------------------- unknown and contradictory keys: exit 2


def _edited(tmp_path: Path, source: Path, old: str, new: str) -> str:
    """A copy of the real file with one passage replaced, in a folder of its own."""
    text = source.read_text()
    assert text.count(old) == 1, old
    folder = tmp_path / f"edit{len(list(tmp_path.glob('edit*')))}"
    folder.mkdir()
    path = folder / source.name
    path.write_text(text.replace(old, new))
    return str(path)


def test_a_misspelt_key_the_model_needs_is_named_with_what_is_missing(tmp_path, capsys):
    path = _edited(tmp_path, LLAMA, '"hidden_size": 4096', '"hiden_size": 4096')
    err = _last_error([path, "--out", str(tmp_path / "s.yaml")], capsys)
    assert f"{path} do not give hidden_size" in err
    assert f"{path}: hiden_size: unknown key, not read; did you mean 'hidden_size'" in err


UNKNOWN = {
    # a typo in each real file (file, line, line with the typo, files before it, options, key):
    # the key is not read, so --strict refuses the import
    "hf": (LLAMA, '"use_cache": true', '"use_cach": true', [], [], "use_cach"),
    "megatron": (
        MEGATRON,
        "--hidden-dropout 0.0",
        "--hiden-dropout 0.0",
        [],
        ["--topology", "dgx-h100", "--num-gpus", "2"],
        "--hiden-dropout",
    ),
    "deepspeed": (
        DS_ZERO3,
        '"steps_per_print": 10',
        '"steps_per_prnt": 10',
        [str(LLAMA)],
        [],
        "steps_per_prnt",
    ),
    "torchtitan": (TORCHTITAN, "steps = 1000", "step = 1000", [], [], "training.step"),
    "accelerate": (
        ACCELERATE,
        "num_processes: 2",
        "num_processes: 2\nmachine_rnk: 0",
        [str(LLAMA)],
        [],
        "machine_rnk",
    ),
}


@pytest.mark.parametrize("kind", list(UNKNOWN))
def test_unknown_key_with_strict_exits_2_at_the_file_and_key(kind, tmp_path, capsys):
    source, old, new, before, options, key = UNKNOWN[kind]
    path = _edited(tmp_path, source, old, new)
    out = tmp_path / "s.yaml"
    args = ["import", *before, path, *options, "--out", str(out)]
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {key}: unknown key, not read" in err, err
    assert not out.exists()
    assert main(args) == 0  # without --strict: reported as not read, and imported
    assert f"{path}: {key} = " in capsys.readouterr().out


def test_contradictory_keys_exit_2_at_the_file_and_key(tmp_path, capsys):
    out = str(tmp_path / "s.yaml")
    cases = []
    # HF: a key given twice with different values (json.load would keep the last silently)
    hf = _edited(
        tmp_path,
        LLAMA,
        '"num_hidden_layers": 32,',
        '"num_hidden_layers": 32,\n  "num_hidden_layers": 16,',
    )
    cases.append(([hf], f"{hf}: num_hidden_layers: given twice, as 32 and as 16"))
    # Megatron: the script's model and Mixtral's config.json disagree on the hidden size
    cases.append(
        (
            [str(MIXTRAL), str(MEGATRON), "--topology", "dgx-h100"],
            (
                f"{MEGATRON}: --hidden-size: sets model.architecture.hidden_size = 256, but "
                f"{MIXTRAL} (hidden_size) sets 4096"
            ),
        )
    )
    # Megatron: --global-batch-size 5 is not micro-batch 1 x dp 2 x a whole number of steps
    meg = _edited(tmp_path, MEGATRON, "--global-batch-size 4", "--global-batch-size 5")
    cases.append(
        (
            [meg, "--topology", "dgx-h100", "--num-gpus", "2"],
            f"{meg}: training.global_batch_size (from --global-batch-size): 5 sequences",
        )
    )
    # DeepSpeed: train_batch_size 16 != train_micro_batch_size_per_gpu 4 x accumulation 1 x 8
    ds = _edited(
        tmp_path,
        DS_ZERO2,
        '"train_batch_size":16,',
        '"train_batch_size":16,\n  "train_micro_batch_size_per_gpu": 4,',
    )
    cases.append(
        (
            [str(LLAMA), ds, "--topology", "dgx-a100"],
            f"{ds}: training.global_batch_size (from train_batch_size): 16 sequences != ",
        )
    )
    # torchtitan: replicate 3 x shard 2 = 6 data-parallel ranks, but 8 GPUs leave 8
    tt = _edited(
        tmp_path,
        TORCHTITAN,
        "data_parallel_replicate_degree = 1\ndata_parallel_shard_degree = -1",
        "data_parallel_replicate_degree = 3\ndata_parallel_shard_degree = 2",
    )
    cases.append(
        ([tt, "--topology", "dgx-a100"], f"{tt}: parallelism.data_parallel_shard_degree: ")
    )
    # torchtitan: a key given twice (TOML forbids it)
    tt2 = _edited(tmp_path, TORCHTITAN, "seq_len = 8192", "seq_len = 8192\nseq_len = 4096")
    cases.append(([tt2], f"{tt2}: training.seq_len: invalid TOML at line"))
    # accelerate: num_processes 2, but --num-gpus 8
    cases.append(
        (
            [str(LLAMA), str(ACCELERATE), "--num-gpus", "8"],
            (
                f"command line: --num-gpus: sets cluster.num_gpus = 8, but {ACCELERATE} "
                "(num_processes) sets 2"
            ),
        )
    )
    # accelerate: a key given twice (YAML refuses it)
    acc = _edited(tmp_path, ACCELERATE, "num_processes: 2", "num_processes: 2\nnum_processes: 4")
    cases.append(([str(LLAMA), acc], f"{acc}: "))
    for args, expected in cases:
        assert main(["import", *args, "--out", out]) == 2, args
        err = capsys.readouterr().err
        assert expected in err, err
        assert not Path(out).exists()
    assert "key 'num_processes' appears twice" in _last_error(
        [str(LLAMA), acc, "--out", out], capsys
    )


def _last_error(args: list[str], capsys) -> str:
    assert main(["import", *args]) == 2
    return capsys.readouterr().err


def test_a_preset_and_an_architecture_name_both_files(capsys, tmp_path):
    err = _last_error([str(LLAMA), str(TORCHTITAN), "--out", str(tmp_path / "s.yaml")], capsys)
    assert f"{TORCHTITAN} (model.flavor) names a preset (llama3-8b)" in err
    assert f"{LLAMA} (" in err and "gives an architecture" in err
