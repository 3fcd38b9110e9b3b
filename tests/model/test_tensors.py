"""Parameter tensors by module: a hand-counted GPT block, and every preset's modules, as written
(not fitted), summing to architecture.py's independent counts on 1, 2 and 8 tensor-parallel ranks
(removing a module, e.g. mlp.down_proj, fails every preset)."""

from __future__ import annotations

import pytest

from simulator.execution.layout import model_layout
from simulator.model import presets
from simulator.model.architecture import (
    Architecture,
    block_params,
    expert_block_params,
    mtp_params,
)
from simulator.model.spec import from_architecture, from_params
from simulator.model.tensors import (
    block_modules,
    mtp_modules,
    root_modules,
    unique_numel,
    unit_modules,
)
from simulator.spec.specs import ParallelSpec


def test_gpt_block_by_hand():
    # GPT block, h = 1024, 4h GELU MLP, LayerNorm and biases: q, k, v, o (h x h + h each), up
    # (4h x h + 4h), down (h x 4h + h), two LayerNorms (2h each) = 12 h^2 + 13 h.
    h = 1024
    arch = Architecture(
        kind="decoder",
        num_layers=2,
        hidden_size=h,
        num_heads=16,
        ffn_hidden_size=4 * h,
        vocab_size=1000,
    )
    mods = {m.name: m for m in block_modules(arch)}
    assert [m.name for m in block_modules(arch)] == [
        "block",
        "input_layernorm",
        "self_attn",
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "post_attention_layernorm",
        "mlp",
        "mlp.up_proj",
        "mlp.down_proj",
        "mlp.act_fn",
    ]
    assert [(t.numel, t.rows) for t in mods["mlp.up_proj"].tensors] == [
        (4 * h * h, 4 * h),
        (4 * h, 4 * h),
    ]
    assert [(t.numel, t.rows) for t in mods["mlp.down_proj"].tensors] == [(4 * h * h, h), (h, h)]
    assert {m.segment for m in block_modules(arch)} == {"attention", "mlp"}
    assert sum(m.numel for m in block_modules(arch)) == 12 * h * h + 13 * h


