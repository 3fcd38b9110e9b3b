"""Megatron-LM, DeepSpeed, torchtitan and accelerate configs -> training, on real files
(simulator/data/configs and tests/fixtures/import, sources in their READMEs); expected values read by hand from the fixtures."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.scenario.importers import import_files, import_text
from simulator.scenario.importers.megatron import parse
from simulator.scenario.load import scenario_from_dict
from tests.helpers import import_fixture

LLAMA = import_fixture("llama-3.1-8b-config.json")


def _status(imported, key: str) -> str:
    return next(e.status for e in imported.entries if e.key == key)


# ------------------------------------------------------------------------------------ Megatron


def test_megatron_example_maps_model_moe_parallelism_and_batch():
    imported = import_files(
        [import_fixture("megatron-train_mixtral_8x7b_distributed.sh")], "dgx-h100", num_gpus=2
    )
    t, arch = imported.document["training"], imported.document["model"]["architecture"]
    # MODEL_ARGS: --num-layers 2 --hidden-size 256 --ffn-hidden-size 896 --num-attention-heads 2
    # --group-query-attention --num-query-groups 2 --normalization RMSNorm --swiglu
    # --untie-embeddings-and-output-weights --disable-bias-linear --position-embedding-type rope
    assert (arch["num_layers"], arch["hidden_size"], arch["ffn_hidden_size"]) == (2, 256, 896)
    assert (arch["num_heads"], arch["num_kv_heads"]) == (2, 2)
    assert (arch["norm"], arch["ffn"], arch["position_embedding"]) == (
        "rmsnorm",
        "swiglu",
        "rotary",
    )
    assert arch["tied_embeddings"] is False and arch["bias"] is False
    # --tokenizer-type Llama2Tokenizer: 32,000 tokens, already a multiple of 128
    assert arch["vocab_size"] == 32000
    # MOE_ARGS: --num-experts 2 --moe-router-topk 2 (width: --ffn-hidden-size, Megatron's default)
    assert arch["moe"] == {"num_experts": 2, "experts_per_token": 2, "expert_ffn_hidden_size": 896}
    assert t["moe"] == {"dispatcher": "alltoall"}
    assert t["megatron"] == {"overlap_param_gather": True, "overlap_grad_reduce": True}
    # TRAINING_ARGS: --micro-batch-size 1 --global-batch-size 4, --bf16 commented out: fp32
    assert (t["micro_batch_size"], t["global_batch_size"], t["seq_len"]) == (1, 4, 256)
    assert t["precision"] == "fp32" and t["dropout"] is False
    # MODEL_PARALLEL_ARGS: tp 1, pp 1, ep 2, --use-distributed-optimizer, --sequence-parallel
    assert t["parallelism"] == {"tp": 1, "pp": 1, "ep": 2}
    assert (t["framework"], t["strategy"]) == ("megatron", "zero1")
    assert _status(imported, "--sequence-parallel") == "ignored"  # Megatron drops it at tp 1
    assert _status(imported, "--nproc_per_node") == "ignored"  # a shell variable, torchrun's
    assert not imported.refused and not imported.unknown
    assert imported.scenario is not None and imported.scenario.training.grad_accum_steps == 2


def test_megatron_one_string_with_recomputation_and_virtual_stages():
    text = (
        "--num-layers 96 --hidden-size 12288 --num-attention-heads 96 --seq-length 2048 "
        "--max-position-embeddings 2048 --tokenizer-type GPT2BPETokenizer "
        "--tensor-model-parallel-size 8 --pipeline-model-parallel-size 16 "
        "--num-layers-per-virtual-pipeline-stage 2 --recompute-granularity full "
        "--recompute-method uniform --micro-batch-size 1 --global-batch-size 1536 --bf16 "
        "--sequence-parallel --tp-comm-overlap --use-flash-attn --lr 6e-5 --bogus-flag 3"
    )
    p = import_text(text, "args")
    values = {path: value for path, value, _ in p.assignments}
    assert values["training.parallelism.pipeline.virtual_stages"] == 3  # 96 / (16 x 2)
    assert values["training.parallelism.pipeline.schedule"] == "interleaved-1f1b"
    assert values["training.activation_checkpointing"] == "full"
    assert values["training.parallelism.sequence_parallel"] is True
    assert values["training.parallelism.tp_comm_overlap"] is True
    assert values["training.precision"] == "bf16-mixed"
    assert values["training.strategy"] == "ddp"  # no --use-distributed-optimizer
    # GPT-2's 50,257 tokens padded to a multiple of 128 x tp 8 = 1024: 50,176 + 1,024 = 51,200
    assert values["model.architecture.vocab_size"] == 51200
    assert [e.key for e in p.entries if e.unknown] == ["--bogus-flag"]


def test_megatron_partial_recomputation_is_refused():
    p = import_text(
        "--num-layers 32 --hidden-size 4096 --recompute-granularity full "
        "--recompute-method block --recompute-num-layers 4",
        "args",
    )
    refused = [e for e in p.entries if e.status == "refused"]
    assert [e.key for e in refused] == ["--recompute-granularity"]


def test_megatron_parses_inline_values_and_trailing_backslashes():
    assert parse("    --num-layers=4 \\\n    --swiglu \\\n") == [
        ("num-layers", "4"),
        ("swiglu", None),
    ]


# ----------------------------------------------------------------------------------- DeepSpeed


def test_deepspeed_stage3_maps_sizes_and_reports_the_misspelt_key():
    imported = import_files([LLAMA, import_fixture("ds_zero_stage_3_config.json")], "dgx-a100")
    t = imported.document["training"]
    # "stage": 3, "train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 1, fp16 on
    assert (t["framework"], t["strategy"], t["precision"]) == ("deepspeed", "zero3", "fp16-mixed")
    assert (t["micro_batch_size"], t["grad_accum_steps"]) == (8, 1)
    # 1.000000e+09, 6.039798e+07, 6.710886e+07 elements; contiguous_gradients true
    assert t["deepspeed"] == {
        "stage3_max_live_parameters": 1_000_000_000,
        "stage3_max_reuse_distance": 1_000_000_000,
        "stage3_prefetch_bucket_size": 60_397_980,
        "reduce_bucket_size": 67_108_860,
        "contiguous_gradients": True,
    }
    unknown = imported.unknown
    assert [e.key for e in unknown] == ["zero_optimization.stage3_param_persitence_threshold"]
    assert "stage3_param_persistence_threshold" in unknown[0].why


def test_deepspeed_train_batch_size_gives_the_micro_batch_and_offload():
    imported = import_files([LLAMA, import_fixture("ds_zero2_cpu_offload_config.json")], "dgx-a100")
    t = imported.document["training"]
    # "train_batch_size": 16, "gradient_accumulation_steps": 1 on 8 GPUs: 2 per GPU
    assert (t["global_batch_size"], t["grad_accum_steps"], t["micro_batch_size"]) == (16, 1, 2)
    # "stage": 2, "cpu_offload": true (ZeRO-Offload's older key), "type": "Adam"
    assert (t["strategy"], t["offload"], t["optimizer"]) == ("zero2", {"optimizer": "cpu"}, "adamw")


def test_deepspeed_nvme_offload_is_refused():
    p = import_text(
        '{"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme", '
        '"nvme_path": "/local_nvme"}}}',
        "ds.json",
    )
    assert [e.key for e in p.entries if e.status == "refused"] == [
        "zero_optimization.offload_param.device"
    ]


# ---------------------------------------------------------------------------------- torchtitan


def test_torchtitan_llama3_8b_is_the_hand_written_scenario():
    imported = import_files([import_fixture("torchtitan-llama3_8b.toml")], "dgx-a100", num_hosts=8)
    # [model] llama3 8B; [training] batch_size 1 (per rank), seq_len 8192; [parallelism] shard -1
    # (all 64 GPUs), replicate 1, tp = pp = cp = 1; [activation_checkpoint] mode selective;
    # mixed_precision_reduce absent: torchtitan's float32 reduce_dtype for fully_shard;
    # [optimizer] without implementation or fused: fused, torchtitan's default since #881
    hand = scenario_from_dict(
        {
            "name": imported.document["name"],
            "model": {"preset": "llama3-8b"},
            "training": {
                "framework": "pytorch-fsdp2",
                "strategy": "zero3",
                "precision": "bf16-mixed",
                "optimizer": "adamw",
                "micro_batch_size": 1,
                "seq_len": 8192,
                "activation_checkpointing": "selective",
                "parallelism": {"tp": 1, "pp": 1, "cp": 1},
                "fsdp2": {"reduce_dtype": "fp32"},
                "optimizer_implementation": "fused",
            },
            "cluster": {"topology": "dgx-a100", "num_hosts": 8},
        }
    )
    got = imported.scenario
    assert got is not None
    assert (got.model, got.training, got.cluster) == (hand.model, hand.training, hand.cluster)
    assert _status(imported, "activation_checkpoint.selective_ac_option") == "ignored"


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ('implementation = "foreach"', "foreach"),
        ('implementation = "for-loop"', "for-loop"),
        ("fused = false", "foreach"),  # before #881: build_optimizers passed foreach=not fused
        ("fused = true", "fused"),
    ],
)
def test_torchtitan_optimizer_implementation(optimizer, expected, tmp_path):
    text = import_fixture("torchtitan-llama3_8b.toml").read_text()
    path = tmp_path / "torchtitan.toml"
    path.write_text(text.replace("[optimizer]\n", f"[optimizer]\n{optimizer}\n"))
    got = import_files([path], "dgx-a100", num_hosts=8).scenario
    assert got is not None
    assert got.training.optimizer_implementation == expected


def test_torchtitan_hsdp_shard_minus_one_takes_what_remains(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(
        '[model]\nname = "llama3"\nflavor = "8B"\n[training]\nbatch_size = 2\nseq_len = 4096\n'
        "[parallelism]\ndata_parallel_replicate_degree = 2\ndata_parallel_shard_degree = -1\n"
        "tensor_parallel_degree = 2\n"
    )
    imported = import_files([path], "dgx-a100", num_hosts=2)
    t = imported.document["training"]
    # 16 GPUs / tp 2 = dp 8 = replicate 2 x shard 4; tp > 1: sequence parallel (torchtitan's TP)
    assert (t["strategy"], t["shard_group_size"]) == ("hsdp", 4)
    assert t["parallelism"] == {"tp": 2, "sequence_parallel": True}


def _job(tmp_path, text: str):
    path = tmp_path / "job.toml"
    path.write_text('[model]\nname = "llama3"\nflavor = "8B"\n' + text)
    return import_files([path], "dgx-a100", num_hosts=1)


def test_torchtitan_reduces_gradients_in_fp32_under_fully_shard_only(tmp_path):
    # apply_fsdp: MixedPrecisionPolicy(reduce_dtype=mixed_precision_reduce), float32 by default
    t = _job(tmp_path, "").document["training"]
    assert t["fsdp2"] == {"reduce_dtype": "fp32"} and t["strategy"] == "zero3"
    # shard 1: DDP (no fully_shard), whose fp32 gradients are reduced as they are
    ddp = _job(
        tmp_path,
        '[training]\nmixed_precision_reduce = "float32"\n'
        "[parallelism]\ndata_parallel_replicate_degree = 8\ndata_parallel_shard_degree = 1\n",
    )
    assert ddp.document["training"]["strategy"] == "ddp"
    assert "fsdp2" not in ddp.document["training"]
    assert _status(ddp, "training.mixed_precision_reduce") == "ignored"
    bf16 = _job(tmp_path, '[training]\nmixed_precision_reduce = "bfloat16"\n')
    assert _status(bf16, "training.mixed_precision_reduce") == "refused"


def test_torchtitan_defaults_are_its_own(tmp_path):
    # config_manager.py: batch_size 8, seq_len 2048, AdamW
    imported = _job(tmp_path, "")
    t = imported.document["training"]
    assert (t["micro_batch_size"], t["seq_len"], t["optimizer"]) == (8, 2048, "adamw")
    # activation_checkpoint: mode "selective" with selective_ac_option "2" by default, i.e.
    # every second block checkpointed whole: not modelled, so said (and clustersim's none kept)
    assert _status(imported, "activation_checkpoint.mode") == "refused"
    assert "activation_checkpointing" not in t


def test_torchtitan_selective_ac_option(tmp_path):
    def mode(option: str) -> tuple[str, str | None]:
        text = f'[activation_checkpoint]\nmode = "selective"\nselective_ac_option = "{option}"\n'
        imported = _job(tmp_path, text)
        status = _status(imported, "activation_checkpoint.mode")
        return status, imported.document["training"].get("activation_checkpointing")

    assert mode("op") == ("mapped", "selective")  # op-level: some ops of every block
    assert mode("1") == ("mapped", "full")  # every block checkpointed whole
    assert mode("2") == ("refused", None)  # every second block whole


def test_torchtitan_pipeline_micro_batches_and_resharding(tmp_path):
    imported = _job(
        tmp_path,
        "[training]\nbatch_size = 8\n[parallelism]\npipeline_parallel_degree = 2\n"
        "pipeline_parallel_microbatch_size = 2\n",
    )
    t = imported.document["training"]
    # distributed/pipeline.py: 8 / 2 = 4 micro-batches of 2 per data-parallel rank per step;
    # apply_fsdp's "default" policy does not reshard under pipeline parallelism
    assert (t["micro_batch_size"], t["grad_accum_steps"]) == (2, 4)
    assert t["fsdp2"] == {"reduce_dtype": "fp32", "reshard_after_forward": False}
    assert imported.scenario is not None and imported.scenario.global_batch_size == 32  # 8 x dp 4
    # with global_batch_size (newer torchtitan): accumulated over whole local batches
    accum = _job(
        tmp_path,
        "[training]\nlocal_batch_size = 8\nglobal_batch_size = 64\n"
        "[parallelism]\npipeline_parallel_degree = 2\n",
    )
    assert accum.scenario is not None
    assert (accum.scenario.training.micro_batch_size, accum.scenario.global_batch_size) == (1, 64)
    assert accum.scenario.training.grad_accum_steps == 16  # 64 / (1 x dp 4)
    odd = _job(
        tmp_path,
        "[training]\nbatch_size = 3\n[parallelism]\npipeline_parallel_degree = 2\n"
        "pipeline_parallel_microbatch_size = 2\n",
    )
    assert _status(odd, "training.batch_size") == "refused"


def test_torchtitan_cpu_offload_and_gathered_loss(tmp_path):
    imported = _job(
        tmp_path,
        "[training]\nenable_cpu_offload = true\n"
        "[parallelism]\ntensor_parallel_degree = 2\ndisable_loss_parallel = true\n",
    )
    # CPUOffloadPolicy: parameters, gradients and the optimizer step on the CPU
    assert imported.document["training"]["offload"] == {"params": "cpu", "optimizer": "cpu"}
    # logits gathered whole on every tensor-parallel rank: not what clustersim models
    assert _status(imported, "parallelism.disable_loss_parallel") == "refused"


def test_torchtitan_unknown_flavour_is_refused_and_leaves_no_model(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text('[model]\nname = "llama3"\nflavor = "debugmodel"\n[training]\nseq_len = 2048\n')
    with pytest.raises(UserError, match="none of the files describes the model"):
        import_files([path])


# ---------------------------------------------------------------------------------- accelerate


def test_accelerate_fsdp_template():
    imported = import_files([LLAMA, import_fixture("accelerate-fsdp.yaml")], "dgx-h100")
    t = imported.document["training"]
    # distributed_type FSDP, mixed_precision bf16, num_processes 2, FULL_SHARD, BACKWARD_PRE,
    # fsdp_offload_params false, fsdp_activation_checkpointing false
    assert (t["framework"], t["strategy"], t["precision"]) == (
        "pytorch-fsdp",
        "zero3",
        "bf16-mixed",
    )
    assert imported.document["cluster"]["num_gpus"] == 2
    assert t["zero3"] == {"backward_prefetch": True}
    assert t["offload"] == {"params": "none", "optimizer": "none"}
    assert t["activation_checkpointing"] == "none"
    assert _status(imported, "fsdp_config.fsdp_forward_prefetch") == "ignored"


# ---------------------------------------------------------------------------------- merging


def test_contradictory_files_are_an_error_naming_both(tmp_path):
    other = tmp_path / "ds.json"
    other.write_text('{"train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 2}}')
    with pytest.raises(UserError) as caught:
        import_files([LLAMA, import_fixture("ds_zero_stage_3_config.json"), other], "dgx-a100")
    text = str(caught.value)
    assert "ds.json" in text and "ds_zero_stage_3_config.json" in text
    assert "training.strategy" in text and "training.micro_batch_size" in text


def test_a_training_file_alone_says_the_model_is_missing():
    with pytest.raises(UserError, match="none of the files describes the model"):
        import_files([import_fixture("ds_zero_stage_3_config.json")])


def test_megatron_without_a_vocabulary_says_what_is_missing():
    with pytest.raises(UserError, match="vocab_size"):
        import_files_from_text("--num-layers 2 --hidden-size 256 --num-attention-heads 2")


def import_files_from_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "args.txt"
        path.write_text(text + "\n")
        return import_files([path])


# ---------------------------------------------------------------------- gradient clipping


def test_each_importer_reads_its_clipping_norm(tmp_path):
    # The max norm each framework clips at: > 0 clips (training.gradient_clipping true), 0 (or
    # less) does not; DeepSpeed's gradient_clipping, Megatron-LM's --clip-grad and torchtitan's
    # training.max_norm.
    def deepspeed(norm):
        p = import_text(
            f'{{"train_micro_batch_size_per_gpu": 1, "gradient_clipping": {norm}}}', "ds"
        )
        return {path: value for path, value, _ in p.assignments}.get("training.gradient_clipping")

    assert (deepspeed(1.0), deepspeed(0), deepspeed('"auto"')) == (True, False, True)
    megatron = import_text(
        "--num-layers 2 --hidden-size 64 --num-attention-heads 2 --clip-grad 0.0", "a"
    )
    assert {path: value for path, value, _ in megatron.assignments}[
        "training.gradient_clipping"
    ] is False
    assert (
        _status(
            import_text('{"gradient_clipping": "x", "train_batch_size": 8}', "ds"),
            "gradient_clipping",
        )
        == "refused"
    )
    off = _job(tmp_path, "[training]\nmax_norm = 0.0\n")
    assert off.document["training"]["gradient_clipping"] is False


# ------------------------------------------------------------------------------- kernels


def test_torchtitan_compile_sets_the_kernels(tmp_path):
    # training.compile: torch.compile's fused kernels; off: PyTorch's eager modules.
    on = _job(tmp_path, "[training]\ncompile = true\n")
    assert on.document["training"]["kernels"] == "compiled"
    off = _job(tmp_path, "[training]\ncompile = false\n")
    assert off.document["training"]["kernels"] == "eager"


def test_accelerate_dynamo_inductor_sets_compiled_kernels(tmp_path):
    # accelerate's dynamo_config compiles the model; only Inductor fuses kernels.
    base = import_fixture("accelerate-fsdp.yaml").read_text()
    for backend, expected in (("INDUCTOR", "compiled"), ("NO", None)):
        path = tmp_path / f"accelerate-{backend}.yaml"
        path.write_text(base + f"dynamo_config:\n  dynamo_backend: {backend}\n")
        t = import_files([LLAMA, path], "dgx-h100").document["training"]
        assert t.get("kernels") == expected


@pytest.mark.parametrize(
    "backend, key, value",
    [
        ("fused", "training.attention_kernel", "cudnn"),
        ("flash", "training.attention_kernel", "flash-attention-2"),
        ("unfused", "training.flash_attention", False),
        ("local", "training.flash_attention", False),
    ],
)
def test_megatron_attention_backend(backend, key, value):
    # Megatron-Core's --attention-backend (AttnBackend): fused is TE's cuDNN FusedAttention.
    text = "--num-layers 2 --hidden-size 256 --num-attention-heads 4 --seq-length 512 "
    p = import_text(text + f"--attention-backend {backend}", "args")
    values = {path: v for path, v, _ in p.assignments}
    assert values[key] == value
    assert not [e.key for e in p.entries if e.unknown]


def test_megatron_attention_backend_auto_and_unknown():
    text = "--num-layers 2 --hidden-size 256 --num-attention-heads 4 --seq-length 512 "
    auto = import_text(text + "--attention-backend auto", "args")
    assert "training.attention_kernel" not in {path for path, _, _ in auto.assignments}
    bogus = import_text(text + "--attention-backend magic", "args")
    assert any(e.key == "--attention-backend" and e.status == "refused" for e in bogus.entries)
