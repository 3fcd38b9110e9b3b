"""MoE, MLA, QK-norm and MTP parameter counts: hand formulas written from the reference
config.json numbers (not read off the program), the published totals and active counts, the
per-rank split over tp / ep / etp, validation, and MoE model FLOPs against Megatron-LM's."""

from dataclasses import replace

import pytest

from simulator.model.architecture import (
    Architecture,
    Attention,
    MoE,
    active_param_count,
    block_params,
    expert_block_params,
    mtp_params,
    param_count,
    parameter_units,
)
from simulator.model.flops import (
    arch_recompute_flops_per_token,
    flops_params,
    model_flops_per_token,
    recompute_flops_per_token,
)
from simulator.model.presets import get_preset
from simulator.model.spec import from_architecture

# ------------------------------------------------------------ hand formulas from config.json


def llama_like_moe(layers, h, heads, kv, dh, vocab, experts, k, fe, qk_norm):
    """(total, active incl. embeddings) of a Mixtral / Qwen3-MoE decoder: every layer MoE,
    SwiGLU experts, no biases, RMSNorm, untied head, router h x E without bias."""
    attn = h * heads * dh * 2 + 2 * h * kv * dh + (2 * dh if qk_norm else 0)
    expert = 3 * h * fe
    layer = attn + h * experts + experts * expert + 2 * h
    total = 2 * vocab * h + layers * layer + h
    return total, total - layers * (experts - k) * expert


def deepseek_v3_main():
    """(total, active excl. the input embedding) of DeepSeek-V3's main model, from its
    config.json: MLA (q_lora 1536, kv_lora 512, nope 128, rope 64, v 128, 128 heads), 3 dense
    layers of 18432, 58 MoE layers of 256 experts x 2048 (8 routed + 1 shared active) with
    e_score_correction_bias, vocab 129280, h 7168."""
    h, v, heads = 7168, 129280, 128
    mla = (
        h * 1536
        + 1536
        + 1536 * heads * (128 + 64)  # q_a_proj, q_a_layernorm, q_b_proj
        + h * (512 + 64)
        + 512
        + 512 * heads * (128 + 128)  # kv_a_proj_with_mqa, norm, kv_b
        + heads * 128 * h  # o_proj
    )
    expert = 3 * h * 2048
    moe = h * 256 + 256 + 256 * expert + expert  # router + bias, routed, one shared
    total = 2 * v * h + h + 61 * (mla + 2 * h) + 3 * 3 * h * 18432 + 58 * moe
    active = total - 58 * (256 - 8) * expert - v * h
    mtp = 2 * h + 2 * h * h + (mla + 2 * h + moe) + h  # enorm, hnorm, eh_proj, block, norm
    return total, active, mtp


MIXTRAL_8X7B = llama_like_moe(32, 4096, 32, 8, 128, 32000, 8, 2, 14336, False)


def test_mixtral_8x7b_matches_hf_num_parameters():
    # HF MixtralForCausalLM num_parameters() for mistralai/Mixtral-8x7B-v0.1.
    assert MIXTRAL_8X7B[0] == 46_702_792_704
    assert param_count(get_preset("mixtral-8x7b")) == 46_702_792_704
    assert active_param_count(get_preset("mixtral-8x7b")) == MIXTRAL_8X7B[1]


# (preset, hand (total, active), published total, its rounding, published active, rounding)
# Mistral's announcements: 46.7B / 12.9B (8x7B), 141B / 39B (8x22B). Qwen3 model cards:
# "30.5B in total and 3.3B activated", "235B in total and 22B activated" (Qwen's 3.3B is the
# truncated 3.35B, so its bound is [3.3, 3.4)).
PUBLISHED = [
    ("mixtral-8x7b", MIXTRAL_8X7B, 46.7e9, 0.05e9, 12.9e9, 0.05e9),
    (
        "mixtral-8x22b",
        llama_like_moe(56, 6144, 48, 8, 128, 32768, 8, 2, 16384, False),
        141e9,
        0.5e9,
        39e9,
        0.5e9,
    ),
    (
        "qwen3-30b-a3b",
        llama_like_moe(48, 2048, 32, 4, 128, 151936, 128, 8, 768, True),
        30.5e9,
        0.05e9,
        3.35e9,
        0.05e9,
    ),
    (
        "qwen3-235b-a22b",
        llama_like_moe(94, 4096, 64, 4, 128, 151936, 128, 8, 1536, True),
        235e9,
        0.5e9,
        22e9,
        0.5e9,
    ),
]


@pytest.mark.parametrize("name,hand,total,tol,active,atol", PUBLISHED)
def test_moe_presets_by_hand_and_published(name, hand, total, tol, active, atol):
    arch = get_preset(name)
    assert (param_count(arch), active_param_count(arch)) == hand
    assert abs(hand[0] - total) <= tol
    assert abs(hand[1] - active) <= atol


