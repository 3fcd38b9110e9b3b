"""Named model presets: architectures whose parameter counts match their reference code.

Each family cites the config its shapes come from; tests/test_presets.py checks the exact
counts. Override a field with `dataclasses.replace(get_preset(name), ...)`, e.g. MPT's
learned position table (`max_position_embeddings`), which tracks the training seq_len.
`training_defaults` gives what a family trains with (dropout), for a scenario that does not say.
"""

from __future__ import annotations

from simulator.model.architecture import Architecture, Attention, MoE

# HF GPT2LMHeadModel (openai-community/gpt2* config.json): vocab 50257, n_positions 1024,
# n_inner = 4*n_embd, GELU, LayerNorm with bias, biased Conv1D layers, tied lm_head.
_GPT2 = {
    "gpt2": (12, 768, 12),
    "gpt2-medium": (24, 1024, 16),
    "gpt2-large": (36, 1280, 20),
    "gpt2-xl": (48, 1600, 25),
}

# Brown et al. 2020 (GPT-3) Table 2.1: (n_layers, d_model, n_heads, d_head). d_ff = 4*d_model,
# n_ctx 2048, GPT-2 tokenizer (50257), learned positions, tied, biased. The table's 13B row
# (d_model 5140, 40 heads x d_head 128 = 5120) is kept literally via head_dim. Its 1.3B row
# (24 heads x 128 = 3072 != 2048) cannot be literal and still be 1.3B (it would be 1.52B):
# we use 16 heads x 128 = d_model, as GPT-Neo 1.3B and Megatron's GPT-3 1.3B configs do.
_GPT3 = {
    "gpt3-125m": (12, 768, 12, 64),
    "gpt3-350m": (24, 1024, 16, 64),
    "gpt3-760m": (24, 1536, 16, 96),
    "gpt3-1.3b": (24, 2048, 16, 128),
    "gpt3-2.7b": (32, 2560, 32, 80),
    "gpt3-6.7b": (32, 4096, 32, 128),
    "gpt3-13b": (40, 5140, 40, 128),
    "gpt3-175b": (96, 12288, 96, 128),
}

# HF LlamaForCausalLM (meta-llama/Llama-2-*-hf, Meta-Llama-3(.1)-* config.json):
# (num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads,
#  intermediate_size, vocab_size). RMSNorm, SwiGLU, RoPE, no biases, untied lm_head.
# The last field is max_position_embeddings, the context the model was trained for (rotary
# positions have no table, so it only warns): 4096 for Llama 2, 8192 for Llama 3 8B/70B, and
# 131072 for 405B, which exists only as Llama 3.1 (Dubey et al. 2024, Sec 3.4.2).
_LLAMA = {
    "llama2-7b": (32, 4096, 32, 32, 11008, 32000, 4096),
    "llama2-13b": (40, 5120, 40, 40, 13824, 32000, 4096),
    "llama2-70b": (80, 8192, 64, 8, 28672, 32000, 4096),
    "llama3-8b": (32, 4096, 32, 8, 14336, 128256, 8192),
    "llama3-70b": (80, 8192, 64, 8, 28672, 128256, 8192),
    "llama3-405b": (126, 16384, 128, 8, 53248, 128256, 131072),
}

# HF BertModel (google-bert/bert-*-uncased config.json): vocab 30522, 512 positions,
# 2 token types, post-LN (embedding LayerNorm, no final norm), pooler, no LM head.
_BERT = {"bert-base": (12, 768, 12, 3072), "bert-large": (24, 1024, 16, 4096)}

# HF T5ForConditionalGeneration (google-t5/t5-* config.json): (num_layers, d_model, num_heads,
# d_kv, d_ff). vocab 32128, ReLU, T5LayerNorm (RMS, weight only), no linear biases, 32
# relative-attention buckets in block 0 of each stack, lm_head tied to `shared`.
# Note: t5-3b and t5-11b have d_kv = 128 (not 64), so num_heads*d_kv != d_model. Pre-trained
# at 512 tokens (Raffel et al. 2020, Sec 3.1.2); relative positions extrapolate (a warning).
_T5 = {
    "t5-small": (6, 512, 8, 64, 2048),
    "t5-base": (12, 768, 12, 64, 3072),
    "t5-large": (24, 1024, 16, 64, 4096),
    "t5-3b": (24, 1024, 32, 128, 16384),
    "t5-11b": (24, 1024, 128, 128, 65536),
}

