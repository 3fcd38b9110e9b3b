"""Hugging Face config.json -> model.architecture, on real configs (simulator/data/configs and
tests/fixtures/import, sources in their READMEs). Expected values are read by hand from the files."""

from __future__ import annotations

import dataclasses
import json

from simulator.model import presets
from simulator.model.architecture import param_count
from simulator.scenario.importers import import_files, import_text
from tests.helpers import import_fixture


def _arch(name: str) -> dict:
    return import_files([import_fixture(name)]).document["model"]["architecture"]


def test_mixtral_maps_its_shape_and_experts():
    arch = _arch("mixtral-8x7b-config.json")
    # config.json: num_hidden_layers 32, hidden_size 4096, num_attention_heads 32,
    # num_key_value_heads 8, intermediate_size 14336, vocab_size 32000, num_local_experts 8,
    # num_experts_per_tok 2, tie_word_embeddings false, max_position_embeddings 32768
    assert arch["num_layers"] == 32 and arch["hidden_size"] == 4096
    assert arch["num_heads"] == 32 and arch["num_kv_heads"] == 8
    assert arch["ffn_hidden_size"] == 14336 and arch["vocab_size"] == 32000
    assert arch["moe"] == {
        "num_experts": 8,
        "experts_per_token": 2,
        "expert_ffn_hidden_size": 14336,
    }
    assert arch["tied_embeddings"] is False and arch["max_position_embeddings"] == 32768
    assert (arch["ffn"], arch["norm"], arch["position_embedding"], arch["bias"]) == (
        "swiglu",
        "rmsnorm",
        "rotary",
        False,
    )


def test_imported_mixtral_has_the_presets_exact_parameter_count():
    scenario = import_files([import_fixture("mixtral-8x7b-config.json")]).scenario
    assert scenario is not None
    preset = param_count(presets.get_preset("mixtral-8x7b"))
    assert preset == 46_702_792_704
    assert scenario.model.params == preset


def test_llama31_8b_is_llama3_8b_with_its_longer_context():
    scenario = import_files([import_fixture("llama-3.1-8b-config.json")]).scenario
    assert scenario is not None
    # max_position_embeddings 131072 (rope_scaling to 128K) is the one difference from Llama 3 8B's
    # 8192, and a rotary context has no parameters.
    llama3 = dataclasses.replace(presets.get_preset("llama3-8b"), max_position_embeddings=131072)
    assert scenario.model.params == param_count(llama3) == 8_030_261_248


def test_deepseek_v3_maps_mla_moe_and_mtp_to_the_preset():
    arch = _arch("deepseek-v3-config.json")
    # qk_nope_head_dim 128, kv_lora_rank 512, q_lora_rank 1536, qk_rope_head_dim 64, v_head_dim 128
    assert arch["head_dim"] == 128
    assert arch["attention"] == {
        "kind": "mla",
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "rope_head_dim": 64,
        "v_head_dim": 128,
    }
    # n_routed_experts 256, num_experts_per_tok 8, moe_intermediate_size 2048, n_shared_experts 1,
    # first_k_dense_replace 3, moe_layer_freq 1, n_group 8, topk_group 4, topk_method noaux_tc
    assert arch["moe"] == {
        "num_experts": 256,
        "experts_per_token": 8,
        "expert_ffn_hidden_size": 2048,
        "shared_experts": 1,
        "first_dense_layers": 3,
        "layer_frequency": 1,
        "router_groups": 8,
        "router_group_topk": 4,
        "router_bias": True,
    }
    assert arch["mtp_layers"] == 1 and arch["num_layers"] == 61 and arch["vocab_size"] == 129280
    scenario = import_files([import_fixture("deepseek-v3-config.json")]).scenario
    assert scenario is not None
    assert scenario.model.params == param_count(presets.get_preset("deepseek-v3"))


def test_every_key_is_reported_once_at_least():
    text = (import_fixture("deepseek-v3-config.json")).read_text()
    partial = import_text(text, "config.json")
    reported = {e.key for e in partial.entries}
    assert set(json.loads(text)) <= reported
    ignored = {e.key: e.why for e in partial.entries if e.status == "ignored"}
    assert "rope_scaling" in ignored and "quantization_config" in ignored


def test_unknown_key_is_reported_with_a_suggestion():
    partial = import_text('{"model_type": "llama", "hiden_size": 4096}', "config.json")
    unknown = [e for e in partial.entries if e.unknown]
    assert [e.key for e in unknown] == ["hiden_size"]
    assert "hidden_size" in unknown[0].why


def test_sliding_window_attention_is_refused():
    # Mistral-7B-v0.1's config.json: "sliding_window": 4096
    partial = import_text(
        '{"model_type": "mistral", "hidden_size": 4096, "sliding_window": 4096}', "config.json"
    )
    refused = [e for e in partial.entries if e.status == "refused"]
    assert [e.key for e in refused] == ["sliding_window"]
    assert "not modelled" in refused[0].why


def test_gpt2_defaults_are_the_presets(tmp_path):
    # openai-community/gpt2 config.json's shape keys (n_inner null: 4 x n_embd; dropout 0.1)
    path = tmp_path / "config.json"
    path.write_text(
        '{"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_inner": null,'
        ' "n_positions": 1024, "vocab_size": 50257, "activation_function": "gelu_new",'
        ' "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}'
    )
    imported = import_files([path])
    assert imported.scenario is not None
    assert imported.scenario.model.params == param_count(presets.get_preset("gpt2"))
    assert imported.document["training"] == {"seq_len": 1024, "dropout": True}
