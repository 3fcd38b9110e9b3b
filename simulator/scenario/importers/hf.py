"""A Hugging Face `config.json` -> model.architecture (and training.dropout).

Families and the transformers classes whose shapes they follow (modeling_*.py): llama, mistral
(LlamaForCausalLM / MistralForCausalLM: SwiGLU, RMSNorm, RoPE, no biases), mixtral (every MLP an
MoE of num_local_experts SwiGLU experts of intermediate_size), qwen2 (bias on q, k, v only),
qwen3 (q_norm / k_norm), qwen3_moe (experts of moe_intermediate_size every decoder_sparse_step
layers), deepseek_v3 (MLA, first_k_dense_replace dense layers, shared experts, MTP) and gpt2
(GPT2LMHeadModel: learned positions, LayerNorm, biased Conv1D, tied head).
"""

from __future__ import annotations

from typing import Any

from simulator.scenario.importers.base import Partial

ARCH = "model.architecture"
FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "deepseek_v3", "gpt2")
_LLAMA_LIKE = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "deepseek_v3")

# Keys that change nothing clustersim models, with why.
_IGNORED = {
    "bos_token_id": "a token id",
    "eos_token_id": "a token id",
    "pad_token_id": "a token id",
    "initializer_range": "weight initialisation",
    "rms_norm_eps": "a numerical constant",
    "layer_norm_epsilon": "a numerical constant",
    "rope_theta": "the rotary base: rotary positions have no parameters",
    "rope_scaling": "rotary frequency scaling: no parameters, no FLOPs to speak of",
    "torch_dtype": "the checkpoint's storage type; the training precision is training.precision",
    "transformers_version": "provenance",
    "use_cache": "inference KV cache",
    "pretraining_tp": "a numerics switch of the Llama 2 conversion (same weights)",
    "output_router_logits": "whether the model returns router logits",
    "router_aux_loss_coef": "a loss weight",
    "aux_loss_alpha": "a loss weight",
    "seq_aux": "how the auxiliary loss is computed",
    "norm_topk_prob": "routing weights' normalisation",
    "routed_scaling_factor": "routing weights' scale",
    "scoring_func": "the router's score function",
    "ep_size": "the released inference code's expert parallelism (training.parallelism.ep decides)",
    "auto_map": "remote-code class names",
    "quantization_config": "how the released weights are stored; training.precision decides",
    "hidden_act": "read with the family (gated SwiGLU for Llama-style models)",
    "architectures": "read with model_type",
    "_name_or_path": "provenance",
    "use_sliding_window": "read with sliding_window",
    "max_window_layers": "read with sliding_window",
    "attn_implementation": "a kernel choice; training.flash_attention decides",
    "summary_type": "GPT-2 sequence-classification head",
    "summary_use_proj": "GPT-2 sequence-classification head",
    "summary_activation": "GPT-2 sequence-classification head",
    "summary_proj_to_labels": "GPT-2 sequence-classification head",
    "summary_first_dropout": "GPT-2 sequence-classification head",
    "task_specific_params": "generation defaults",
    "scale_attn_weights": "a numerical constant",
    "reorder_and_upcast_attn": "numerics",
    "scale_attn_by_inverse_layer_idx": "numerics",
    "n_ctx": "GPT-2's n_positions under an older name",
}
_DROPOUT = (
    "attention_dropout",
    "hidden_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
)


def is_hf_config(data: Any) -> bool:
    return isinstance(data, dict) and ("model_type" in data or "architectures" in data)