# llm-foundry scripts/train/yamls/pretrain/mpt-*.yaml: (d_model, n_layers, n_heads);
# expansion_ratio 4, vocab 50368, max_seq_len 2048, other fields at MPTConfig defaults
# (llmfoundry/models/mpt/configuration_mpt.py): learned_pos_emb=True, no_bias=False (so
# biased linears and LayerNorm with bias), tied embeddings. These reproduce the NumParams
# column of scripts/train/benchmarking/README.md exactly (the released HF mpt-7b checkpoint
# instead uses ALiBi and no_bias=True; it is not this preset).
_MPT = {
    "mpt-125m": (768, 12, 12),
    "mpt-350m": (1024, 24, 16),
    "mpt-760m": (1536, 24, 12),
    "mpt-1b": (2048, 24, 16),
    "mpt-3b": (2560, 32, 20),
    "mpt-7b": (4096, 32, 32),
    "mpt-13b": (5120, 40, 40),
    "mpt-30b": (7168, 48, 64),
    "mpt-70b": (8192, 80, 64),
}


# Mixture-of-experts decoders (HF MixtralForCausalLM / Qwen3MoeForCausalLM config.json):
# (num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim,
#  intermediate_size, vocab_size, max_position_embeddings, num_local_experts | num_experts,
#  num_experts_per_tok, expert width, qk_norm). Every layer is an MoE layer (Mixtral;
# Qwen3 decoder_sparse_step 1, mlp_only_layers []); RMSNorm, SwiGLU experts, RoPE, no biases
# (attention_bias false), untied lm_head (tie_word_embeddings false), routers without bias.
# mixtral-8x7b: mistralai/Mixtral-8x7B-v0.1 (expert width = intermediate_size 14336, head_dim
#   = 4096 / 32). mixtral-8x22b: mistralai/Mixtral-8x22B-Instruct-v0.1 (vocab_size 32768; the
#   base checkpoint's community conversion mistral-community/Mixtral-8x22B-v0.1 has 32000).
# qwen3-*: Qwen/Qwen3-30B-A3B, Qwen/Qwen3-235B-A22B (expert width moe_intermediate_size,
#   head_dim 128 explicit, q_norm / k_norm on every attention).
_MOE = {
    "mixtral-8x7b": (32, 4096, 32, 8, None, 14336, 32000, 32768, 8, 2, 14336, False),
    "mixtral-8x22b": (56, 6144, 48, 8, None, 16384, 32768, 65536, 8, 2, 16384, False),
    "qwen3-30b-a3b": (48, 2048, 32, 4, 128, 6144, 151936, 40960, 128, 8, 768, True),
    "qwen3-235b-a22b": (94, 4096, 64, 4, 128, 12288, 151936, 40960, 128, 8, 1536, True),
}

# DeepSeek-V3 (HF deepseek-ai/DeepSeek-V3 config.json, DeepseekV3ForCausalLM): 61 layers,
# hidden_size 7168, 128 heads, vocab 129280, max_position_embeddings 163840; MLA with
# q_lora_rank 1536, kv_lora_rank 512, qk_nope_head_dim 128 (head_dim), qk_rope_head_dim 64,
# v_head_dim 128; dense MLPs of intermediate_size 18432 in the first_k_dense_replace 3 layers,
# then (moe_layer_freq 1) 256 routed experts (n_routed_experts) of moe_intermediate_size 2048,
# num_experts_per_tok 8, n_shared_experts 1, topk_method noaux_tc (e_score_correction_bias);
# num_nextn_predict_layers 1 MTP module; RMSNorm, SwiGLU, no biases, untied lm_head.
_DEEPSEEK_V3 = Architecture(
    kind="decoder",
    num_layers=61,
    hidden_size=7168,
    num_heads=128,
    ffn_hidden_size=18432,
    vocab_size=129280,
    head_dim=128,
    max_position_embeddings=163840,
    ffn="swiglu",
    tied_embeddings=False,
    position_embedding="rotary",
    norm="rmsnorm",
    bias=False,
    moe=MoE(
        num_experts=256,
        experts_per_token=8,
        expert_ffn_hidden_size=2048,
        shared_experts=1,
        first_dense_layers=3,
        router_bias=True,
        router_groups=8,  # config.json n_group
        router_group_topk=4,  # config.json topk_group
    ),
    attention=Attention(
        kind="mla", q_lora_rank=1536, kv_lora_rank=512, rope_head_dim=64, v_head_dim=128
    ),
    mtp_layers=1,
)


# What the Llama-style decoders share (HF LlamaForCausalLM, MixtralForCausalLM, Qwen3MoeForCausalLM):
# SwiGLU, untied output head, rotary positions, RMSNorm, no biases.
_LLAMA_STYLE: dict = {
    "ffn": "swiglu",
    "tied_embeddings": False,
    "position_embedding": "rotary",
    "norm": "rmsnorm",
    "bias": False,
}