def test_tensor_parallel_split_by_hand():
    # tp = 2: column-parallel q/k/v/up split their rows (and biases), row-parallel o/down their
    # columns (their biases whole); norms whole.
    h = 1024
    arch = Architecture(
        kind="decoder",
        num_layers=2,
        hidden_size=h,
        num_heads=16,
        ffn_hidden_size=4 * h,
        vocab_size=1000,
    )
    mods = {m.name: m for m in block_modules(arch, tp=2)}
    assert [(t.numel, t.rows) for t in mods["self_attn.q_proj"].tensors] == [
        (h * h // 2, h // 2),
        (h // 2, h // 2),
    ]
    assert [(t.numel, t.rows) for t in mods["self_attn.o_proj"].tensors] == [
        (h * h // 2, h),
        (h, h),
    ]
    # weights 12 h^2 / 2; biases: q, k, v h/2 each, o h, up 4h/2, down h; norms 4h.
    assert sum(m.numel for m in mods.values()) == 6 * h * h + (3 * h // 2 + h + 2 * h + h) + 4 * h


@pytest.mark.parametrize("name", presets.preset_names())
@pytest.mark.parametrize("tp", [1, 2, 8])
def test_every_preset_unit_sums_to_its_parameter_count(name, tp):
    arch = presets.get_preset(name)
    if arch.num_heads % tp or arch.kv_heads % tp and arch.kv_heads >= tp:
        pytest.skip("heads do not split")
    lay = model_layout(from_architecture(arch, name), ParallelSpec(tp=tp))
    for b in lay.blocks[:2]:
        stack, index = b.stack, int(b.name.rsplit(".", 1)[-1])
        assert sum(m.numel for m in block_modules(arch, stack, index, tp)) == block_params(
            arch, stack, index, tp
        )
    emb, head = root_modules(arch, tp, lay.embedding_params, lay.head_params, tied_copy=False)
    assert sum(m.numel for m in emb) == lay.embedding_params
    assert unique_numel(emb + head) == lay.embedding_params + lay.head_params  # a tied table once


def test_bare_parameter_count_blocks_are_fitted():
    m = from_params(int(7e9))
    lay = model_layout(m)
    b = lay.blocks[0]
    mods = unit_modules(lay.arch, b.name, b.stack, b.params)
    assert sum(x.numel for x in mods) == b.params


MOE_PRESETS = ["mixtral-8x7b", "mixtral-8x22b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3"]


@pytest.mark.parametrize("name", MOE_PRESETS)
@pytest.mark.parametrize("tp,ep,etp", [(1, 1, 1), (2, 4, 1), (4, 8, 2), (8, 2, 4), (1, 8, 8)])
def test_moe_blocks_modules_sum_to_their_counts(name, tp, ep, etp):
    # Dense and MoE blocks (first, a DeepSeek-V3 dense one, last) and the MTP module: all their
    # tensors sum to block_params / mtp_params, the routed experts' to expert_block_params.
    arch = presets.get_preset(name)
    for index in sorted({0, 2, arch.num_layers - 1}):
        mods = block_modules(arch, "decoder", index, tp, ep, etp)
        assert sum(m.numel for m in mods) == block_params(arch, "decoder", index, tp, ep, etp)
        experts = sum(m.numel for m in mods if m.expert)
        assert experts == expert_block_params(arch, index, ep, etp)
    if arch.mtp_layers:
        mods = mtp_modules(arch, tp, ep, etp)
        assert sum(m.numel for m in mods) == mtp_params(arch, tp, ep, etp)


def test_moe_block_module_names_by_hand():
    # Qwen3-30B-A3B, ep 64: q_norm / k_norm of head_dim 128, the router 128 x 2048, and this
    # rank's 2 local experts (3 x 768 x 2048 each, marked expert), no shared experts.
    arch = presets.get_preset("qwen3-30b-a3b")
    mods = {m.name: m for m in block_modules(arch, "decoder", 0, 1, 64, 1)}
    assert [t.numel for t in mods["self_attn.q_norm"].tensors] == [128]
    assert [(t.numel, t.rows) for t in mods["mlp.gate"].tensors] == [(128 * 2048, 128)]
    assert sorted(n for n in mods if n.startswith("mlp.experts.") and n.count(".") == 2) == [
        "mlp.experts.0",
        "mlp.experts.1",
    ]
    assert [(t.numel, t.rows) for t in mods["mlp.experts.1.down_proj"].tensors] == [
        (2048 * 768, 2048)
    ]
    assert mods["mlp.experts.1.up_proj"].expert and not mods["mlp.gate"].expert
    assert "mlp.shared_experts" not in mods


def test_mla_and_mtp_module_names():
    arch = presets.get_preset("deepseek-v3")
    names = [m.name for m in block_modules(arch, "decoder", 0, 2)]
    assert names[2:10] == [
        "self_attn",
        "self_attn.q_a_proj",
        "self_attn.q_a_layernorm",
        "self_attn.q_b_proj",
        "self_attn.kv_a_proj_with_mqa",
        "self_attn.kv_a_layernorm",
        "self_attn.kv_b_proj",
        "self_attn.o_proj",
    ]
    mods = {m.name: m for m in block_modules(arch, "decoder", 0, 2)}
    # kv_b_proj: kv_lora_rank 512 -> 128 heads x (128 + 128), column-parallel over tp 2.
    assert [(t.numel, t.rows) for t in mods["self_attn.kv_b_proj"].tensors] == [
        (64 * 256 * 512, 64 * 256)
    ]
    mtp = [m.name for m in mtp_modules(arch, 1, 256, 1)]
    assert mtp[:4] == ["enorm", "hnorm", "eh_proj", "block"] and mtp[-1] == "shared_head.norm"
    assert "mlp.shared_experts.gate_proj" in mtp and "mlp.experts.1" not in mtp
    fitted = unit_modules(arch, "mtp.0", "decoder", mtp_params(arch, 1, 256), 1, 256)
    assert [m.name for m in fitted] == mtp