def import_hf(data: dict[str, Any], source: str) -> Partial:
    p = Partial(source, "Hugging Face config.json")
    family = str(data.get("model_type", "")).lower()
    if family not in FAMILIES:
        p.refuse(
            "model_type",
            data.get("model_type"),
            f"a family the importer does not know (known: {', '.join(FAMILIES)}); "
            "describe it with model.architecture",
        )
        for key, value in data.items():
            if key != "model_type":
                p.ignore(key, value, "the family is not known")
        return p
    seen: set[str] = set()

    def take(key: str, target: str | None = None, convert=lambda v: v, why: str = "") -> Any:
        seen.add(key)
        if key not in data:
            return None
        value = data[key]
        if target is not None and value is not None:
            p.map(key, value, f"{ARCH}.{target}", convert(value), why)
        return value

    p.note("model_type", family, ARCH, "a decoder of this family's shape")
    seen.add("model_type")
    if family == "gpt2":
        _gpt2(data, p, take)
    else:
        _llama_like(family, data, p, take)
    _dropout(data, p, seen)
    for key, value in data.items():
        if key in seen:
            continue
        if key in _IGNORED:
            p.ignore(key, value, _IGNORED[key])
        else:
            p.unknown(key, value, [*_IGNORED, "hidden_size", "num_hidden_layers"])
    return p


def _gpt2(data: dict[str, Any], p: Partial, take) -> None:
    p.assignments += [(f"{ARCH}.kind", "decoder", "model_type")]
    take("n_layer", "num_layers")
    h = take("n_embd", "hidden_size")
    take("n_head", "num_heads")
    inner = take("n_inner")
    width = inner if inner is not None else 4 * (h or 0)
    if "n_inner" in data:
        p.map("n_inner", inner, f"{ARCH}.ffn_hidden_size", width, "null: 4 x n_embd")
    else:
        p.assignments.append((f"{ARCH}.ffn_hidden_size", width, "default"))
    take("vocab_size", "vocab_size")
    positions = take("n_positions", "max_position_embeddings", why="the learned position table")
    if positions:  # a sequence must fit the table: train at its length unless told otherwise
        p.assignments.append(("training.seq_len", positions, "default: n_positions"))
    act = take("activation_function")
    if act is not None:
        if str(act).startswith("gelu"):
            p.map("activation_function", act, f"{ARCH}.ffn", "gelu")
        else:
            p.refuse("activation_function", act, "only GPT-2's GELU MLP is read for gpt2")
    _tied(data, p, take, default=True)
    p.assignments += [
        (f"{ARCH}.position_embedding", "learned", "model_type"),
        (f"{ARCH}.norm", "layernorm", "model_type"),
        (f"{ARCH}.bias", True, "model_type"),
    ]


def _llama_like(family: str, data: dict[str, Any], p: Partial, take) -> None:
    p.assignments += [
        (f"{ARCH}.kind", "decoder", "model_type"),
        (f"{ARCH}.ffn", "swiglu", "model_type"),
        (f"{ARCH}.position_embedding", "rotary", "model_type"),
        (f"{ARCH}.norm", "rmsnorm", "model_type"),
    ]
    take("num_hidden_layers", "num_layers")
    take("hidden_size", "hidden_size")
    take("num_attention_heads", "num_heads")
    take("vocab_size", "vocab_size")
    take("max_position_embeddings", "max_position_embeddings", why="context trained for")
    take("intermediate_size", "ffn_hidden_size")
    _tied(data, p, take, default=False)
    act = take("hidden_act")
    if act == "silu":
        p.note("hidden_act", act, f"{ARCH}.ffn", "silu-gated: swiglu")
    elif act is not None:
        p.refuse("hidden_act", act, f"{family} MLPs are read as SwiGLU (silu)")
    _biases(family, data, p, take)
    _sliding_window(data, p, take)
    if family == "deepseek_v3":
        _deepseek(data, p, take)
        return
    kv = take("num_key_value_heads", "num_kv_heads")
    if kv is None:
        p.assignments.append((f"{ARCH}.num_kv_heads", data.get("num_attention_heads"), "default"))
    take("head_dim", "head_dim")
    if family in ("qwen3", "qwen3_moe"):
        p.assignments.append((f"{ARCH}.qk_norm", True, "model_type"))
    if family == "mixtral":
        _moe(p, take, "num_local_experts", data.get("intermediate_size"), "intermediate_size")
    elif family == "qwen3_moe":
        width = take("moe_intermediate_size")
        _moe(p, take, "num_experts", width, "moe_intermediate_size")
        only = take("mlp_only_layers")
        if only:
            p.refuse("mlp_only_layers", only, "dense layers at chosen indices are not modelled")
        elif only is not None:
            p.ignore("mlp_only_layers", only, "empty: no dense-only layers")
        step = take("decoder_sparse_step", "moe.layer_frequency")
        del step


