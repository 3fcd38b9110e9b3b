"""MLA attention ops (DeepSeek-V3 shapes, Megatron-Core multi_latent_attention.py) and the MoE
presets' blocks. Expected values are hand calculations from the published configs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.model.architecture import Attention
from simulator.model.ops import Comm, layer_ops, layer_segments
from simulator.model.presets import get_preset

# DeepSeek-V3 config.json: hidden 7168, 128 heads, qk_nope_head_dim 128, qk_rope_head_dim 64,
# v_head_dim 128, q_lora_rank 1536, kv_lora_rank 512.
H, N, D, R, DV, QL, KVL = 7168, 128, 128, 64, 128, 1536, 512
S, B, E = 4096, 1, 2


def ds3():
    arch = get_preset("deepseek-v3")
    assert (arch.hidden_size, arch.num_heads, arch.head_size) == (H, N, D)
    assert arch.attention == Attention(
        kind="mla", q_lora_rank=QL, kv_lora_rank=KVL, rope_head_dim=R, v_head_dim=DV
    )
    return arch


def gemms(ops):
    return {o.name: o.gemm for o in ops if o.kind == "matmul"}


def test_mla_projections_and_core():
    ops = layer_ops(ds3(), S, B, True, causal=True, index=0)  # block 0 is dense (first 3)
    t = B * S
    assert [o.name for o in ops][:8] == [
        "attn_norm",
        "q_down_proj",
        "q_norm",
        "kv_down_proj",
        "kv_norm",
        "q_up_proj",
        "kv_up_proj",
        "flash_attention",
    ]
    g = gemms(ops)
    assert g["q_down_proj"] == (t, 1536, 7168)
    assert g["q_up_proj"] == (t, 128 * (128 + 64), 1536)
    assert g["kv_down_proj"] == (t, 512 + 64, 7168)
    assert g["kv_up_proj"] == (t, 128 * (128 + 128), 512)
    assert g["attn_out_proj"] == (t, 7168, 128 * 128)
    # Projection FLOPs per token: 2 x the attention weights (h*q_lora + q_lora*n*(d+r) +
    # h*(kv_lora+r) + kv_lora*n*(d+dv) + n*dv*h).
    weights = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168
    attn_gemms = ("q_down_proj", "q_up_proj", "kv_down_proj", "kv_up_proj", "attn_out_proj")
    assert sum(o.flops for o in ops if o.name in attn_gemms) == 2 * weights * t
    # Causal flash attention: QK^T over d + r = 192, PV over dv = 128, half the square.
    fa = next(o for o in ops if o.kind == "attention")
    assert fa.flops == 2 * B * S * S * N * (192 + 128) / 2
    assert fa.batch == B * N
    # Reads Q (n x 192) and K (n x 192), V (n x 128); writes O (n x 128), at 2 bytes.
    assert fa.bytes_moved == B * S * N * (192 + 128 + 192 + 128) * E


def test_mla_tensor_parallel_keeps_the_down_projections_whole():
    tp = 8
    t = B * S
    no_sp = layer_segments(ds3(), S, B, True, causal=True, index=0, tp=tp)
    assert [g.name for g in no_sp] == ["attention", "mlp"]
    g = gemms(no_sp[0].ops)
    assert g["q_down_proj"] == (t, 1536, 7168)  # replicated: all tokens, whole weight
    assert g["q_up_proj"] == (t, 128 // tp * 192, 1536)  # heads split
    assert g["attn_out_proj"] == (t, 7168, 128 // tp * 128)
    # Without sequence parallelism the column-parallel inputs' gradients are all-reduced: the
    # q and kv latents (b x s x rank x 2 bytes), not the hidden states.
    assert no_sp[0].bwd_after == (
        Comm("all_reduce", "tp", t * 1536 * E),
        Comm("all_reduce", "tp", t * 512 * E),
    )
    assert no_sp[0].after == (Comm("all_reduce", "tp", t * H * E),)
    sp = layer_segments(ds3(), S, B, True, causal=True, index=0, tp=tp, sp=True)
    assert [g.name for g in sp] == ["attention_down", "attention", "mlp"]
    down = sp[0]
    assert gemms(down.ops)["kv_down_proj"] == (t // tp, 576, 7168)  # the rank's s/tp tokens
    assert not (down.before or down.after or down.bwd_before or down.bwd_after)
    # All-gathers of the q latent, the kv latent and k_pos_emb instead of the hidden states.
    latents = (t * 1536 * E, t * 512 * E, t * 64 * E)
    assert sp[1].before == tuple(Comm("all_gather", "tp", x) for x in latents)
    assert sp[1].bwd_after == tuple(Comm("reduce_scatter", "tp", x) for x in latents)
    assert sp[1].after == (Comm("reduce_scatter", "tp", t * H * E),)


def test_mla_without_q_lora_rank():
    arch = replace(ds3(), attention=replace(ds3().attention, q_lora_rank=None))
    ops = layer_ops(arch, S, B, True, index=0)
    names = [o.name for o in ops]
    assert "q_down_proj" not in names and "q_norm" not in names
    assert gemms(ops)["q_proj"] == (B * S, 128 * 192, 7168)
    segs = layer_segments(arch, S, B, True, index=0, tp=4, sp=True)
    # The column-parallel q projection gathers the hidden states.
    assert segs[1].before[0] == Comm("all_gather", "tp", B * S * H * E)


def test_mla_ring_attention_exchanges_the_up_projected_kv():
    cp, tp = 2, 8
    segs = layer_segments(ds3(), S, B, True, causal=True, index=0, tp=tp, sp=True, cp=cp)
    assert [g.name for g in segs][:4] == [
        "attention_down",
        "attention_in",
        "attention_core",
        "attention_out",
    ]
    (ring,) = segs[2].before
    # K (16 heads x 192) and V (16 heads x 128) of b x s/cp tokens.
    assert ring.size_bytes == B * (S // cp) * 16 * (192 + 128) * E
    assert ring.steps == cp - 1 and ring.overlapped


def test_deepseek_v3_moe_block():
    arch = ds3()
    ep, tp = 64, 1
    segs = layer_segments(arch, S, B, True, causal=True, index=3, ep=ep, tp=tp)
    assert [g.name for g in segs] == [
        "attention",
        "moe_route",
        "experts",
        "moe_combine",
        "shared_experts",
    ]
    # 256 routed experts, top-8, width 2048; 4 local experts with 4096 x 8 x 64 / 256 tokens.
    up = next(o for o in segs[2].ops if o.name == "expert_up")
    assert (up.gemm, up.batch) == ((8192, 2048, 7168), 4)
    assert segs[1].after == (Comm("all_to_all", "ep", S * 8 * H * E),)
    shared = next(o for o in segs[4].ops if o.name == "shared_up")
    assert shared.gemm == (S, 2048, H)


@pytest.mark.parametrize("name", ["mixtral-8x7b", "qwen3-30b-a3b"])
def test_moe_presets_expert_flops_per_token(name):
    arch = get_preset(name)
    moe = arch.moe
    ops = layer_ops(arch, 2048, 1, True, causal=True, index=moe.first_dense_layers)
    expert = sum(o.flops for o in ops if o.name.startswith("expert_") and o.kind == "matmul")
    # Mixtral 8x7B: 2 x 3 x 4096 x 14336 x top-2; Qwen3-30B-A3B: 2 x 3 x 2048 x 768 x top-8.
    hand = {"mixtral-8x7b": 2 * 3 * 4096 * 14336 * 2, "qwen3-30b-a3b": 2 * 3 * 2048 * 768 * 8}
    assert expert / 2048 == hand[name]