def test_deepseek_v3_by_hand_and_published():
    total, active, mtp = deepseek_v3_main()
    arch = get_preset("deepseek-v3")
    main = replace(arch, mtp_layers=0)
    assert param_count(main) == total
    assert active_param_count(main, embedding=False) == active
    assert param_count(arch) == total + mtp
    # DeepSeek-V3 report: 671B total, 37B activated; README_WEIGHTS.md: 36.6B activated
    # (including the 0.9B output head, not the input embedding).
    assert abs(total - 671e9) <= 0.5e9
    assert abs(active - 36.6e9) <= 0.05e9
    # The HF checkpoint (685B) = main + the MTP module with its own embedding and head copies.
    assert (total + mtp + 2 * 129280 * 7168) == pytest.approx(685e9, rel=1e-3)
    units = parameter_units(arch)
    assert [u.name for u in units[-3:]] == ["layers.60", "mtp.0", "head"]
    assert units[-2].kind == "mtp" and units[-2].params == mtp == mtp_params(arch)


def test_qk_norm_adds_two_head_dim_norms_per_layer():
    qwen = get_preset("qwen3-30b-a3b")
    assert param_count(qwen) - param_count(replace(qwen, qk_norm=False)) == 48 * 2 * 128


# ------------------------------------------------------------ one rank: tp, ep, etp


def test_mixtral_block_on_one_rank_by_hand():
    # tp 2, ep 4, etp 2: attention q, k, v, o split over tp; router 4096 x 8 whole; 8/4 = 2
    # local experts, each 3 h f / etp; two RMSNorms whole.
    h, f = 4096, 14336
    arch = get_preset("mixtral-8x7b")
    attn = (2 * h * h + 2 * h * 1024) // 2
    routed = 2 * 3 * h * f // 2
    assert expert_block_params(arch, 5, ep=4, etp=2) == routed
    assert block_params(arch, "decoder", 5, tp=2, ep=4, etp=2) == attn + h * 8 + routed + 2 * h
    units = parameter_units(arch, tp=2, ep=4, etp=2)
    assert {u.expert_params for u in units if u.kind == "block"} == {routed}
    assert all(u.expert_params == 0 for u in units if u.kind != "block")


def test_deepseek_dense_and_moe_blocks_on_one_rank_by_hand():
    # tp 4, ep 8, etp 1. MLA: q_a_proj, kv_a_proj_with_mqa and their norms replicated,
    # q_b_proj, kv_b_proj, o_proj split over tp (Megatron-Core MLA spec).
    h, tp = 7168, 4
    arch = get_preset("deepseek-v3")
    mla = (
        h * 1536 + 1536 + h * 576 + 512 + (1536 * 128 * 192 + 512 * 128 * 256 + 128 * 128 * h) // tp
    )
    dense = mla + 3 * h * 18432 // tp + 2 * h
    routed = 256 // 8 * 3 * h * 2048
    moe = mla + h * 256 + 256 + routed + 3 * h * 2048 // tp + 2 * h
    assert block_params(arch, "decoder", 2, tp, 8, 1) == dense
    assert block_params(arch, "decoder", 3, tp, 8, 1) == moe
    assert expert_block_params(arch, 2, 8) == 0 and expert_block_params(arch, 3, 8) == routed
    units = {u.name: u for u in parameter_units(arch, tp, 8, 1)}
    assert units["layers.2"].params == dense and units["layers.60"].params == moe
    assert units["mtp.0"].params == 3 * h + 2 * h * h // tp + moe
    assert units["mtp.0"].expert_params == routed


def test_ep_must_divide_the_experts():
    with pytest.raises(ValueError, match="ep"):
        block_params(get_preset("mixtral-8x7b"), "decoder", 0, ep=3)


def test_q_proj_without_lora_rank():
    # DeepSeek-V2-Lite style: q_lora_rank None -> q_proj h x heads*(nope + rope).
    base = get_preset("deepseek-v3")
    arch = replace(base, attention=replace(base.attention, q_lora_rank=None))
    h = 7168
    q_lora = h * 1536 + 1536 + 1536 * 128 * 192
    assert block_params(base, "decoder", 0) - block_params(arch, "decoder", 0) == (
        q_lora - h * 128 * 192
    )


# ------------------------------------------------------------ validation

TINY = Architecture(
    kind="decoder",
    num_layers=4,
    hidden_size=64,
    num_heads=4,
    ffn_hidden_size=128,
    vocab_size=100,
    ffn="swiglu",
    moe=MoE(num_experts=8, experts_per_token=2, expert_ffn_hidden_size=32),
)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"experts_per_token": 9}, "moe.experts_per_token: 9 is more than moe.num_experts 8"),
        ({"experts_per_token": 0}, "moe.experts_per_token"),
        ({"num_experts": 0}, "moe.num_experts"),
        ({"layer_frequency": 0}, "moe.layer_frequency"),
        ({"first_dense_layers": 4}, "moe.first_dense_layers"),
        ({"capacity_factor": 0.0}, "moe.capacity_factor"),
        ({"capacity_factor": True}, "moe.capacity_factor"),
        ({"shared_experts": -1}, "moe.shared_experts"),
        ({"router_bias": 1}, "moe.router_bias"),
    ],
)
def test_moe_validation_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, moe=replace(TINY.moe, **change))