def _build() -> dict[str, Architecture]:
    presets: dict[str, Architecture] = {}
    for name, (layers, h, heads) in _GPT2.items():
        presets[name] = Architecture(
            kind="decoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=4 * h,
            vocab_size=50257,
            max_position_embeddings=1024,
        )
    for name, (layers, h, heads, dh) in _GPT3.items():
        presets[name] = Architecture(
            kind="decoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=4 * h,
            vocab_size=50257,
            head_dim=dh,
            max_position_embeddings=2048,
        )
    for name, (layers, h, heads, kv, f, vocab, context) in _LLAMA.items():
        presets[name] = Architecture(
            kind="decoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=f,
            vocab_size=vocab,
            num_kv_heads=kv,
            max_position_embeddings=context,
            **_LLAMA_STYLE,
        )
    # HF BloomForCausalLM (bigscience/bloom config.json): n_layer 70, hidden 14336, n_head 112,
    # vocab 250880, ALiBi, word_embeddings_layernorm, biased layers, 4h GELU MLP, tied head;
    # trained at sequence length 2048 (BigScience, arXiv 2211.05100, Sec 3.4).
    presets["bloom-176b"] = Architecture(
        kind="decoder",
        num_layers=70,
        hidden_size=14336,
        num_heads=112,
        ffn_hidden_size=4 * 14336,
        vocab_size=250880,
        max_position_embeddings=2048,
        position_embedding="alibi",
        embedding_norm=True,
    )
    for name, (layers, h, heads, f) in _BERT.items():
        presets[name] = Architecture(
            kind="encoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=f,
            vocab_size=30522,
            max_position_embeddings=512,
            token_type_vocab=2,
            embedding_norm=True,
            final_norm=False,
            pooler=True,
            lm_head=False,
        )
    for name, (layers, h, heads, dkv, f) in _T5.items():
        presets[name] = Architecture(
            kind="encoder-decoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=f,
            vocab_size=32128,
            head_dim=dkv,
            ffn="relu",
            num_decoder_layers=layers,
            max_position_embeddings=512,
            position_embedding="relative",
            norm="rmsnorm",
            bias=False,
        )
    for name, (h, layers, heads) in _MPT.items():
        presets[name] = Architecture(
            kind="decoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=4 * h,
            vocab_size=50368,
            max_position_embeddings=2048,
        )
    for name, (layers, h, heads, kv, head_dim, f, vocab, ctx, n, k, fe, qk) in _MOE.items():
        presets[name] = Architecture(
            kind="decoder",
            num_layers=layers,
            hidden_size=h,
            num_heads=heads,
            ffn_hidden_size=f,
            vocab_size=vocab,
            num_kv_heads=kv,
            head_dim=head_dim,
            max_position_embeddings=ctx,
            **_LLAMA_STYLE,
            qk_norm=qk,
            moe=MoE(num_experts=n, experts_per_token=k, expert_ffn_hidden_size=fe),
        )
    presets["deepseek-v3"] = _DEEPSEEK_V3
    return presets


PRESETS: dict[str, Architecture] = _build()

# Whether each family trains with dropout (its reference training config; a scenario's own
# `training.dropout` wins). Dropout keeps 1-byte masks for backward (Korthikanti et al. 2022).
# With: GPT-2 (HF config resid/embd/attn_pdrop 0.1), GPT-3 (Megatron-LM's GPT-3 recipes:
# hidden_dropout and attention_dropout 0.1), BERT (hidden_dropout_prob and
# attention_probs_dropout_prob 0.1), T5 (dropout_rate 0.1).
# Without: Llama 2 / 3 (HF LlamaConfig attention_dropout 0.0, no hidden dropout; Meta's
# reference code has none), BLOOM (bigscience/bloom config.json hidden_dropout and
# attention_dropout 0.0), MPT (llm-foundry MPTConfig resid_pdrop, emb_pdrop, attn_pdrop 0.0).
# Mixtral, Qwen3-MoE (config.json attention_dropout 0.0, no hidden dropout) and DeepSeek-V3
# (attention_dropout 0.0) train without dropout too.
_DROPOUT_FREE = (*_LLAMA, "bloom-176b", *_MPT, *_MOE, "deepseek-v3")


def training_defaults(name: str) -> dict[str, bool]:
    """The training settings a preset's architecture was trained with ({"dropout": ...})."""
    get_preset(name)
    return {"dropout": name not in _DROPOUT_FREE}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> Architecture:
    """The named preset; KeyError (with the name) for an unknown one."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(name) from None
