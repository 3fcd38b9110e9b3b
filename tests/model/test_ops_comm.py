"""The collectives a block's segments carry: tensor parallelism by Megatron's f / g rule (the
rule the schedule applied before the graph carried the collectives), context
parallelism (ring / all-gather / all-to-all) by hand, and dense results unchanged by the new
keywords. Expected values are hand calculations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.model.architecture import Architecture, MoE
from simulator.model.ops import (
    Comm,
    backward_ops,
    embedding_segment,
    head_segment,
    layer_ops,
    layer_segments,
)
from simulator.model.presets import get_preset

H, A, KV, S, B = 1024, 16, 4, 4096, 2  # GQA: 16 query heads, 4 K/V heads of 64
LLAMA = Architecture(
    kind="decoder",
    num_layers=4,
    hidden_size=H,
    num_heads=A,
    num_kv_heads=KV,
    ffn_hidden_size=2816,
    vocab_size=32000,
    ffn="swiglu",
    norm="rmsnorm",
    bias=False,
    position_embedding="rotary",
)
D = H // A  # 64
KV_DIM = KV * D  # 256


def comms(seg, key):
    return [(c.op, c.dim, c.size_bytes) for c in getattr(seg, key)]


def tp_rule(tp: int, sp: bool, size: int) -> tuple[list, list]:
    """Megatron's f / g collectives per block sub-layer (forward, backward): forward
    [all_gather if sp] + [reduce_scatter if sp else all_reduce]; backward the same."""
    if tp == 1:
        return [], []
    ops = (["all_gather"] if sp else []) + ["reduce_scatter" if sp else "all_reduce"]
    one = sorted((op, "tp", size) for op in ops)
    return one, one


@pytest.mark.parametrize("tp", [1, 2, 8])
@pytest.mark.parametrize("sp", [False, True])
@pytest.mark.parametrize("name", ["llama2-70b", "gpt3-1.3b", "t5-small"])
def test_tp_comms_equal_what_the_schedule_issued(name, tp, sp):
    arch = get_preset(name)
    s, b, e = 512, 2, 2
    segs = layer_segments(arch, s, b, True, causal=True, dtype_bytes=e, tp=tp, sp=sp)
    size = b * s * arch.hidden_size * e  # Context.tp_bytes: b x s x h x activation bytes
    fwd_rule, bwd_rule = tp_rule(tp, sp, size)
    for seg in segs:
        assert sorted(comms(seg, "before") + comms(seg, "after")) == fwd_rule
        assert sorted(comms(seg, "bwd_before") + comms(seg, "bwd_after")) == bwd_rule
    # Order: f at the input, g at the output (Megatron); backward mirrors.
    if tp > 1 and sp:
        assert [c.op for c in segs[0].before] == ["all_gather"]
        assert [c.op for c in segs[0].after] == ["reduce_scatter"]
        assert [c.op for c in segs[0].bwd_before] == ["all_gather"]
        assert [c.op for c in segs[0].bwd_after] == ["reduce_scatter"]
    if tp > 1 and not sp:
        assert segs[0].before == () and segs[0].bwd_before == ()
        assert [c.op for c in segs[0].after] == ["all_reduce"]
        assert [c.op for c in segs[0].bwd_after] == ["all_reduce"]


def test_new_keywords_at_their_defaults_change_nothing():
    arch = get_preset("llama2-7b")
    base = layer_segments(arch, 2048, 1, True, causal=True, tp=2, sp=True)
    same = layer_segments(
        arch,
        2048,
        1,
        True,
        causal=True,
        tp=2,
        sp=True,
        index=None,
        cp=1,
        cp_comm="ring",
        ep=1,
        etp=1,
        load_imbalance=1.0,
    )
    assert same == base
    assert [g.name for g in base] == ["attention", "mlp"]
    # A dense block of an MoE model (first_dense_layers) is the dense model's block.
    moe = replace(
        LLAMA,
        moe=MoE(
            num_experts=8, experts_per_token=2, expert_ffn_hidden_size=1024, first_dense_layers=1
        ),
    )
    assert layer_ops(moe, S, B, True, index=0, ep=4) == layer_ops(LLAMA, S, B, True)
    assert layer_ops(moe, S, B, True, index=None) == layer_ops(LLAMA, S, B, True)


def test_cp_ring_kv_bytes_per_layer():
    cp, tp, e = 4, 2, 2
    segs = layer_segments(LLAMA, S, B, True, causal=True, tp=tp, sp=True, cp=cp)
    assert [g.name for g in segs] == ["attention_in", "attention_core", "attention_out", "mlp"]
    core = segs[1]
    (ring,) = core.before
    # One step's block: this rank's K and V, b x s/cp x 2 x kv_dim/tp x e.
    block = B * (S // cp) * 2 * (KV_DIM // tp) * e
    assert ring == Comm("ring_exchange", "cp", block, steps=cp - 1, overlapped=True)
    # Per rank per layer: (cp - 1) x b x s/cp x 2 x kv_dim/tp x e = 3 x 2 x 1024 x 2 x 128 x 2.
    assert ring.steps * ring.size_bytes == 3 * 2 * 1024 * 2 * 128 * 2
    # Backward sends K/V and dK/dV (TE AttnFuncWithCPAndKVP2P): twice the bytes.
    (back,) = core.bwd_before
    assert back == Comm("ring_exchange", "cp", 2 * block, steps=cp - 1, overlapped=True)
    assert core.after == () and core.bwd_after == ()
    # The tp collectives move to the sub-layer's ends, on b x s/cp x h.
    size = B * (S // cp) * H * e
    assert comms(segs[0], "before") == [("all_gather", "tp", size)]
    assert comms(segs[0], "bwd_after") == [("reduce_scatter", "tp", size)]
    assert comms(segs[2], "after") == [("reduce_scatter", "tp", size)]
    assert comms(segs[2], "bwd_before") == [("all_gather", "tp", size)]


def test_cp_all_gather_and_all_to_all_comms():
    cp, tp, e, s_loc = 2, 2, 2, S // 2
    segs = layer_segments(LLAMA, S, B, True, causal=True, tp=tp, cp=cp, cp_comm="all-gather")
    core = segs[1]
    kv_full = B * S * (KV_DIM // tp) * e  # K (or V) of the whole sequence on this tp rank
    assert comms(core, "before") == [("all_gather", "cp", kv_full)] * 2
    assert comms(core, "bwd_before") == [("all_gather", "cp", kv_full)] * 2  # re-gathered
    assert comms(core, "bwd_after") == [("reduce_scatter", "cp", kv_full)] * 2  # dK, dV
    segs = layer_segments(LLAMA, S, B, True, causal=True, tp=tp, cp=cp, cp_comm="all-to-all")
    core = segs[1]
    q, kv, o = B * s_loc * (H // tp) * e, B * s_loc * (KV_DIM // tp) * e, B * s_loc * (H // tp) * e
    assert comms(core, "before") == [("all_to_all", "cp", x) for x in (q, kv, kv)]
    assert comms(core, "after") == [("all_to_all", "cp", o)]
    assert comms(core, "bwd_before") == [("all_to_all", "cp", o)]
    assert comms(core, "bwd_after") == [("all_to_all", "cp", x) for x in (q, kv, kv)]
    # Ulysses needs the heads to divide by tp x cp: 16 heads, tp 4 x cp 8 = 32.
    with pytest.raises(ValueError, match="tp x cp"):
        layer_segments(LLAMA, S, B, True, tp=4, cp=8, cp_comm="all-to-all")


@pytest.mark.parametrize("cp_comm", ["ring", "all-gather", "all-to-all"])
def test_cp_attention_is_one_cp_th_of_the_causal_work(cp_comm):
    cp, tp = 4, 2
    full = next(
        o for o in layer_ops(LLAMA, S, B, True, causal=True, tp=tp) if o.kind == "attention"
    )
    # Causal flash forward on the whole sequence, one tp rank: 4 b s^2 (a/tp) d / 2.
    assert full.flops == 4 * B * S * S * (A // tp) * D / 2
    ops = layer_ops(LLAMA, S, B, True, causal=True, tp=tp, cp=cp, cp_comm=cp_comm)
    (core,) = (o for o in ops if o.kind == "attention")
    assert core.flops == 4 * B * S * S * (A // tp) * D / 2 / cp
    # Every GEMM and token-wise op runs on s/cp tokens: the QKV GEMM is b s/cp x (q + 2kv) x h.
    qkv = next(o for o in ops if o.name == "qkv_proj")
    assert qkv.gemm == (B * S // cp, (H + 2 * KV_DIM) // tp, H)
    norm = next(o for o in ops if o.name == "attn_norm")
    assert norm.bytes_moved == 2 * B * (S // cp) * H * 2
    bwd = next(o for o in backward_ops(ops) if o.kind == "attention")
    assert bwd.flops == 2.5 * core.flops


def test_cp_validation():
    with pytest.raises(ValueError, match="2 x cp"):
        layer_segments(LLAMA, 4100, 1, True, cp=4)  # 4100 is not a multiple of 8
    with pytest.raises(ValueError, match="cp_comm"):
        layer_segments(LLAMA, S, 1, True, cp=2, cp_comm="p2p")
    with pytest.raises(ValueError, match="encoder-decoder"):
        layer_segments(get_preset("t5-small"), 512, 1, True, cp=2)
    with pytest.raises(ValueError, match="op"):
        Comm("broadcast", "tp", 1)
    with pytest.raises(ValueError, match="dim"):
        Comm("all_reduce", "dp", 1)


@pytest.mark.parametrize("sp", [False, True])
def test_the_embedding_and_the_head_carry_their_tensor_parallel_collectives(sp):
    # Megatron: the vocabulary-parallel lookup is summed after the embedding (all-reduce, or a
    # reduce-scatter into the sequence-parallel region whose backward all-gathers); the head's
    # logits GEMM is column-parallel (f: an all-gather with SP, whose backward reduce-scatters;
    # without SP identity forward, all-reduce backward). b x s x h x 2 bytes each.
    arch = get_preset("llama2-7b")
    size = 2 * 1024 * 4096 * 2
    emb = embedding_segment(arch, 1024, 2, 2, dropout=False, tp=4, sp=sp)
    head = head_segment(arch, 1024, 2, 2, tp=4, sp=sp)
    names = lambda comms: [(c.op, c.dim, c.size_bytes) for c in comms]
    if sp:
        assert (names(emb.after), names(emb.bwd_before)) == (
            [("reduce_scatter", "tp", size)],
            [("all_gather", "tp", size)],
        )
        assert (names(head.before), names(head.bwd_after)) == (
            [("all_gather", "tp", size)],
            [("reduce_scatter", "tp", size)],
        )
    else:
        assert (names(emb.after), names(emb.bwd_before)) == ([("all_reduce", "tp", size)], [])
        assert (names(head.before), names(head.bwd_after)) == ([], [("all_reduce", "tp", size)])
    assert not (emb.before or emb.bwd_after or head.after or head.bwd_before)
    one = embedding_segment(arch, 1024, 2, 2, tp=1, sp=False)
    assert not (one.before or one.after or one.bwd_before or one.bwd_after)