@pytest.mark.parametrize(
    "attention,message",
    [
        (Attention(kind="sparse"), "attention.kind"),
        (Attention(kind="mla", kv_lora_rank=0), "attention.kv_lora_rank"),
        (Attention(kind="mla", kv_lora_rank=8, rope_head_dim=-1), "attention.rope_head_dim"),
        (Attention(kind="mla", kv_lora_rank=8, q_lora_rank=0), "attention.q_lora_rank"),
    ],
)
def test_attention_validation_names_the_field(attention, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, attention=attention)


def test_moe_mla_and_mtp_only_in_a_decoder():
    enc = replace(TINY, moe=None, kind="encoder")
    with pytest.raises(ValueError, match="moe"):
        replace(enc, moe=TINY.moe)
    with pytest.raises(ValueError, match="attention.kind"):
        replace(enc, attention=Attention(kind="mla", kv_lora_rank=8))
    with pytest.raises(ValueError, match="mtp_layers"):
        replace(enc, mtp_layers=1)
    with pytest.raises(ValueError, match="qk_norm"):
        replace(TINY, qk_norm="yes")


# ------------------------------------------------------------ FLOPs


def test_mixtral_flops_match_megatron_num_floating_point_operations():
    # Megatron-LM megatron/training/training.py num_floating_point_operations (2024, MoE):
    # 12 B s L h^2 [(1 + g/a + s/h) q/h + (f/h) k (3/2) + V / (2 L h)], per token (B s = 1).
    L, h, a, g, f, k, V, s = 32, 4096, 32, 8, 14336, 2, 32000, 4096
    megatron = 12 * L * h * h * ((1 + g / a + s / h) * 1 + (f / h) * k * 1.5 + V / (2 * L * h))
    # We also count the router (h x 8) and the norms (2h per layer + the final h) as 6N.
    ours = model_flops_per_token(get_preset("mixtral-8x7b"), s)
    assert ours == pytest.approx(megatron + 6 * (L * (2 * h + 8 * h) + h), rel=1e-12)
    assert ours == pytest.approx(megatron, rel=1e-4)


def test_deepseek_flops_count_active_experts_mla_scores_and_mtp():
    _, active, mtp = deepseek_v3_main()
    arch, s = get_preset("deepseek-v3"), 4096
    h, v, heads = 7168, 129280, 128
    mtp_active = mtp - (256 - 8) * 3 * h * 2048
    assert flops_params(arch) == active + mtp_active
    # Scores: QK^T over nope + rope (128 + 64) and PV over v (128), full s x s; 61 + 1 layers.
    scores = 62 * (2 * s * heads * 192 + 2 * s * heads * 128)
    # The MTP module runs the shared output head once more.
    expected = 3 * (2 * (active + mtp_active + v * h) + scores)
    assert model_flops_per_token(arch, s) == pytest.approx(expected, rel=1e-12)


def test_recompute_counts_active_experts():
    arch, s = get_preset("mixtral-8x7b"), 2048
    h, f = 4096, 14336
    block = 2 * h * h + 2 * h * 1024 + 8 * h + 2 * 3 * h * f + 2 * h  # 2 of 8 experts
    scores = 32 * 4 * s * 4096
    assert arch_recompute_flops_per_token(arch, s, "full") == 2 * 32 * block + scores
    assert arch_recompute_flops_per_token(arch, s, "selective") == scores
    assert arch_recompute_flops_per_token(arch, s, "none") == 0


def test_model_spec_carries_active_params():
    m = from_architecture(get_preset("mixtral-8x7b"), "mixtral-8x7b")
    assert (m.params, m.active_params) == MIXTRAL_8X7B
    assert from_architecture(get_preset("gpt2"), "gpt2").active_params is None


@pytest.mark.parametrize("name", ["gpt2", "t5-small", "bert-base", "llama2-7b"])
@pytest.mark.parametrize("ckpt", ["full", "selective", "none"])
def test_recompute_of_a_dense_architecture_is_the_generic_formula(name, ckpt):
    arch, s = get_preset(name), 1024
    blocks = sum(u.params for u in parameter_units(arch) if u.kind == "block")
    attn_layers = arch.num_layers + 2 * arch.decoder_layers
    expected = recompute_flops_per_token(blocks, attn_layers, arch.q_dim, s, ckpt)
    assert arch_recompute_flops_per_token(arch, s, ckpt) == expected
