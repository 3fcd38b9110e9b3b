"""The frozen, keyword-only specs a validated scenario resolves into.

Everything below the YAML edge reads these, never a pydantic model. Quantities are in
internal units (int bytes, float seconds); names are canonical (a strategy's registry
name, a Precision object, a GPU from the catalog or the user's file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from simulator.model.precision import Precision
from simulator.model.spec import ModelSpec
from simulator.spec.calibration import DEFAULT_CALIBRATION, CalibrationSpec
from simulator.spec.reliability import ReliabilitySpec
from simulator.system.hardware import GPU
from simulator.system.hardware.power import DEFAULT_PUE


@dataclass(frozen=True, kw_only=True)
class OffloadSpec:
    """ZeRO-Offload / ZeRO-Infinity: what lives in CPU memory."""

    optimizer: bool = False
    params: bool = False


@dataclass(frozen=True, kw_only=True)
class ShardingSpec:
    """FSDP / ZeRO-3 behaviour (PyTorch FSDP names)."""

    backward_prefetch: bool = True
    limit_all_gathers: bool = True
    reshard_after_forward: bool = True
    # FSDP1 MixedPrecision(reduce_dtype=None) takes param_dtype's value: None reduces in the
    # gradients' dtype (bf16 under bf16-mixed).
    reduce_dtype: str | None = None
    # "last_micro_batch": micro-batches before each chunk's last run under FSDP1's no_sync()
    # (torch.distributed.pipelining does the same for FSDP under a pipeline schedule).
    gradient_sync: str = "every_micro_batch"


# ---- framework profiles: how a framework schedules memory and communication (execution/frameworks).
# Element counts are numel, as DeepSpeed and Megatron count them; the defaults are the
# frameworks' own, each with the file it is read from.

DEFAULT_FRAMEWORK = "pytorch-fsdp"


@dataclass(frozen=True, kw_only=True)
class DeepSpeedSpec:
    """DeepSpeed ZeRO (`zero_optimization` config keys). Defaults: deepspeed/runtime/zero/config.py
    (DeepSpeedZeroConfig, microsoft/DeepSpeed at 38327e0)."""

    reduce_bucket_size: int = 500_000_000  # config.py: reduce_bucket_size = 5e8 elements
    allgather_bucket_size: int = (
        500_000_000  # config.py: 5e8; unused when torch has all_gather_into_tensor
    )
    overlap_comm: bool | None = None  # config.py overlap_comm_valid: None -> True iff stage 3
    contiguous_gradients: bool = True  # config.py: contiguous_gradients = True
    reduce_scatter: bool = True  # config.py: reduce_scatter = True
    use_multi_rank_bucket_allreduce: bool = (
        True  # config.py: True (stage 1/2 all-reduce the bucket)
    )
    stage3_prefetch_bucket_size: int = (
        50_000_000  # config.py: 5e7 (docs/_pages/config-json.md says 5e8)
    )
    stage3_max_live_parameters: int = 1_000_000_000  # config.py: 1e9
    stage3_max_reuse_distance: int = 1_000_000_000  # config.py: 1e9
    stage3_param_persistence_threshold: int = 100_000  # config.py: 1e5
    sub_group_size: int = 1_000_000_000  # config.py: 1e9 (ZeRO-3 optimizer step tile)

    def overlap(self, stage: int) -> bool:
        return self.overlap_comm if self.overlap_comm is not None else stage == 3


@dataclass(frozen=True, kw_only=True)
class Fsdp2Spec:
    """PyTorch FSDP2 (`fully_shard`). Defaults: torch/distributed/fsdp/_fully_shard/_fully_shard.py."""

    # _fully_shard.py: reshard_after_forward=None means True for non-root modules, False for the root.
    reshard_after_forward: bool = True
    # _fsdp_api.py MixedPrecisionPolicy(reduce_dtype=None): None reduces in the gradients' dtype
    # (bf16 under bf16-mixed); torchtitan and others set float32.
    reduce_dtype: str | None = None
    # "last_micro_batch": set_requires_gradient_sync(False) on every micro-batch but the last.
    gradient_sync: str = "every_micro_batch"


# Megatron-LM: the DDP bucket default, max(40M, 1M x dp) parameters, when overlapping the
# gradient reduce (megatron/training/training.py, distributed_data_parallel.py); else one bucket.
MEGATRON_MIN_BUCKET_PARAMS = 40_000_000
MEGATRON_BUCKET_PARAMS_PER_DP_RANK = 1_000_000


@dataclass(frozen=True, kw_only=True)
class MegatronSpec:
    """Megatron-Core DDP and distributed optimizer. Defaults:
    megatron/core/distributed/distributed_data_parallel_config.py and megatron/training/arguments.py."""

    overlap_grad_reduce: bool = False  # distributed_data_parallel_config.py: False
    overlap_param_gather: bool = (
        False  # distributed_data_parallel_config.py: False (needs overlap_grad_reduce)
    )
    bucket_size: int | None = (
        None  # parameters; None -> the default above (one bucket without overlap)
    )
    grad_reduce_in_fp32: bool | None = (
        None  # None -> True for bf16 (arguments.py forces fp32 main grads)
    )

    def bucket_params(self, dp: int) -> int | None:
        """Parameters per gradient bucket (None: one bucket holds every parameter)."""
        if self.bucket_size is not None:
            return self.bucket_size
        if not self.overlap_grad_reduce:
            return None
        return max(MEGATRON_MIN_BUCKET_PARAMS, MEGATRON_BUCKET_PARAMS_PER_DP_RANK * dp)


@dataclass(frozen=True, kw_only=True)
class FrameworkSpec:
    """The framework profile and its options (only the chosen framework's section is read)."""

    name: str = DEFAULT_FRAMEWORK
    deepspeed: DeepSpeedSpec = DeepSpeedSpec()
    fsdp2: Fsdp2Spec = Fsdp2Spec()
    megatron: MegatronSpec = MegatronSpec()


PIPELINE_SCHEDULES = ("gpipe", "1f1b", "interleaved-1f1b")
# The default placement of the mesh: tensor parallelism innermost (inside one NVLink domain),
# then data parallelism, then pipeline stages outermost (Megatron-LM's and torchtitan's order).
DEFAULT_ORDER = ("tp", "dp", "pp")


@dataclass(frozen=True, kw_only=True)
class PipelineSpec:
    schedule: str = "1f1b"  # gpipe | 1f1b | interleaved-1f1b (Narayanan et al. 2021)
    virtual_stages: int = 1  # model chunks per stage (interleaved-1f1b)
    layers_per_stage: tuple[
        int, ...
    ] = ()  # explicit (possibly uneven) split over pp x virtual_stages chunks


CP_COMMS = ("ring", "all-gather", "all-to-all")


@dataclass(frozen=True, kw_only=True)
class ParallelSpec:
    """The model-parallel layout; the data-parallel degree is what remains of the GPUs.

    Attention and dense layers run on the mesh tp x cp x dp x pp; expert layers on the same
    ranks folded as etp x ep x edp x pp (Megatron-Core MoE parallel folding), where
    edp = tp x cp x dp / (etp x ep).
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1  # context parallelism: the sequence split over cp ranks
    ep: int = 1  # expert parallelism: the experts of a layer split over ep ranks
    etp: int = 1  # expert tensor parallelism: each expert's GEMMs split over etp ranks
    cp_comm: str = "ring"  # ring | all-gather | all-to-all (DeepSpeed-Ulysses)
    sequence_parallel: bool = False
    # Transformer Engine's userbuffers overlap of the tensor-parallel all-gathers and
    # reduce-scatters with the GEMMs beside them (Megatron --tp-comm-overlap; execution/tp_overlap.py)
    tp_comm_overlap: bool = False
    pipeline: PipelineSpec = PipelineSpec()
    order: tuple[str, ...] = DEFAULT_ORDER
    tp_across_nvlink_domains: bool = False

    @property
    def model_parallel(self) -> int:
        return self.tp * self.cp * self.pp

    @property
    def edp(self) -> int:
        """Expert data parallelism: the ranks holding the same experts."""
        return self.tp * self.cp * self.dp // (self.etp * self.ep)


MOE_DISPATCHERS = ("alltoall", "allgather", "deepep")
# Fused attention kernels (training.attention_kernel; system/hardware/attention_table.py).
ATTENTION_KERNELS = ("flash-attention-2", "flash-attention-3", "cudnn")
MOE_OVERLAPS = ("none", "shared-expert", "1f1b")


@dataclass(frozen=True, kw_only=True)
class MoETrainingSpec:
    """How MoE layers are trained (scenario key training.moe)."""

    dispatcher: str = "alltoall"  # Megatron-Core --moe-token-dispatcher-type (deepep: DeepEP)
    load_imbalance: float = 1.0  # the busiest expert's tokens over the mean (1.0: balanced)
    overlap: str = "none"  # none | shared-expert | 1f1b (dispatch/combine hidden behind compute)


@dataclass(frozen=True, kw_only=True)
class FinetuneSpec:
    """Fine-tuning (scenario key training.finetune): full (every parameter trained, the
    default), or LoRA adapters on a frozen base (lora), quantized (qlora). See model/lora.py."""

    method: str = "full"  # full | lora | qlora
    rank: int = 16
    alpha: float = 32.0  # LoRA's scale is alpha / rank: informative only
    target_modules: tuple[str, ...] | str = "all-linear"  # PEFT names, or "all-linear"
    base_weights: str = "bf16"  # bf16 | int8 | nf4: how the frozen base is stored
    paged_optimizer: bool = False  # QLoRA's paged AdamW: no change to the steady-state peak
    double_quant: bool = False  # QLoRA's Double Quantization of the nf4 constants

    @property
    def adapters(self) -> bool:
        """LoRA adapters on a frozen base (lora or qlora)."""
        return self.method != "full"


@dataclass(frozen=True, kw_only=True)
class TrainingSpec:
    precision: Precision
    optimizer: str
    strategy: str  # canonical registry name (execution.strategies)
    shard_group_size: int | None  # HSDP only
    micro_batch_size: int
    seq_len: int
    grad_accum_steps: int  # micro-batches per step (= pipeline micro-batches), resolved
    activation_checkpointing: str
    # selective: Megatron-Core's --recompute-modules; None: the attention core (core_attn)
    recompute_modules: tuple[str, ...] | None = None
    flash_attention: bool
    dropout: bool  # dropout layers (masks kept for backward); Llama and MPT train without
    gradient_clipping: bool = True  # clip the global gradient norm (strategies/common.py)
    kernels: str = "eager"  # how the memory-bound kernels run (model/kernels.py)
    # the fused attention kernel; None: the framework's on the GPU (execution/step.py)
    attention_kernel: str | None = None
    optimizer_implementation: str = "fused"  # model/optimizer_kernels.py
    offload: OffloadSpec
    sharding: ShardingSpec
    bucket_size_bytes: int  # DDP bucket cap
    gradient_as_bucket_view: bool
    ddp_comm_hook: str = "none"  # PyTorch DDP's communication hook (strategies/ddp.py)
    framework_overhead_bytes: int | None
    allocator_reserve: float
    tokens: float | None
    collective_algorithm: str
    nvls: bool = True  # NCCL_NVLS_ENABLE: NVLink SHARP where the topology has it
    compute_jitter: float
    seed: int
    parallel: ParallelSpec = ParallelSpec()
    framework: FrameworkSpec = FrameworkSpec()
    moe: MoETrainingSpec = MoETrainingSpec()
    finetune: FinetuneSpec = FinetuneSpec()


@dataclass(frozen=True, kw_only=True)
class Straggler:
    rank: int
    slowdown: float


@dataclass(frozen=True, kw_only=True)
class DegradedLink:
    source: str
    target: str
    bandwidth_factor: float
    both_directions: bool = True


@dataclass(frozen=True, kw_only=True)
class PowerSpec:
    """The site's power figures (system/hardware/power.py for the defaults and sources)."""

    host_w: float | None = None  # per host, constant; None: HOST_W_PER_GPU per GPU slot
    pue: float = DEFAULT_PUE  # facility power / IT power
    electricity_usd_per_kwh: float | None = None
    grid_kg_co2_per_kwh: float | None = None


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    topology_name: str
    topology_ref: str  # what the topology loader reads: a shipped name or a path
    gpu: GPU
    gpu_defaults: tuple[str, ...] = ()  # fields of a custom GPU left at assumed defaults
    num_hosts: int
    gpus_per_host: int
    num_gpus: int
    price_per_gpu_hour: float | None = None
    stragglers: tuple[Straggler, ...] = ()
    degraded_links: tuple[DegradedLink, ...] = ()
    power: PowerSpec = PowerSpec()
    power_cap_w: float | None = None  # per-GPU power cap (system/hardware/power.py); None: none


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A validated scenario. `document` is the mapping it was validated from (canonical JSON),
    so a derived scenario (the planner's, a sweep's) is made by editing it and validating again."""

    name: str
    model: ModelSpec
    training: TrainingSpec
    cluster: ClusterSpec
    source: str = ""
    base_dir: str | None = None  # where relative topology paths resolve
    document: str = field(default="{}", repr=False)
    warnings: tuple[str, ...] = ()
    reliability: ReliabilitySpec | None = None  # None: the defaults (spec/reliability.py)
    calibration: CalibrationSpec = (
        DEFAULT_CALIBRATION  # a profile (`calibration: FILE`) or the built-in one
    )

    @property
    def strategy(self) -> str:
        return self.training.strategy

    @property
    def num_gpus(self) -> int:
        return self.cluster.num_gpus

    @property
    def global_batch_size(self) -> int:
        """Sequences per optimizer step."""
        t = self.training
        return t.micro_batch_size * t.grad_accum_steps * t.parallel.dp

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.training.seq_len

    def data(self) -> dict[str, Any]:
        """A fresh copy of the validated mapping."""
        return json.loads(self.document)
