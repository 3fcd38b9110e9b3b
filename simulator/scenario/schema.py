"""The scenario file format as pydantic models: shape, units and bounds at the YAML edge, and
the JSON Schema of `clustersim schema`.

Names with a registry (strategies, precisions, optimizers, checkpointing modes, collective
algorithms, datatypes) take their choices from it, case-insensitively; load.py resolves the
rest (model presets, GPUs, topologies) and turns the validated file into frozen specs.
Quantities are strings with units ("80 GiB", "400 Gb/s"): a bare number is refused, since
"25" could mean bytes or PyTorch's bucket_cap_mb.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from simulator.execution.frameworks import FRAMEWORKS
from simulator.scenario.schema_cluster import ClusterSection
from simulator.scenario.schema_finetune import FinetuneSection
from simulator.scenario.schema_framework import DeepSpeedSection, Fsdp2Section, MegatronSection
from simulator.scenario.schema_moe import AttentionSection, MoEArchitecture, MoETraining
from simulator.scenario.schema_reliability import ReliabilitySection
from simulator.scenario.schema_types import (
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_SEQ_LEN,
    MAX_VOCAB,
    Accum,
    AttentionBuckets,
    BucketBytes,
    Bytes,
    CheckpointingName,
    CpCommName,
    FfnName,
    FrameworkName,
    GlobalBatch,
    Gpus,
    KindName,
    Layers,
    MeshDim,
    MicroBatch,
    NormName,
    OffloadTarget,
    OptimizerName,
    PositionName,
    PrecisionName,
    ScheduleName,
    SeqLen,
    StepAlgorithmName,
    StrategyName,
    Strict,
    Vocab,
    Width,
)
from simulator.spec.specs import DEFAULT_FRAMEWORK
from simulator.system.hardware import DEFAULT_ALLOCATOR_RESERVE_FRACTION


class ArchitectureModel(Strict):
    """A transformer described by its shape (see simulator/model/architecture.py)."""

    kind: KindName = "decoder"
    num_layers: Layers
    hidden_size: Width
    num_heads: Width
    num_kv_heads: Width | None = None
    head_dim: Width | None = None
    ffn_hidden_size: Width | None = Field(None, description="default 4 x hidden_size")
    ffn: FfnName = "gelu"
    vocab_size: Vocab
    num_decoder_layers: Layers | None = None
    tied_embeddings: bool = True
    position_embedding: PositionName = "learned"
    max_position_embeddings: Annotated[int, Field(ge=0, le=MAX_SEQ_LEN, strict=True)] = 0
    norm: NormName = "layernorm"
    bias: bool = True
    qkv_bias: bool | None = None
    lm_head: bool = True
    lm_head_bias: bool = False
    embedding_norm: bool = False
    final_norm: bool = True
    token_type_vocab: Annotated[int, Field(ge=0, le=MAX_VOCAB, strict=True)] = 0
    pooler: bool = False
    relative_attention_num_buckets: AttentionBuckets = 32
    moe: MoEArchitecture | None = Field(None, description="mixture-of-experts MLPs")
    attention: AttentionSection | None = Field(
        None, description="mha | gqa | mla; default: mha, or gqa as num_kv_heads says"
    )
    mtp_layers: Annotated[int, Field(ge=0, le=MAX_LAYERS, strict=True)] = Field(
        0, description="DeepSeek-V3 multi-token-prediction modules after the stack"
    )
    qk_norm: bool = Field(False, description="Qwen3: RMSNorm on each head's query and key")


class ModelSection(Strict):
    """Exactly one of preset, params or architecture."""

    preset: str | None = Field(None, description="a name from the preset catalog, e.g. llama2-7b")
    params: float | None = Field(
        None,
        gt=0,
        le=MAX_PARAMS,
        allow_inf_nan=False,
        description="bare parameter count, e.g. 7.5e9",
    )
    architecture: ArchitectureModel | None = None
    num_layers: Layers | None = Field(
        None,
        description="with params: layer count used for activation memory (default from params)",
    )
    hidden_size: Width | None = Field(
        None,
        description="with params: hidden size used for activation memory (default from params)",
    )
    vocab_size: Vocab | None = Field(
        None,
        description="with preset: the vocabulary as trained, e.g. padded by Megatron to a multiple of "
        "128 x tp (--make-vocab-size-divisible-by)",
    )

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("preset", "params", "architecture") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'preset', 'params' or 'architecture'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.vocab_size is not None and self.preset is None:
            raise ValueError(
                "vocab_size overrides a preset's vocabulary; with architecture, set it there"
            )
        return self


class OffloadSection(Strict):
    optimizer: OffloadTarget = "none"
    params: OffloadTarget = "none"


class Zero3Section(Strict):
    """PyTorch FSDP (framework pytorch-fsdp) ZeRO-3 behaviour, in FSDP's names. FSDP's
    forward_prefetch only matters when the host cannot run ahead of the GPU; the engine's host
    always can, so it is not offered."""

    backward_prefetch: bool = True
    limit_all_gathers: bool = True
    reshard_after_forward: bool = True
    reduce_dtype: Literal["fp32", "bf16", "fp16"] | None = Field(
        None,
        description="MixedPrecision reduce_dtype: the gradient reduce-scatter's datatype (default: "
        "the parameters', bf16 under bf16-mixed; Composer's mixed_precision DEFAULT is fp32)",
    )
    gradient_sync: Literal["every_micro_batch", "last_micro_batch"] = Field(
        "every_micro_batch",
        description="every_micro_batch: each micro-batch reduce-scatters its gradients (FSDP's "
        "default); last_micro_batch: the micro-batches before each chunk's last run under no_sync() "
        "and accumulate unsharded gradients, reduced once per step",
    )


class PipelineSection(Strict):
    """Pipeline parallelism (Narayanan et al. 2021): the schedule and how layers are split."""

    schedule: ScheduleName = "1f1b"
    virtual_stages: Layers = Field(1, description="model chunks per stage (interleaved-1f1b)")
    microbatches: Accum | None = Field(
        None, description="micro-batches per step (default: grad_accum_steps)"
    )
    layers_per_stage: tuple[Annotated[int, Field(ge=0, le=MAX_LAYERS, strict=True)], ...] | None = (
        Field(
            None,
            description="transformer layers of each of the pp x virtual_stages model chunks, in order "
            "(an uneven split, e.g. Llama 3's one layer fewer on the first and last stage)",
        )
    )


class ParallelismSection(Strict):
    """Tensor, sequence, context, expert and pipeline parallelism; data parallelism is what
    remains of the GPUs: dp = GPUs / (tp x cp x pp)."""

    tp: Gpus = 1
    pp: Layers = 1
    cp: Gpus = Field(
        1, description="context parallelism: each sequence split over cp ranks (Megatron-Core)"
    )
    ep: Gpus = Field(
        1, description="expert parallelism: each MoE layer's experts split over ep ranks"
    )
    etp: Gpus = Field(
        1, description="expert tensor parallelism: each expert's GEMMs split over etp ranks"
    )
    cp_comm: CpCommName = Field(
        "ring",
        description="how context-parallel attention exchanges K and V: ring (Megatron's p2p), "
        "all-gather, or all-to-all (DeepSpeed-Ulysses, Megatron's a2a)",
    )
    sequence_parallel: bool = Field(
        False, description="Megatron sequence parallelism (needs tp > 1)"
    )
    tp_comm_overlap: bool = Field(
        False,
        description="overlap the tensor-parallel all-gathers and reduce-scatters with the GEMMs "
        "beside them, as Transformer Engine's userbuffers do (Megatron --tp-comm-overlap; needs "
        "sequence_parallel)",
    )
    pipeline: PipelineSection = PipelineSection()
    order: tuple[MeshDim, ...] | None = Field(
        None,
        description="mesh dimensions from innermost (consecutive ranks) to outermost; default "
        "[tp, dp, pp], with cp right after tp unless placed (Megatron-Core's tp-cp-ep-dp-pp); "
        "experts are folded over the same ranks as etp x ep x edp",
    )
    tp_across_nvlink_domains: bool = Field(
        False, description="allow a tensor-parallel group to span hosts"
    )


class TrainingSection(Strict):
    precision: PrecisionName = "bf16-mixed"
    optimizer: OptimizerName = "adamw"
    strategy: StrategyName = "ddp"
    framework: FrameworkName = Field(
        DEFAULT_FRAMEWORK,
        description="whose scheduling of memory and "
        "communication to model: " + ", ".join(FRAMEWORKS),
    )
    deepspeed: DeepSpeedSection | None = Field(
        None, description="framework deepspeed: ZeRO options"
    )
    fsdp2: Fsdp2Section | None = Field(
        None, description="framework pytorch-fsdp2: fully_shard options"
    )
    megatron: MegatronSection | None = Field(
        None, description="framework megatron: DDP / distributed optimizer options"
    )
    shard_group_size: Gpus | None = Field(None, description="hsdp: GPUs per shard group")
    micro_batch_size: MicroBatch = 1
    seq_len: SeqLen = 2048
    grad_accum_steps: Accum | None = None
    global_batch_size: GlobalBatch | None = Field(None, description="sequences per optimizer step")
    activation_checkpointing: CheckpointingName = "none"
    recompute_modules: list[str] | None = Field(
        None,
        description="activation_checkpointing selective only: Megatron-Core's "
        "--recompute-modules, the submodules recomputed in backward (core_attn, layernorm, "
        "moe_act, mla_up_proj, mlp, moe, shared_experts); default [core_attn], the attention "
        "core (Korthikanti et al. 2022)",
    )
    flash_attention: bool = True
    gradient_clipping: bool | None = Field(
        None,
        description="clip the gradients' global norm before the optimizer step: its norm pass "
        "(and the scaling pass where the framework always scales). Default: on (Megatron-LM's "
        "--clip-grad 1.0, torchtitan's max_norm 1.0, the Hugging Face Trainer's max_grad_norm "
        "1.0), off under framework deepspeed (its gradient_clipping defaults to 0)",
    )
    kernels: Literal["eager", "megatron", "compiled"] | None = Field(
        None,
        description="how the norms, RoPE, gated activation and loss run: eager (PyTorch modules "
        "op by op: RMSNorm 4e + 28 bytes per element, RoPE 10e, SwiGLU 5e, F.cross_entropy on "
        "fp32 logits), megatron (Transformer Engine / Apex fused kernels, Megatron's "
        "vocab_parallel_cross_entropy) or compiled (torch.compile: one pass each). Default: "
        "megatron under framework megatron, eager otherwise",
    )
    attention_kernel: Literal["flash-attention-2", "flash-attention-3", "cudnn"] | None = Field(
        None,
        description="the fused attention kernel (with flash_attention true): flash-attention-2, "
        "flash-attention-3 (Hopper only) or cudnn (cuDNN's fused attention, Transformer "
        "Engine's FusedAttention). Timed by kernel and sequence length where the GPU has "
        "published figures (H100-class GPUs). Default: cudnn under framework megatron on those "
        "GPUs (Transformer Engine prefers FusedAttention on Hopper), flash-attention-2 "
        "otherwise",
    )  # specs.ATTENTION_KERNELS
    optimizer_implementation: Literal["fused", "foreach", "for-loop"] | None = Field(
        None,
        description="how the optimizer update runs (torch.optim's fused / foreach flags, "
        "torchtitan's optimizer.implementation): fused (one pass), foreach (torch.optim.AdamW's "
        "default on CUDA: eight multi-tensor passes, 4p + 2g + 14s bytes per parameter) or "
        "for-loop (the same passes tensor by tensor). Adam and AdamW only. Default: fused "
        "under megatron and deepspeed (their FusedAdam), foreach otherwise",
    )
    dropout: bool | None = Field(
        None,
        description="dropout after attention and MLP (Korthikanti et al. 2022 count "
        "its 1-byte masks); default: the model preset's training config (off for Llama, "
        "BLOOM, MPT; on for GPT-2/3, BERT, T5), on for other models",
    )
    offload: OffloadSection = OffloadSection()
    zero3: Zero3Section = Zero3Section()
    # torch/nn/parallel/distributed.py: bucket_bytes_cap = int(bucket_cap_mb * 1024 * 1024), default 25.
    bucket_size: BucketBytes = Field(
        25 * 2**20,
        json_schema_extra={"default": "25 MiB"},
        description="DDP bucket cap with its unit (PyTorch's default bucket_cap_mb=25 "
        "is '25 MiB'); at least 1 MiB",
    )
    gradient_as_bucket_view: bool = Field(
        False,
        description="PyTorch DDP option; False (default) keeps a second copy of gradients in buckets",
    )
    ddp_comm_hook: Literal["none", "fp16_compress", "bf16_compress"] = Field(
        "none",
        description="PyTorch DDP communication hook (torch.distributed.algorithms.ddp_comm_hooks): "
        "none all-reduces the gradient buckets in the parameters' dtype (fp32 under mixed "
        "precision, whose parameters stay fp32); fp16_compress / bf16_compress cast each "
        "bucket to 16 bits for the all-reduce",
    )
    framework_overhead: Bytes | None = Field(
        None, description="CUDA context etc. per GPU (default per GPU)"
    )
    allocator_reserve: float = Field(
        DEFAULT_ALLOCATOR_RESERVE_FRACTION,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="caching-allocator reserve, fraction of tensor bytes",
    )
    tokens: float | None = Field(
        None,
        gt=0,
        le=1e18,
        allow_inf_nan=False,
        description="tokens to train on (default 20 x params)",
    )
    collective_algorithm: StepAlgorithmName = "auto"
    nvls: bool = Field(
        True,
        description="NCCL_NVLS_ENABLE: NVLink SHARP (NVLS) where the topology has it "
        "(`nvls: true`, Hopper or later); false turns it off",
    )
    compute_jitter: float = Field(
        0.0, ge=0, lt=1, allow_inf_nan=False, description="relative std-dev of each kernel's time"
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)] = Field(
        0, description="seed of compute_jitter"
    )
    parallelism: ParallelismSection = ParallelismSection()
    moe: MoETraining | None = Field(
        None, description="mixture-of-experts models: token dispatch, imbalance, overlap"
    )
    finetune: FinetuneSection | None = Field(
        None, description="full fine-tuning (default), LoRA or QLoRA adapters on a frozen base"
    )


class ScenarioFile(Strict):
    """A clustersim scenario: a model, a training setup and a cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="clustersim scenario")

    name: str = "scenario"
    description: str = ""
    model: ModelSection
    training: TrainingSection = TrainingSection()
    cluster: ClusterSection = ClusterSection()
    reliability: ReliabilitySection = ReliabilitySection()
    calibration: str | None = Field(
        None,
        min_length=1,
        description="a calibration profile (`clustersim calibrate "
        "--out PROFILE.yaml`), relative to this file; default: the built-in constants",
    )


def json_schema() -> dict:
    schema = ScenarioFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
