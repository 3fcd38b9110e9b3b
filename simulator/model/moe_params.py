"""Parameter counts of the issue-17 layers and validation of their fields: mixture-of-experts
MLPs, multi-head latent attention (MLA), Qwen3's QK-norm and multi-token-prediction modules.

Per-rank counts follow Megatron-Core's split (megatron/core/models/gpt/gpt_layer_specs.py):
the router is replicated; routed experts are split num_experts / ep local experts per rank, each
expert's GEMMs over etp ranks (column-parallel gate/up, row-parallel down); shared experts are
one MLP of width shared_experts * shared_expert_ffn_hidden_size split over tp (HF
DeepseekV3MoE: `DeepseekV3MLP(intermediate_size=moe_intermediate_size * n_shared_experts)`,
Megatron --moe-shared-expert-intermediate-size; Qwen2-MoE's h x 1 shared_expert_gate is not
modelled). MLA's down projections (q_a_proj, kv_a_proj_with_mqa) and their norms are replicated
(spec `linear_q_down_proj=backend.linear()`), its up projections column-parallel and o_proj
row-parallel. Norms are the architecture's kind (weight, + bias for LayerNorm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.model.architecture import Architecture


def norm_width_params(arch: Architecture, width: int) -> int:
    """One norm over `width` features: LayerNorm has weight and bias, RMSNorm only a weight."""
    return 2 * width if arch.norm == "layernorm" else width


def ffn_params(arch: Architecture, width: int, split: int = 1) -> int:
    """One MLP of `width` (the architecture's ffn kind) on one of `split` ranks: the weights and
    the first layers' biases are split, the down projection's bias is not."""
    h = arch.hidden_size
    # Gated FFNs (Shazeer 2020, "GLU Variants"; HF LlamaMLP) have gate, up and down matrices.
    mats = 3 if arch.gated else 2
    split_part = mats * h * width + ((mats - 1) * width if arch.bias else 0)
    return split_part // split + (h if arch.bias else 0)


# ---------------------------------------------------------------- attention


def mla_params(arch: Architecture, tp: int = 1) -> int:
    """One MLA sub-layer on one of tp ranks (HF modeling_deepseek.py DeepseekV3Attention):
    q_a_proj h x q_lora_rank + q_a_layernorm, q_b_proj q_lora_rank x heads*(head_dim + rope)
    (or q_proj h x heads*(head_dim + rope) without a Q bottleneck), kv_a_proj_with_mqa
    h x (kv_lora_rank + rope), kv_a_layernorm, kv_b_proj kv_lora_rank x heads*(head_dim + v),
    o_proj heads*v x h. head_dim is qk_nope_head_dim. Biases (attention_bias) on q_a_proj /
    kv_a_proj_with_mqa follow qkv_bias, on o_proj `bias`."""
    a = arch.attention
    assert a is not None and a.kind == "mla"
    h, n = arch.hidden_size, arch.num_heads
    qk = n * (arch.head_size + a.rope_head_dim)
    qkv_bias = arch.bias if arch.qkv_bias is None else arch.qkv_bias
    if a.q_lora_rank is None:
        q = (h * qk + (qk if qkv_bias else 0)) // tp
    else:
        r = a.q_lora_rank
        q = h * r + (r if qkv_bias else 0) + norm_width_params(arch, r) + r * qk // tp
    kv_a = a.kv_lora_rank + a.rope_head_dim
    kv = h * kv_a + (kv_a if qkv_bias else 0) + norm_width_params(arch, a.kv_lora_rank)
    kv += a.kv_lora_rank * n * (arch.head_size + mla_v_head_dim(arch)) // tp
    o = n * mla_v_head_dim(arch) * h // tp + (h if arch.bias else 0)
    return q + kv + o


def mla_v_head_dim(arch: Architecture) -> int:
    a = arch.attention
    assert a is not None
    return arch.head_size if a.v_head_dim is None else a.v_head_dim


def qk_norm_params(arch: Architecture) -> int:
    """Qwen3's q_norm and k_norm (HF Qwen3MoeAttention: RMSNorm(head_dim) each), replicated."""
    return 2 * norm_width_params(arch, arch.head_size) if arch.qk_norm else 0


# ---------------------------------------------------------------- MoE


def local_experts(arch: Architecture, ep: int = 1) -> int:
    """Routed experts of one MoE layer on one of ep expert-parallel ranks."""
    m = arch.moe
    assert m is not None
    if ep < 1 or m.num_experts % ep:
        raise ValueError(f"ep: moe.num_experts {m.num_experts} is not a multiple of ep {ep}")
    return m.num_experts // ep


def router_params(arch: Architecture) -> int:
    """The router: h x num_experts (HF `mlp.gate`), + a per-expert score bias (DeepSeek-V3
    MoEGate e_score_correction_bias, an nn.Parameter for topk_method noaux_tc)."""
    m = arch.moe
    assert m is not None
    return arch.hidden_size * m.num_experts + (m.num_experts if m.router_bias else 0)


def shared_width(arch: Architecture) -> int:
    """Width of the shared-expert MLP: shared_experts x its per-expert width (0: none)."""
    m = arch.moe
    assert m is not None
    f = (
        m.expert_ffn_hidden_size
        if m.shared_expert_ffn_hidden_size is None
        else (m.shared_expert_ffn_hidden_size)
    )
    return m.shared_experts * f


def routed_expert_params(arch: Architecture, ep: int = 1, etp: int = 1) -> int:
    """One MoE layer's routed experts on one rank: num_experts/ep experts, each split over etp.
    Reduced over the expert-data-parallel group (the rest of a block over the data-parallel
    group)."""
    m = arch.moe
    assert m is not None
    if etp < 1 or m.expert_ffn_hidden_size % etp:
        raise ValueError(
            f"etp: moe.expert_ffn_hidden_size {m.expert_ffn_hidden_size} is not a multiple of "
            f"etp {etp}"
        )
    return local_experts(arch, ep) * ffn_params(arch, m.expert_ffn_hidden_size, etp)


def moe_mlp_params(arch: Architecture, tp: int = 1, ep: int = 1, etp: int = 1) -> int:
    """One MoE MLP on one rank: the router (replicated), the local routed experts and the
    shared experts (split over tp like a dense MLP)."""
    shared = shared_width(arch)
    return (
        router_params(arch)
        + routed_expert_params(arch, ep, etp)
        + (ffn_params(arch, shared, tp) if shared else 0)
    )


def inactive_expert_params(arch: Architecture) -> int:
    """Routed-expert parameters of one MoE layer that one token does not use."""
    m = arch.moe
    assert m is not None
    return (m.num_experts - m.experts_per_token) * ffn_params(arch, m.expert_ffn_hidden_size)


# ---------------------------------------------------------------- multi-token prediction


def mtp_extra_params(arch: Architecture, tp: int = 1) -> int:
    """An MTP module less its transformer block (DeepSeek-V3 report Sec 2.2; DeepSeek's
    inference model.py / HF layer 61): enorm and hnorm (norm of h each), eh_proj 2h -> h without
    bias (column-parallel in Megatron-Core's MultiTokenPredictionLayer) and the final norm
    (`shared_head.norm`). The embedding and the output head are the main model's (shared)."""
    h = arch.hidden_size
    return 3 * norm_width_params(arch, h) + 2 * h * h // tp


# ---------------------------------------------------------------- validation


def check(arch: Architecture) -> None:
    """Validate qk_norm, mtp_layers, moe and attention (ValueError naming the scenario key)."""
    from simulator.model.architecture import ATTENTION_KINDS, Attention, MoE, _check_int

    if not isinstance(arch.qk_norm, bool):
        raise ValueError(f"qk_norm: expected true or false, got {arch.qk_norm!r}")
    _check_int("mtp_layers", arch.mtp_layers, minimum=0)
    if arch.mtp_layers and arch.kind != "decoder":
        raise ValueError(f"mtp_layers: only a decoder predicts tokens ahead (kind {arch.kind!r})")
    m = arch.moe
    if m is not None:
        if not isinstance(m, MoE):
            raise ValueError(f"moe: expected a mapping of MoE fields, got {m!r}")
        if arch.kind != "decoder":
            raise ValueError(f"moe: only a decoder has MoE layers (kind {arch.kind!r})")
        for name in ("num_experts", "experts_per_token", "expert_ffn_hidden_size"):
            _check_int(f"moe.{name}", getattr(m, name), minimum=1)
        _check_int("moe.layer_frequency", m.layer_frequency, minimum=1)
        _check_int("moe.shared_experts", m.shared_experts, minimum=0)
        _check_int("moe.first_dense_layers", m.first_dense_layers, minimum=0)
        if m.shared_expert_ffn_hidden_size is not None:
            _check_int("moe.shared_expert_ffn_hidden_size", m.shared_expert_ffn_hidden_size, 1)
        if m.experts_per_token > m.num_experts:
            raise ValueError(
                f"moe.experts_per_token: {m.experts_per_token} is more than moe.num_experts "
                f"{m.num_experts}"
            )
        if m.first_dense_layers >= arch.num_layers:
            raise ValueError(
                f"moe.first_dense_layers: {m.first_dense_layers} leaves no MoE layer in "
                f"num_layers {arch.num_layers}"
            )
        cf = m.capacity_factor
        if cf is not None and (isinstance(cf, bool) or not isinstance(cf, int | float) or cf <= 0):
            raise ValueError(f"moe.capacity_factor: expected a number > 0 or null, got {cf!r}")
        if not isinstance(m.router_bias, bool):
            raise ValueError(f"moe.router_bias: expected true or false, got {m.router_bias!r}")
        if (m.router_groups is None) != (m.router_group_topk is None):
            raise ValueError("moe.router_groups and moe.router_group_topk: give both or neither")
        if m.router_groups is not None and m.router_group_topk is not None:
            if m.num_experts % m.router_groups:
                raise ValueError(
                    f"moe.router_groups: {m.router_groups} does not divide moe.num_experts "
                    f"{m.num_experts}"
                )
            if not 1 <= m.router_group_topk <= m.router_groups:
                raise ValueError(
                    f"moe.router_group_topk: expected 1 to moe.router_groups "
                    f"({m.router_groups}), got {m.router_group_topk}"
                )
    a = arch.attention
    if a is not None:
        if not isinstance(a, Attention):
            raise ValueError(f"attention: expected a mapping of attention fields, got {a!r}")
        if a.kind not in ATTENTION_KINDS:
            raise ValueError(f"attention.kind: {a.kind!r} is not one of {ATTENTION_KINDS}")
        if a.kind == "mla":
            if arch.kind != "decoder":
                raise ValueError(f"attention.kind: mla only in a decoder (kind {arch.kind!r})")
            _check_int("attention.kv_lora_rank", a.kv_lora_rank, minimum=1)
            _check_int("attention.rope_head_dim", a.rope_head_dim, minimum=0)
            if a.q_lora_rank is not None:
                _check_int("attention.q_lora_rank", a.q_lora_rank, minimum=1)
            if a.v_head_dim is not None:
                _check_int("attention.v_head_dim", a.v_head_dim, minimum=1)
