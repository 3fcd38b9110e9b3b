"""Megatron-Core's --recompute-modules (training.recompute_modules): the activation terms each
submodule drops, worked out by hand (Korthikanti et al. 2022 Sec 4.1 terms; 2-byte
activations, 1-byte masks), and the forward ops it re-runs in backward."""

from __future__ import annotations

import pytest

from simulator.execution.step import compute_model
from simulator.execution.strategies.common import stage_work
from simulator.model import ops as op_math
from simulator.model.activations import activation_bytes_per_layer
from simulator.model.architecture import Architecture, MoE
from simulator.model.presets import get_preset
from tests.helpers import make_scenario

H, A, S, B = 1024, 16, 4096, 1
SBH = S * B * H
# A GPT-style block: MHA, GELU MLP with f = 4h, LayerNorm, dropout: Korthikanti's 34sbh.
DENSE = Architecture(
    kind="decoder",
    num_layers=2,
    hidden_size=H,
    num_heads=A,
    ffn_hidden_size=4 * H,
    vocab_size=32000,
)
NE, K, FE = 8, 2, 1024
MOE = Architecture(
    kind="decoder",
    num_layers=4,
    hidden_size=H,
    num_heads=A,
    ffn_hidden_size=4 * H,
    vocab_size=32000,
    ffn="swiglu",
    norm="rmsnorm",
    bias=False,
    position_embedding="rotary",
    moe=MoE(num_experts=NE, experts_per_token=K, expert_ffn_hidden_size=FE, first_dense_layers=1),
)


def act(arch=DENSE, ckpt="selective", flash=True, **kw):
    return activation_bytes_per_layer(arch, S, B, ckpt, flash, **kw)


def test_default_list_is_korthikanti_selective():
    assert act(recompute=("core_attn",)) == act() == 34 * SBH  # flash: no score terms anyway
    scores = 5 * A * S * S * B
    assert act(flash=False) == 34 * SBH
    assert act(ckpt="none", flash=False) == 34 * SBH + scores
    # Without core_attn, selective keeps the scores as "none" does.
    assert act(flash=False, recompute=("layernorm",)) == 30 * SBH + scores


def test_layernorm_drops_the_two_norm_outputs_by_hand():
    # Kept per block (Korthikanti Sec 4.1): attention 11sbh (QKV input 2sbh, Q K 4sbh, V 2sbh,
    # out-proj input 2sbh, mask sbh), MLP 19sbh (input 2sbh, fc1 out 8sbh, GELU out 8sbh,
    # mask sbh), the two norm inputs 4sbh. layernorm recomputes the norm outputs, which are
    # the QKV input and the MLP input (2sbh each): 34sbh - 4sbh.
    assert act(recompute=("core_attn", "layernorm")) == 30 * SBH == 125_829_120
    assert act() - act(recompute=("layernorm",)) == 2 * 2 * SBH == 16_777_216
    # tensor parallelism: the norm outputs are among the replicated 10sbh (Eq. 2) ...
    assert act(recompute=("layernorm",), tp=2) == (10 - 4) * SBH + 24 * SBH // 2
    # ... and split with sequence parallelism (Eq. 4).
    assert act(recompute=("layernorm",), tp=2, sp=True) == 30 * SBH // 2


def test_mlp_drops_the_dense_mlp_internals():
    # fc1 output 2sbf and activation output 2sbf, f = 4h: 16sbh; the MLP input stays.
    assert act(recompute=("mlp",)) == 34 * SBH - 16 * SBH
    # An MoE model's MoE block has no dense MLP: mlp changes nothing there.
    assert act(MOE, recompute=("mlp",), index=1) == act(MOE, index=1)
    # ... and its dense first layer is a SwiGLU MLP: gate, up and activation output, 3 x 2sbf.
    assert act(MOE, index=0) - act(MOE, recompute=("mlp",), index=0) == 3 * 2 * S * B * 4 * H


def test_moe_modules_by_hand():
    t = S * B  # ep = etp = 1, balanced: the experts see t x k tokens
    base = act(MOE, index=1)
    assert base - act(MOE, recompute=("moe_act",), index=1) == 2 * t * K * FE
    # router probabilities and map; fc1 input; gate, up, activation output; the routing
    # probabilities the weighted activation keeps (t x k, 2 bytes).
    routed = 5 * t * NE + 2 * t * K * H + 3 * 2 * t * K * FE + 2 * t * K
    assert base - act(MOE, recompute=("moe",), index=1) == routed
    assert act(MOE, recompute=("moe", "moe_act"), index=1) == act(MOE, recompute=("moe",), index=1)


def test_shared_experts_and_mla_up_proj_on_deepseek_v3():
    arch = get_preset("deepseek-v3")
    s, e = 4096, 2
    moe_kw = {"index": arch.moe.first_dense_layers, "tp": 1}
    base = activation_bytes_per_layer(arch, s, 1, "selective", True, **moe_kw)
    f_s = arch.moe.shared_experts * (
        arch.moe.shared_expert_ffn_hidden_size or arch.moe.expert_ffn_hidden_size
    )
    shared = activation_bytes_per_layer(
        arch, s, 1, "selective", True, recompute=("shared_experts",), **moe_kw
    )
    assert base - shared == 3 * e * s * f_s  # gate, up, activation output
    a = arch.attention
    d_v = a.v_head_dim or arch.head_size
    up = activation_bytes_per_layer(
        arch, s, 1, "selective", True, recompute=("mla_up_proj",), **moe_kw
    )
    assert base - up == e * s * arch.num_heads * (2 * (arch.head_size + a.rope_head_dim) + d_v)


def test_unknown_module_is_refused():
    with pytest.raises(ValueError, match="recompute"):
        act(recompute=("core_atn",))


def _block(training: dict, model: dict | None = None):
    s = make_scenario(model, training)
    return s, stage_work(s, compute_model(s), 0)[0].blocks[0]


def test_recomputed_ops_time_is_added_in_backward():
    t = {"seq_len": 2048, "activation_checkpointing": "selective", "flash_attention": False}
    s, default = _block(t)
    _, norms = _block({**t, "recompute_modules": ["core_attn", "layernorm"]})
    arch = s.model.arch
    cm = compute_model(s)
    ops = op_math.layer_ops(
        arch, 2048, 1, False, dropout=s.training.dropout, causal=True, dtype_bytes=2
    )
    by_name = {o.name: o for o in ops}
    core = sum(cm.op_time_s(by_name[n]) for n in ("attn_scores", "softmax", "attn_over_values"))
    core += cm.op_time_s(by_name["attn_dropout"]) if "attn_dropout" in by_name else 0.0
    assert default.recompute_s == pytest.approx(core)
    added = cm.op_time_s(by_name["attn_norm"]) + cm.op_time_s(by_name["mlp_norm"])
    assert norms.recompute_s - default.recompute_s == pytest.approx(added)
    assert norms.act_bytes < default.act_bytes
    # The segments' own forward and backward times do not move: recompute is its own term.
    assert norms.bwd_s == default.bwd_s
    _, mlp = _block({**t, "recompute_modules": ["mlp"]})
    names = ("mlp_up", "mlp_act", "mlp_down", "mlp_gate")
    assert mlp.recompute_s == pytest.approx(
        sum(cm.op_time_s(by_name[n]) for n in names if n in by_name)
    )
