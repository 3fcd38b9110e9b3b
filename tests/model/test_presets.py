"""Preset parameter counts against their reference implementations' published numbers."""

from dataclasses import replace

import pytest

from simulator.model.architecture import param_count, parameter_units
from simulator.model.presets import PRESETS, get_preset, preset_names

# Expected counts and where each number comes from. None of these were read off this
# program: HF numbers are `model.num_parameters()` of the reference model (tied weights
# counted once), MPT numbers are the NumParams column of llm-foundry's benchmark table.
EXACT = {
    # HF GPT2LMHeadModel num_parameters(); gpt2 also = 50257*768 + 1024*768
    # + 12*(12*768^2 + 13*768) + 2*768 (checked in test_gpt2_by_hand).
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    # HF LlamaForCausalLM num_parameters() for meta-llama/Llama-2-{7,13,70}b-hf.
    "llama2-7b": 6_738_415_616,
    "llama2-13b": 13_015_864_320,
    "llama2-70b": 68_976_648_192,
    # HF LlamaForCausalLM num_parameters() for meta-llama/Meta-Llama-3-{8,70}B;
    # 405B by arithmetic in test_llama3_405b_by_hand (Llama 3.1 405B config).
    "llama3-8b": 8_030_261_248,
    "llama3-70b": 70_553_706_496,
    "llama3-405b": 405_853_388_800,
    # HF BloomForCausalLM num_parameters() for bigscience/bloom.
    "bloom-176b": 176_247_271_424,
    # HF BertModel (with pooler) num_parameters() for bert-{base,large}-uncased.
    "bert-base": 109_482_240,
    "bert-large": 335_141_888,
    # HF T5ForConditionalGeneration num_parameters() for google-t5/t5-*. Checked by hand in
    # test_t5_by_hand; note t5-3b and t5-11b use d_kv = 128, not 64 (their config.json).
    "t5-small": 60_506_624,
    "t5-base": 222_903_552,
    "t5-large": 737_668_096,
    "t5-3b": 2_851_598_336,
    "t5-11b": 11_307_321_344,
    # HF MixtralForCausalLM num_parameters() for mistralai/Mixtral-8x7B-v0.1 (the other MoE
    # presets are checked by hand formulas in test_moe_params.py).
    "mixtral-8x7b": 46_702_792_704,
    # llm-foundry scripts/train/benchmarking/README.md, H100 80GB BF16 table, SeqLen 2048.
    "mpt-125m": 125_311_488,  # A100 80GB table, SeqLen 2048
    "mpt-350m": 355_985_408,  # A100 80GB table, SeqLen 2048
    "mpt-760m": 760_470_528,
    "mpt-1b": 1_315_950_592,
    "mpt-3b": 2_651_837_440,
    "mpt-7b": 6_658_859_008,
    "mpt-13b": 12_853_954_560,
    "mpt-30b": 29_975_214_080,
    "mpt-70b": 64_862_437_376,
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_param_count(name):
    assert param_count(get_preset(name)) == EXACT[name]


# Same llm-foundry tables, other sequence lengths: the position table has max_seq_len rows.
MPT_OTHER_SEQ = [
    ("mpt-7b", 1024, 6_654_664_704),
    ("mpt-7b", 8192, 6_684_024_832),
    ("mpt-13b", 4096, 12_864_440_320),
    ("mpt-3b", 65536, 2_814_366_720),
    ("mpt-350m", 512, 354_412_544),
    ("mpt-125m", 1024, 124_525_056),
    ("mpt-760m", 32768, 807_656_448),
]


@pytest.mark.parametrize("name,seq,expected", MPT_OTHER_SEQ)
def test_mpt_params_track_seq_len(name, seq, expected):
    arch = replace(get_preset(name), max_position_embeddings=seq)
    assert param_count(arch) == expected


def test_gpt2_by_hand():
    v, p, h, layers = 50257, 1024, 768, 12
    # wte + wpe + per block (c_attn 3h^2+3h, c_proj h^2+h, mlp 8h^2+5h, 2 LN 4h) + ln_f.
    assert param_count(get_preset("gpt2")) == v * h + p * h + layers * (12 * h * h + 13 * h) + 2 * h


def test_llama3_405b_by_hand():
    layers, h, heads, kv, f, v = 126, 16384, 128, 8, 53248, 128256
    dh = h // heads
    attn = h * h * 2 + 2 * h * kv * dh  # q, o + k, v
    block = attn + 3 * h * f + 2 * h  # SwiGLU + 2 RMSNorm weights
    assert param_count(get_preset("llama3-405b")) == 2 * v * h + layers * block + h


@pytest.mark.parametrize("name", ["t5-small", "t5-base", "t5-large", "t5-3b", "t5-11b"])
def test_t5_by_hand(name):
    arch = get_preset(name)
    d, inner, f, heads, layers = (
        arch.hidden_size,
        arch.q_dim,
        arch.ffn_hidden_size,
        arch.num_heads,
        arch.num_layers,
    )
    attn = 4 * d * inner
    enc_block = attn + 2 * d * f + 2 * d
    dec_block = 2 * attn + 2 * d * f + 3 * d
    rel = 32 * heads  # one bucket table in block 0 of each stack
    expected = 32128 * d + layers * (enc_block + dec_block) + 2 * rel + 2 * d
    assert param_count(arch) == expected


# GPT-3 Table 2.1 nominal n_params; our literal shapes land within 3% (embeddings are
# counted differently in the paper's rounding).
GPT3_NOMINAL = {
    "gpt3-125m": 125e6,
    "gpt3-350m": 350e6,
    "gpt3-760m": 760e6,
    "gpt3-1.3b": 1.3e9,
    "gpt3-2.7b": 2.7e9,
    "gpt3-6.7b": 6.7e9,
    "gpt3-13b": 13.0e9,
    "gpt3-175b": 175e9,
}


@pytest.mark.parametrize("name", sorted(GPT3_NOMINAL))
def test_gpt3_near_nominal(name):
    assert param_count(get_preset(name)) == pytest.approx(GPT3_NOMINAL[name], rel=0.03)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_units_sum_to_count(name):
    arch = get_preset(name)
    units = parameter_units(arch)
    assert sum(u.params for u in units) == param_count(arch)
    assert units[0].name == "embedding"
    assert len([u for u in units if u.kind == "block"]) == arch.total_layers


def test_gqa_reduces_params():
    gqa = get_preset("llama2-70b")
    mha = replace(gqa, num_kv_heads=None)
    h, dh = gqa.hidden_size, gqa.head_size
    # Each block loses K and V columns for 64 - 8 heads.
    assert param_count(mha) - param_count(gqa) == gqa.num_layers * 2 * h * (64 - 8) * dh


def test_names_and_lookup():
    names = preset_names()
    assert names == sorted(PRESETS)
    assert all(n == n.lower() and " " not in n and "_" not in n for n in names)
    with pytest.raises(KeyError):
        get_preset("gpt-5")


# Each family's dropout in its reference training config (read from the configs, not the code):
# Llama 2/3 HF LlamaConfig attention_dropout 0.0 and no hidden dropout; BLOOM config.json
# hidden_dropout / attention_dropout 0.0; llm-foundry MPTConfig *_pdrop 0.0; GPT-2 HF config
# resid/embd/attn_pdrop 0.1; GPT-3 (Megatron recipes) 0.1; BERT hidden_dropout_prob 0.1;
# T5 dropout_rate 0.1.
DROPOUT = {
    "llama2-7b": False,
    "llama2-70b": False,
    "llama3-8b": False,
    "llama3-405b": False,
    "bloom-176b": False,
    "mpt-7b": False,
    "mpt-125m": False,
    "gpt2": True,
    "gpt3-175b": True,
    "bert-base": True,
    "t5-11b": True,
    # Mixtral / Qwen3-MoE / DeepSeek-V3 config.json attention_dropout 0.0, no hidden dropout.
    "mixtral-8x7b": False,
    "qwen3-235b-a22b": False,
    "deepseek-v3": False,
}


@pytest.mark.parametrize("name, dropout", sorted(DROPOUT.items()))
def test_presets_carry_their_reference_dropout(name, dropout):
    from simulator.model.presets import training_defaults

    assert training_defaults(name) == {"dropout": dropout}


def test_every_preset_has_training_defaults():
    from simulator.model.presets import training_defaults

    assert all(isinstance(training_defaults(n)["dropout"], bool) for n in preset_names())
    with pytest.raises(KeyError):
        training_defaults("llama9-1t")
