"""Activation memory of MoE blocks, MLA attention and context parallelism, per rank, built term
by term by hand (Korthikanti et al. 2022 Sec 4.1 style; 2-byte activations, 1-byte masks)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.model.activations import (
    activation_bytes_per_layer,
    embedding_activation_bytes,
    output_activation_bytes,
    recompute_working_bytes,
)
from simulator.model.architecture import Architecture, MoE
from simulator.model.presets import get_preset

H, A, S, B = 1024, 16, 4096, 1
NE, K, FE = 8, 2, 1024
ARCH = Architecture(
    kind="decoder",
    num_layers=4,
    hidden_size=H,
    num_heads=A,
    ffn_hidden_size=4096,
    vocab_size=32000,
    ffn="swiglu",
    norm="rmsnorm",
    bias=False,
    position_embedding="rotary",
    moe=MoE(num_experts=NE, experts_per_token=K, expert_ffn_hidden_size=FE, first_dense_layers=1),
)


def act(arch=ARCH, ckpt="none", flash=True, s=S, b=B, **kw):
    return activation_bytes_per_layer(arch, s, b, ckpt, flash, **kw)


def test_moe_block_by_hand():
    sbh = S * B * H
    # Attention (MHA, flash): QKV input 2sbh, Q K V 6sbh, out-proj input 2sbh, mask sbh; two
    # norm inputs 4sbh; MoE input 2sbh and its dropout mask sbh.
    common = (2 + 6 + 2 + 1 + 4 + 2 + 1) * sbh
    t, m = S * B, S * B * K  # the rank's tokens; the permuted tokens (all 8 experts local)
    router = 4 * t * NE + t * NE  # fp32 probabilities, bool routing map
    experts = 2 * m * H + (2 + 1) * 2 * m * FE  # fc1 input; gate, up, activation output
    # The routing probabilities, scaled into the activation output (Megatron-Core >= 0.13),
    # one per permuted token at 2 bytes; the unpermute keeps nothing.
    weights = 2 * m
    assert act(index=1) == common + router + experts + weights
    # Block 0 is dense: Korthikanti's terms with the gated MLP (gate, up 4sbf, act out 2sbf).
    dense = (2 + 6 + 2 + 1 + 4 + 2 + 1) * sbh + 6 * S * B * 4096
    assert act(index=0) == dense == act(index=None)
    assert act(index=0) == act(replace(ARCH, moe=None))


def test_moe_block_under_fp8_keeps_the_expert_gemm_inputs_in_one_byte():
    # As test_moe_block_by_hand, with fp8 GEMM inputs (Transformer Engine): the QKV input 1sbh,
    # the out-projection input 2sbh (flash attention's output) + 1sbh (its fp8 copy); the MoE
    # input stays 2sbh (the router's 16-bit GEMM keeps it).
    sbh = S * B * H
    common = (1 + 6 + 3 + 1 + 4 + 2 + 1) * sbh
    t, m = S * B, S * B * K
    router = 4 * t * NE + t * NE
    experts = 1 * m * H + 2 * 2 * m * FE + 1 * m * FE  # fc1 input fp8; gate, up; act out fp8
    assert act(index=1, gemm_input_bytes=1) == common + router + experts + 2 * m
    # Shared experts: their fc1 keeps its own fp8 copy of the MoE input (1sbh), their gate and
    # up outputs 2 x 2sb f_s and their activation output, fc2's input, 1sb f_s.
    arch = replace(ARCH, moe=replace(ARCH.moe, shared_experts=1, shared_expert_ffn_hidden_size=512))
    shared = sbh + (2 * 2 + 1) * S * B * 512
    assert act(arch, index=1, gemm_input_bytes=1) - act(index=1, gemm_input_bytes=1) == shared


def test_moe_block_with_ep_tp_sp_cp_and_imbalance():
    tp, cp, ep = 2, 2, 4
    s_loc = S // cp
    sbh = s_loc * B * H
    # Split over tp with sequence parallelism: attention Q K V + out-proj 8sbh, QKV input,
    # mask 3sbh, norm inputs 4sbh, MoE input and mask 3sbh.
    split = (8 + 3 + 4 + 3) * sbh // tp
    t = s_loc * B // tp  # 1024 tokens routed by this rank
    # Per local expert: 1024 x 2 x 4 / 8 = 1024 on average, 1.5x on the busiest rank; 2 local.
    m = 2 * 1536
    rank = 5 * t * NE + 2 * m * H + 6 * m * FE + 2 * m
    got = act(index=1, tp=tp, sp=True, cp=cp, ep=ep, load_imbalance=1.5)
    assert got == split + rank
    # ep 2 x etp 2: 4 local experts of 1024 x 2 x 2 x 2 / 8 x 1.5 = 1536 tokens (the etp
    # all-gather brings the other etp rank's tokens) at half the width: the intermediate
    # activations are the same bytes, the fc1 input (6144 tokens, not 3072) twice.
    folded = act(index=1, tp=tp, sp=True, cp=cp, ep=2, etp=2, load_imbalance=1.5)
    m2 = 4 * 1536
    assert folded == split + 5 * t * NE + 2 * m2 * H + 6 * m2 * FE // 2 + 2 * m2
    assert folded - got == 2 * (6144 - 3072) * (H + 1)


def test_shared_experts_are_a_dense_mlp_split_over_tp():
    arch = replace(ARCH, moe=replace(ARCH.moe, shared_experts=2, shared_expert_ffn_hidden_size=512))
    tp = 4
    f_s = 2 * 512
    # Gate and up outputs plus the activation output of the shared MLP, column-parallel.
    extra = (2 + 1) * 2 * S * B * f_s // tp
    assert act(arch, index=1, tp=tp, sp=True) - act(index=1, tp=tp, sp=True) == extra


def test_context_parallel_divides_the_sequence():
    gpt = Architecture(
        kind="decoder",
        num_layers=48,
        hidden_size=6144,
        num_heads=64,
        ffn_hidden_size=4 * 6144,
        vocab_size=51200,
    )
    s, b, h, a, cp = 2048, 4, 6144, 64, 2
    s_loc = s // cp
    # Korthikanti Eq. 1 with s/cp tokens; the score terms are the rank's s/cp queries x s keys.
    assert act(gpt, flash=False, s=s, b=b, cp=cp) == 34 * s_loc * b * h + 5 * a * s_loc * s * b
    assert act(gpt, flash=True, s=s, b=b, cp=cp) == 34 * s_loc * b * h
    t = 8
    got = act(gpt, flash=False, s=s, b=b, cp=cp, tp=t, sp=True)
    assert got == (34 * s_loc * b * h + 5 * a * s_loc * s * b) // t
    assert act(gpt, "full", s=s, b=b, cp=cp) == 2 * s_loc * b * h
    for comm in ("ring", "all-gather", "all-to-all"):
        assert act(gpt, s=s, b=b, cp=cp, cp_comm=comm) == 34 * s_loc * b * h
    kw = {"tp": t, "sp": True, "cp": cp}
    assert recompute_working_bytes(gpt, s, b, False, **kw) == act(gpt, flash=False, s=s, b=b, **kw)
    # Edges: the embedding dropout mask and the output activations on s/cp tokens.
    assert embedding_activation_bytes(gpt, s, b, cp=cp) == s_loc * b * h
    assert output_activation_bytes(gpt, s, b, cp=cp) == 4 * s_loc * b * h + 6 * s_loc * b * 51200
    with pytest.raises(ValueError, match="cp_comm"):
        act(gpt, s=s, b=b, cp=cp, cp_comm="p2p")


def test_mla_dense_block_by_hand():
    arch = get_preset("deepseek-v3")  # block 0: MLA attention, dense MLP of 18432
    h, n, f = 7168, 128, 18432
    sb = S * B
    replicated = (
        2 * sb * h  # the down projections' input
        + sb * h  # attention dropout mask
        + 2 * sb * (2 * 1536 + 2 * 512)  # q and kv latents: norm input, up-projection input
        + 2 * sb * h  # MLP input
        + sb * h  # MLP dropout mask
        + 4 * sb * h  # two norm inputs
    )
    # Q and K of n x (128 + 64), V of n x 128, the output projection's input n x 128.
    shared = 2 * sb * n * (192 + 192 + 128) + 2 * sb * n * 128 + 6 * sb * f
    assert act(arch, index=0) == replicated + shared
    assert act(arch, index=0, tp=8, sp=True) == (replicated + shared) // 8
    assert act(arch, index=0, tp=8) == replicated + shared // 8
    # Without flash attention the n x s x s scores: softmax output, dropout mask and output.
    assert act(arch, flash=False, index=0) - act(arch, index=0) == (2 + 1 + 2) * n * S * S * B
    # fp8 GEMM inputs: the down projections' and MLP inputs 1sbh each (not 2), each latent's
    # up-projection copy 1 byte (its norm input stays 2), the output projection's fp8 copy
    # beside flash attention's output (+1 x n x 128), the MLP's activation output 1sbf.
    fp8 = replicated - sb * h - sb * (1536 + 512) - sb * h + shared + sb * n * 128 - sb * f
    assert act(arch, index=0, gemm_input_bytes=1) == fp8


def test_qk_norm_keeps_q_and_k():
    arch = replace(ARCH, qk_norm=True, moe=None)
    assert act(arch) - act(replace(arch, qk_norm=False)) == 2 * S * B * (H + H)
