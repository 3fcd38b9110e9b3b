"""The scenario sections of mixture-of-experts models and their attention: model.architecture.moe,
model.architecture.attention and training.moe (see MoE and Attention in
simulator/model/architecture.py, MoETrainingSpec in simulator/spec/specs.py). Megatron-Core's
flag for each field is named where it has one."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from simulator.scenario.schema_types import (
    MAX_LAYERS,
    MAX_WIDTH,
    AttentionKindName,
    DispatcherName,
    Layers,
    MoeOverlapName,
    Strict,
    Width,
)

MAX_EXPERTS = 2**16
Experts = Annotated[int, Field(ge=1, le=MAX_EXPERTS, strict=True)]


class MoEArchitecture(Strict):
    """Mixture-of-experts MLPs: which layers have them, how many experts, how wide."""

    num_experts: Experts = Field(description="routed experts per MoE layer (--num-experts)")
    experts_per_token: Experts = Field(description="experts each token is routed to, top-k")
    expert_ffn_hidden_size: Width = Field(
        description="FFN width of one routed expert (--moe-ffn-hidden-size)"
    )
    shared_experts: Annotated[int, Field(ge=0, le=MAX_EXPERTS, strict=True)] = Field(
        0, description="always-on experts per MoE layer (DeepSeek's shared experts)"
    )
    shared_expert_ffn_hidden_size: Width | None = Field(
        None, description="FFN width of one shared expert (default expert_ffn_hidden_size)"
    )
    first_dense_layers: Annotated[int, Field(ge=0, le=MAX_LAYERS, strict=True)] = Field(
        0, description="leading layers with a dense MLP of ffn_hidden_size (DeepSeek-V3: 3)"
    )
    layer_frequency: Layers = Field(
        1, description="every n-th layer after the dense ones is an MoE layer (--moe-layer-freq)"
    )
    capacity_factor: float | None = Field(
        None,
        gt=0,
        le=MAX_EXPERTS,
        allow_inf_nan=False,
        description="tokens an expert takes, over its even share; null: dropless "
        "(--moe-expert-capacity-factor unset)",
    )
    router_bias: bool = Field(
        False, description="a per-expert score bias (DeepSeek-V3 e_score_correction_bias)"
    )
    router_groups: Experts | None = Field(
        None,
        description="group-limited routing: expert groups (DeepSeek-V3 n_group 8, "
        "--moe-router-num-groups)",
    )
    router_group_topk: Experts | None = Field(
        None,
        description="groups each token's experts come from (DeepSeek-V3 topk_group 4, "
        "--moe-router-group-topk)",
    )

    @model_validator(mode="after")
    def _top_k(self):
        if self.experts_per_token > self.num_experts:
            raise ValueError(
                f"experts_per_token {self.experts_per_token} exceeds num_experts {self.num_experts}"
            )
        if self.shared_expert_ffn_hidden_size is not None and not self.shared_experts:
            raise ValueError("shared_expert_ffn_hidden_size needs shared_experts >= 1")
        return self


class AttentionSection(Strict):
    """The attention kind: mha / gqa are one layer (num_kv_heads decides); mla is DeepSeek's
    multi-head latent attention (Q through a q_lora_rank bottleneck, K and V from a
    kv_lora_rank latent, Q/K heads of head_dim + rope_head_dim)."""

    kind: AttentionKindName = Field(description="mha | gqa | mla")
    kv_lora_rank: Width | None = Field(
        None, description="mla: width of the compressed KV latent (--kv-lora-rank)"
    )
    q_lora_rank: Width | None = Field(
        None, description="mla: width of the Q bottleneck; null: a full-rank Q (--q-lora-rank)"
    )
    rope_head_dim: Annotated[int, Field(ge=0, le=MAX_WIDTH, strict=True)] | None = Field(
        None, description="mla: the decoupled RoPE part of each Q/K head (--qk-pos-emb-head-dim)"
    )
    v_head_dim: Width | None = Field(
        None, description="mla: width of each V head (default head_dim) (--v-head-dim)"
    )

    @model_validator(mode="after")
    def _mla_fields(self):
        given = [
            k
            for k in ("kv_lora_rank", "q_lora_rank", "rope_head_dim", "v_head_dim")
            if getattr(self, k) is not None
        ]
        if self.kind != "mla" and given:
            raise ValueError(f"{', '.join(given)} apply to kind: mla only, not {self.kind}")
        if self.kind == "mla" and self.kv_lora_rank is None:
            raise ValueError("kind mla needs kv_lora_rank (DeepSeek-V3: 512)")
        return self


class MoETraining(Strict):
    """How MoE layers are trained: token dispatch, routing imbalance, communication overlap."""

    dispatcher: DispatcherName = Field(
        "alltoall",
        description="token dispatcher: alltoall | allgather | deepep "
        "(--moe-token-dispatcher-type; deepep: DeepEP's fused kernels)",
    )
    load_imbalance: float = Field(
        1.0,
        ge=1.0,
        le=MAX_EXPERTS,
        allow_inf_nan=False,
        description="the busiest expert's tokens over the mean (1.0: perfectly balanced)",
    )
    overlap: MoeOverlapName = Field(
        "none",
        description="none | shared-expert (--moe-shared-expert-overlap) | 1f1b "
        "(--overlap-moe-expert-parallel-comm: dispatch and combine hidden behind another "
        "micro-batch's compute)",
    )
