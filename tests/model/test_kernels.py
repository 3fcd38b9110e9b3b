"""Memory-bound kernels as an implementation runs them (model/kernels.py, training.kernels):
bytes worked out by hand from the code each implementation runs (transformers' LlamaRMSNorm,
apply_rotary_pos_emb and LlamaMLP; torch's F.cross_entropy on fp32 logits; Megatron's
vocab_parallel_cross_entropy), never from the program's output."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.execution.step import simulate_step
from simulator.model.ops import backward_ops, head_ops, layer_ops
from simulator.model.presets import get_preset
from tests.helpers import cluster_of, make_scenario

LLAMA = get_preset("llama2-70b")  # RMSNorm, RoPE, SwiGLU; GQA: 64 query and 8 key/value heads
H, F, HD = 8192, 28672, 128
Q, KV = 64 * HD, 8 * HD
S, E = 4096, 2  # tokens of one micro-batch, bf16 activations


def by_name(ops):
    return {o.name: o for o in ops}


def test_eager_rmsnorm_moves_4e_plus_28_bytes_per_element():
    # to(float32) e+4, pow 8, mean 4, x * rsqrt 8, to(bf16) 4+e, weight * x 2e: 36 for bf16.
    eager = by_name(layer_ops(LLAMA, S, 1, True, kernels="eager"))
    fused = by_name(layer_ops(LLAMA, S, 1, True, kernels="megatron"))
    for name in ("attn_norm", "mlp_norm"):
        assert eager[name].bytes_moved == S * H * 36
        assert fused[name].bytes_moved == S * H * 2 * E


def test_layernorm_is_one_kernel_either_way():
    mpt = get_preset("mpt-7b")  # LayerNorm, GELU, learned positions (the benchmark yamls): no RoPE
    eager = layer_ops(mpt, 2048, 1, True, kernels="eager")
    fused = layer_ops(mpt, 2048, 1, True, kernels="megatron")
    assert eager == fused
    assert "rope" not in {o.name for o in eager}


def test_rope_reads_and_writes_q_and_k():
    # Eager: neg (e) + cat (2e) + two products (2e each) + add (3e) = 10e per element of Q and K;
    # a fused kernel reads and writes them once (2e).
    for kernels, per in (("eager", 10 * E), ("megatron", 2 * E), ("compiled", 2 * E)):
        rope = by_name(layer_ops(LLAMA, S, 1, True, kernels=kernels))["rope"]
        assert rope.bytes_moved == S * (Q + KV) * per
    # Split over tp = 8: each rank rotates its 8 query heads and 1 key/value head.
    rope = by_name(layer_ops(LLAMA, S, 1, True, tp=8, kernels="megatron"))["rope"]
    assert rope.bytes_moved == S * (Q + KV) // 8 * 2 * E


def test_eager_swiglu_adds_a_pass():
    # SiLU (read, write) then the product (read two, write one): 5e where fused moves 3e.
    eager = by_name(layer_ops(LLAMA, S, 1, True, kernels="eager"))["mlp_act"]
    fused = by_name(layer_ops(LLAMA, S, 1, True, kernels="megatron"))["mlp_act"]
    assert (eager.bytes_moved, fused.bytes_moved) == (S * F * 5 * E, S * F * 3 * E)


@pytest.mark.parametrize(
    "kernels, forward, backward",
    [
        # cast (e + 4), log_softmax (4 + 4); nll_loss's dense grad (4), log_softmax's backward
        # (4 + 4 + 4), the cast back (4 + e)
        ("eager", E + 4 + 8, 4 + 12 + 4 + E),
        # cast (e + 4), max (4), subtract (8), exp (8), sum (4), divide (8); in-place multiply
        # (8), the cast back (4 + e)
        ("megatron", E + 4 + 4 + 8 + 8 + 4 + 8, 8 + 4 + E),
        # one pass each way
        ("compiled", E + 4, 2 * (E + 4)),
    ],
)
def test_cross_entropy_bytes_per_logit(kernels, forward, backward):
    v = LLAMA.vocab_size
    ops = head_ops(LLAMA, S, 1, kernels=kernels)
    loss = by_name(ops)["cross_entropy"]
    assert loss.bytes_moved == S * v * forward
    back = by_name(backward_ops(ops))["cross_entropy.backward"]
    assert back.bytes_moved == S * v * backward


def scenario(**training):
    t = {"seq_len": 2048, "micro_batch_size": 1, "strategy": "zero3", **training}
    return make_scenario(model={"preset": "llama2-7b"}, training=t, cluster=cluster_of(8))


def test_defaults_follow_the_framework():
    assert scenario().training.kernels == "eager"
    assert scenario(framework="pytorch-fsdp2").training.kernels == "eager"
    assert scenario(framework="megatron", strategy="zero1").training.kernels == "megatron"
    assert scenario(kernels="compiled").training.kernels == "compiled"


def test_eager_kernels_take_longer():
    eager = simulate_step(scenario()).time_s
    compiled = simulate_step(scenario(kernels="compiled")).time_s
    assert eager > compiled


def test_an_unknown_implementation_is_refused():
    with pytest.raises(UserError) as e:
        scenario(kernels="triton")
    assert any(p.path == "training.kernels" for p in e.value.problems)
