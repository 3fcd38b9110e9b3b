"""Hand calculations for the architecture math; expected values come from the papers' formulas."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.model.activations import (
    activation_bytes_per_layer,
    embedding_activation_bytes,
    output_activation_bytes,
    recompute_working_bytes,
)
from simulator.model.architecture import (
    Architecture,
    largest_unit_params,
    non_embedding_params,
    param_count,
    parameter_units,
)
from simulator.model.flops import (
    flops_params,
    forward_flops_per_token,
    model_flops_per_token,
    six_n_d_flops,
)
from simulator.model.ops import backward_ops, embedding_ops, head_ops, layer_ops
from simulator.model.presets import get_preset

# Round numbers: h=1024, a=16, s=2048, b=1, GPT-style block (4h GELU MLP, MHA).
H, A, S, B, V = 1024, 16, 2048, 1, 50000
GPT = Architecture(
    kind="decoder",
    num_layers=4,
    hidden_size=H,
    num_heads=A,
    ffn_hidden_size=4 * H,
    vocab_size=V,
    max_position_embeddings=S,
)


def act(arch=GPT, ckpt="none", flash=False, **kw):
    kw.setdefault("seq_len", S)
    kw.setdefault("micro_batch", B)
    return activation_bytes_per_layer(arch, checkpointing=ckpt, flash_attention=flash, **kw)


# ------------------------------------------------------------ activations (Korthikanti 2022)


def test_korthikanti_eq1():
    # Eq. (1): s*b*h*(34 + 5*a*s/h) = 34sbh + 5as^2b bytes.
    assert act() == 34 * S * B * H + 5 * A * S * S * B


@pytest.mark.parametrize("flash,ckpt", [(True, "none"), (False, "selective"), (True, "selective")])
def test_flash_and_selective_drop_the_score_term(flash, ckpt):
    assert act(ckpt=ckpt, flash=flash) == 34 * S * B * H


@pytest.mark.parametrize("flash", [False, True])
def test_full_checkpointing_keeps_the_layer_input(flash):
    assert act(ckpt="full", flash=flash) == 2 * S * B * H


def test_recompute_working_set_is_one_uncheckpointed_layer():
    assert recompute_working_bytes(GPT, S, B, flash_attention=False) == act()


def test_gpt3_175b_score_term_is_80():
    # Korthikanti Sec 5: for GPT-3 175B (a=96, s=2048, h=12288) 5as/h = 80 vs 34.
    arch = get_preset("gpt3-175b")
    sbh = 2048 * 1 * 12288
    assert 5 * 96 * 2048 / 12288 == 80
    assert act(arch) == (34 + 80) * sbh
    assert act(arch) - act(arch, ckpt="selective") == 80 * sbh


def test_fp32_activations():
    # 4-byte tensors, 1-byte masks: attention 4+8+4+4 +1 = 21, MLP 4+16+16 +1 = 37, norms 8;
    # scores: softmax out 4 + mask 1 + dropout out 4 = 9 as^2b.
    assert act(dtype_bytes=4) == 66 * S * B * H + 9 * A * S * S * B


def test_no_dropout():
    # Drop 2 sbh masks, the as^2b mask and the 2as^2b dropout output.
    assert act(dropout=False) == 32 * S * B * H + 2 * A * S * S * B


def test_gated_ffn_and_gqa_scale_term_by_term():
    f, kv = 2816, 4
    arch = Architecture(
        kind="decoder",
        num_layers=2,
        hidden_size=H,
        num_heads=A,
        ffn_hidden_size=f,
        vocab_size=V,
        num_kv_heads=kv,
        ffn="swiglu",
        position_embedding="rotary",
        norm="rmsnorm",
        bias=False,
    )
    sbh, sbf, sbk = S * B * H, S * B * f, S * B * kv * (H // A)
    attention = 2 * sbh + (2 * sbh + 2 * sbk) + 2 * sbk + 2 * sbh + sbh  # in, Q K, V, out, mask
    mlp = 2 * sbh + 2 * (2 * sbf) + 2 * sbf + sbh  # in, gate+up, product, mask
    assert act(arch, flash=True) == attention + mlp + 4 * sbh


def test_cross_attention_adds_terms():
    t5 = get_preset("t5-small")
    s, h, a = 512, t5.hidden_size, t5.num_heads
    enc = act(t5, seq_len=s, stack="encoder")
    dec = act(t5, seq_len=s, stack="decoder")
    # Cross-attention: norm input 2sbh, then the 11sbh + 5as^2b set of a self-attention block.
    assert dec - enc == (2 + 11) * s * h + 5 * a * s * s


def test_embedding_and_output_activations():
    # Korthikanti Sec 4.3: embedding dropout mask sbh; output: 2sbh norm input + 2sbh
    # projection input + 4sbv fp32 logits; plus the 2sbv 16-bit logits held during the cast.
    assert embedding_activation_bytes(GPT, S, B) == S * B * H
    assert output_activation_bytes(GPT, S, B) == 4 * S * B * H + (2 + 4) * S * B * V
    bloom = get_preset("bloom-176b")
    assert embedding_activation_bytes(bloom, S, B) == 3 * S * B * bloom.hidden_size


small_archs = st.builds(
    lambda heads, dh, group, fmul, ffn, layers, kind: Architecture(
        kind=kind,
        num_layers=layers,
        hidden_size=heads * dh,
        num_heads=heads,
        ffn_hidden_size=fmul * heads * dh,
        vocab_size=1000,
        num_kv_heads=max(1, heads // group),
        ffn=ffn,
        position_embedding="rotary",
    ),
    heads=st.sampled_from([1, 2, 4, 8]),
    dh=st.sampled_from([8, 16, 64]),
    group=st.sampled_from([1, 2]),
    fmul=st.integers(1, 4),
    ffn=st.sampled_from(["gelu", "relu", "swiglu", "geglu"]),
    layers=st.integers(1, 3),
    kind=st.sampled_from(["decoder", "encoder", "encoder-decoder"]),
).filter(lambda a: a.num_heads % a.kv_heads == 0)


@settings(max_examples=60, deadline=None)
@given(
    arch=small_archs,
    s=st.integers(1, 512),
    b=st.integers(1, 4),
    dropout=st.booleans(),
    stack=st.sampled_from(["encoder", "decoder"]),
    e=st.sampled_from([1, 2, 4]),
)
def test_checkpointing_never_raises_activations(arch, s, b, dropout, stack, e):
    def get(ckpt, flash):
        return activation_bytes_per_layer(arch, s, b, ckpt, flash, e, stack, dropout)

    for flash in (False, True):
        assert get("full", flash) <= get("selective", flash) <= get("none", flash)
    assert get("none", True) <= get("none", False)
    assert get("full", False) == e * s * b * arch.hidden_size


# ------------------------------------------------------------ ops and FLOPs


def test_megatron_block_flops():
    # Narayanan et al. 2021 Sec 5.1: a GPT block's forward matmuls are 24bsh^2 + 4bs^2h.
    b = 2
    expected = 24 * b * S * H * H + 4 * b * S * S * H
    unfused = layer_ops(GPT, S, b, flash_attention=False)
    assert sum(o.flops for o in unfused if o.kind == "matmul") == expected
    fused = layer_ops(GPT, S, b, flash_attention=True)
    assert sum(o.flops for o in fused if o.kind in ("matmul", "attention")) == expected
    assert [o.kind for o in fused].count("attention") == 1


def test_op_order_and_gqa_gemm_shapes():
    arch = get_preset("llama2-70b")
    ops = layer_ops(arch, 4096, 1, flash_attention=True)
    names = [o.name for o in ops]
    assert names == [
        "attn_norm",
        "qkv_proj",
        "rope",
        "flash_attention",
        "attn_out_proj",
        "attn_residual",
        "mlp_norm",
        "mlp_gate",
        "mlp_up",
        "mlp_act",
        "mlp_down",
        "mlp_residual",
    ]
    # Q 64 heads + K, V 8 heads each, head_dim 128.
    assert ops[1].gemm == (4096, (64 + 2 * 8) * 128, 8192)
    # RoPE (one fused pass, the builders' default) reads and writes Q (64 heads) and K (8).
    assert ops[2].bytes_moved == 2 * 2 * 4096 * (64 + 8) * 128
    # Attention reads Q and writes O (64 heads), reads K and V (8 heads) at 2 bytes.
    assert ops[3].bytes_moved == 2 * 4096 * (2 * 64 + 2 * 8) * 128


def test_unfused_attention_ops():
    ops = layer_ops(GPT, S, B, flash_attention=False)
    scores = next(o for o in ops if o.name == "attn_scores")
    assert scores.gemm == (S, S, H // A) and scores.batch == B * A
    assert scores.flops == 2 * S * S * (H // A) * B * A
    assert {"softmax", "attn_dropout", "attn_over_values"} <= {o.name for o in ops}
    causal = layer_ops(GPT, S, B, flash_attention=True, causal=True)
    full = layer_ops(GPT, S, B, flash_attention=True)
    assert causal[2].flops * 2 == full[2].flops


def test_encoder_decoder_ops_include_cross_attention():
    t5 = get_preset("t5-small")
    dec = [o.name for o in layer_ops(t5, 512, 1, False, stack="decoder", encoder_seq_len=256)]
    enc = [o.name for o in layer_ops(t5, 512, 1, False, stack="encoder")]
    assert "cross_kv_proj" in dec and "cross_kv_proj" not in enc
    kv = next(
        o for o in layer_ops(t5, 512, 1, False, encoder_seq_len=256) if o.name == "cross_kv_proj"
    )
    assert kv.gemm == (256, 2 * t5.kv_dim, t5.hidden_size)


def test_backward_ops_double_matmul_flops():
    fwd = layer_ops(GPT, S, B, flash_attention=False)
    bwd = backward_ops(fwd)
    assert sum(o.flops for o in bwd if o.kind == "matmul") == 2 * sum(
        o.flops for o in fwd if o.kind == "matmul"
    )
    assert bwd[0].name == "mlp_residual.backward"
    dgrad, wgrad = (o for o in bwd if o.name.startswith("mlp_down."))
    m, n, k = S * B, H, 4 * H
    assert (dgrad.gemm, wgrad.gemm) == ((m, k, n), (k, n, m))
    flash = layer_ops(GPT, S, B, flash_attention=True)
    fa = next(o for o in backward_ops(flash) if o.kind == "attention")
    assert fa.flops == 2.5 * flash[2].flops  # FlashAttention-2 benchmark bwd = 2.5 x fwd


def test_six_n_plus_attention_identity():
    # Sum of forward matmul FLOPs (all blocks + logits), x3, per token vs.
    # 6*N_block_weights + 12*L*h*s + 6*V*h, and vs. the llm-foundry MFU formula: within 1%.
    arch, s, b = get_preset("gpt3-1.3b"), 2048, 1
    h, layers = arch.hidden_size, arch.num_layers
    per_layer = sum(o.flops for o in layer_ops(arch, s, b, True) if o.kind != "memory")
    logits = sum(o.flops for o in head_ops(arch, s, b) if o.kind == "matmul")
    from_ops = 3 * (layers * per_layer + logits) / (b * s)
    formula = 6 * (layers * 12 * h * h) + 12 * layers * h * s + 6 * arch.vocab_size * h
    assert from_ops == pytest.approx(formula, rel=0.01)
    assert from_ops == pytest.approx(model_flops_per_token(arch, s), rel=0.01)


def test_model_flops_hand_values():
    s = 2048
    # Tied: 6N (all parameters) + 12 L h s, llm-foundry MFU.
    assert model_flops_per_token(GPT, s) == 6 * param_count(GPT) + 12 * 4 * H * s
    llama = get_preset("llama2-7b")
    expected = 6 * (6_738_415_616 - 32000 * 4096) + 12 * 32 * 4096 * s
    assert model_flops_per_token(llama, s) == expected
    assert forward_flops_per_token(llama, s) == expected / 3
    t5 = get_preset("t5-small")  # decoder adds self + cross attention per layer
    assert model_flops_per_token(t5, s) == 6 * param_count(t5) + 12 * s * 512 * (6 + 2 * 6)


def test_six_n_d():
    # GPT-3 Table D.1: 175B params x 300B tokens ~ 3.14e23 FLOPs.
    assert six_n_d_flops(175e9, 300e9) == pytest.approx(3.14e23, rel=0.01)


def test_embedding_and_head_ops():
    assert [o.name for o in embedding_ops(get_preset("bloom-176b"), S, B)] == [
        "embedding",
        "embedding_norm",
    ]
    head = head_ops(GPT, S, B)
    assert [o.name for o in head] == ["final_norm", "logits", "cross_entropy"]
    assert head[1].gemm == (S * B, V, H)
    assert head[2].bytes_moved == S * B * V * (2 + 4)
    assert [o.name for o in head_ops(get_preset("bert-base"), 512, 1)] == ["pooler"]


# ------------------------------------------------------------ parameters and validation


def test_units_order_and_largest():
    t5 = get_preset("t5-small")
    names = [u.name for u in parameter_units(t5)]
    assert names[:2] == ["embedding", "encoder.0"]
    assert names[7:9] == ["encoder.final_norm", "decoder.0"] and names[-1] == "head"
    llama = get_preset("llama2-7b")
    units = parameter_units(llama)
    assert [u.name for u in units[1:3]] == ["layers.0", "layers.1"]
    # A Llama-2-7B block (4h^2 + 3hf + 2h) outweighs its 32000 x 4096 embedding table...
    assert largest_unit_params(llama) == 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    # ...while gpt2's embedding (wte + wpe) outweighs a block.
    assert largest_unit_params(get_preset("gpt2")) == (50257 + 1024) * 768
    assert flops_params(get_preset("gpt2")) == param_count(get_preset("gpt2"))
    # Kaplan non-embedding params of gpt2: blocks + final LN.
    assert non_embedding_params(get_preset("gpt2")) == 12 * (12 * 768**2 + 13 * 768) + 2 * 768


def test_qkv_bias_only():
    base = get_preset("llama2-7b")
    qwen_like = replace(base, qkv_bias=True)
    assert param_count(qwen_like) - param_count(base) == 32 * 3 * 4096


@pytest.mark.parametrize(
    "field,value",
    [
        ("num_layers", 0),
        ("hidden_size", -1),
        ("num_heads", 3),
        ("num_kv_heads", 5),
        ("ffn", "mish"),
        ("kind", "moe"),
        ("norm", "batchnorm"),
        ("position_embedding", "xpos"),
        ("head_dim", 0),
        ("num_decoder_layers", 2),
        ("bias", 1),
        ("max_position_embeddings", -1),
    ],
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        replace(GPT, **{field: value})


def test_bad_call_arguments():
    with pytest.raises(ValueError, match="checkpointing"):
        act(ckpt="some")
    with pytest.raises(ValueError, match="stack"):
        layer_ops(GPT, S, B, False, stack="middle")