def _tied(data: dict[str, Any], p: Partial, take, default: bool) -> None:
    """tie_word_embeddings, or the family's default (transformers' config class) when absent."""
    if take("tie_word_embeddings", "tied_embeddings", bool) is None:
        p.assignments.append((f"{ARCH}.tied_embeddings", default, "default"))


def _biases(family: str, data: dict[str, Any], p: Partial, take) -> None:
    attention_bias = take("attention_bias")
    mlp_bias = take("mlp_bias")
    if family == "qwen2":
        p.assignments += [(f"{ARCH}.bias", False, "model_type"), (f"{ARCH}.qkv_bias", True, "")]
        return
    if attention_bias:
        p.refuse("attention_bias", True, "biased q, k, v and o without MLP biases is not a shape")
    elif attention_bias is not None:
        p.map("attention_bias", False, f"{ARCH}.bias", False)
    if mlp_bias:
        p.refuse("mlp_bias", True, "MLP biases without attention biases are not a shape")
    elif mlp_bias is not None:
        p.map("mlp_bias", False, f"{ARCH}.bias", False)
    if attention_bias is None and mlp_bias is None:
        p.assignments.append((f"{ARCH}.bias", False, "model_type"))


def _sliding_window(data: dict[str, Any], p: Partial, take) -> None:
    window = take("sliding_window")
    if "sliding_window" not in data:
        return
    if window is None or data.get("use_sliding_window") is False:
        p.ignore("sliding_window", window, "off: full causal attention, as modelled")
    else:
        p.refuse(
            "sliding_window",
            window,
            "sliding-window attention is not modelled: attention is costed over the whole "
            "causal sequence (an over-estimate beyond the window)",
        )


def _moe(p: Partial, take, experts_key: str, width: Any, width_key: str) -> None:
    take(experts_key, "moe.num_experts")
    take("num_experts_per_tok", "moe.experts_per_token")
    p.map(width_key, width, f"{ARCH}.moe.expert_ffn_hidden_size", width, "one expert's width")


def _deepseek(data: dict[str, Any], p: Partial, take) -> None:
    kv = take("num_key_value_heads")
    if kv is not None:
        p.ignore("num_key_value_heads", kv, "MLA: every head's K and V come from the latent")
    take("qk_nope_head_dim", "head_dim", why="the non-rotary part of each Q/K head")
    p.assignments.append((f"{ARCH}.attention.kind", "mla", "kv_lora_rank"))
    take("kv_lora_rank", "attention.kv_lora_rank")
    take("q_lora_rank", "attention.q_lora_rank")
    take("qk_rope_head_dim", "attention.rope_head_dim")
    take("v_head_dim", "attention.v_head_dim")
    take("n_routed_experts", "moe.num_experts")
    take("num_experts_per_tok", "moe.experts_per_token")
    take("moe_intermediate_size", "moe.expert_ffn_hidden_size")
    take("n_shared_experts", "moe.shared_experts")
    take("first_k_dense_replace", "moe.first_dense_layers")
    take("moe_layer_freq", "moe.layer_frequency")
    take("n_group", "moe.router_groups")
    take("topk_group", "moe.router_group_topk")
    method = take("topk_method")
    if method == "noaux_tc":
        p.map("topk_method", method, f"{ARCH}.moe.router_bias", True, "e_score_correction_bias")
    elif method is not None:
        p.ignore("topk_method", method, "routing without a score bias")
    take("num_nextn_predict_layers", "mtp_layers")


def _dropout(data: dict[str, Any], p: Partial, seen: set[str]) -> None:
    """Dropout rates: whether any is non-zero decides training.dropout (its 1-byte masks)."""
    rates = {k: data[k] for k in _DROPOUT if k in data}
    seen.update(rates)
    if not rates:
        return
    on = any(isinstance(v, (int, float)) and v > 0 for v in rates.values())
    for key, value in rates.items():
        p.map(key, value, "training.dropout", on, "any rate above 0: dropout masks are stored")
