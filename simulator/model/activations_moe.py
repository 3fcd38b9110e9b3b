"""Activation terms of MLA attention and of MoE MLPs, per block, derived term by term the way
Korthikanti et al. 2022 Sec 4.1 derives a GPT block's (activations.py), pure functions.

Each function returns byte counts in the classes of activations._split: `shared` terms are
split over the tp ranks, `replicated` ones kept whole by plain tensor parallelism and split
too with sequence parallelism; MoE's routed terms are returned per rank (`rank`), already
counted on the rank's own tokens and its busiest experts.
"""

from __future__ import annotations

from simulator.model.architecture import Architecture
from simulator.model.ops_moe import check_expert_parallel, expert_tokens


def mla_attention_terms(
    arch: Architecture,
    s: int,
    s_scores: int,
    b: int,
    e: int,
    mask: int,
    dropout: bool,
    keep_scores: bool,
    *,
    up_proj: bool = True,
    gemm_input_bytes: int | None = None,
    proj_in_bytes: int | None = None,
) -> tuple[int, int]:
    """(shared, replicated) bytes of one MLA attention sub-layer on s tokens (s_scores keys).

    Megatron-Core MLASelfAttention (multi_latent_attention.py), each tensor kept for backward:
      replicated (the replicated down path, s/tp tokens with sequence parallelism): the down
        projections' input (the norm output) e*sbh; the q latent twice, as the q RMSNorm's
        input and the q up projection's input, 2e*sb*q_lora_rank (none without q_lora_rank,
        where the q projection reads the norm output already counted); the kv latent twice,
        2e*sb*kv_lora_rank; the dropout mask sbh
      shared (split with the heads): Q and K of heads x (head_dim + rope_head_dim) and V of
        heads x v_head_dim, kept by the attention core, e*sb*a*(2(d + r) + d_v); the output
        projection's input e*sb*a*d_v; the score terms (softmax output, dropout mask and
        output: a*s*s_kv*b*(2e + 1)) without flash attention or selective recompute.
    The RoPE part of K (k_pos_emb) needs no copy: the rotation's backward needs no input.
    up_proj=False (--recompute-modules mla_up_proj: Megatron-Core MLASelfAttention's
    qkv_up_checkpoint, output-discarding checkpointing of the q / kv up projections and the
    RoPE application) drops Q, K and V, e*sb*a*(2(d + r) + d_v): they are re-projected from
    the latents, which stay, before the attention core's backward.
    gemm_input_bytes (None: e) is the element size of a GEMM input kept only for its weight
    gradient (fp8-mixed: 1, activations.activation_bytes_per_layer): the down projections'
    input and the up projections' (one of each latent's two copies); proj_in_bytes (None: e)
    the output projection input's, flash attention's output and, under fp8, its fp8 copy.
    """
    a = arch.attention
    assert a is not None
    heads, d, r = arch.num_heads, arch.head_size, a.rope_head_dim
    d_v = d if a.v_head_dim is None else a.v_head_dim
    g = e if gemm_input_bytes is None else gemm_input_bytes
    proj_in = e if proj_in_bytes is None else proj_in_bytes
    sb = s * b
    latents = (e + g) * ((a.q_lora_rank or 0) + a.kv_lora_rank)  # a norm's input, a GEMM's
    replicated = g * sb * arch.hidden_size + mask * sb * arch.hidden_size + sb * latents
    shared = (e * sb * heads * (2 * (d + r) + d_v) if up_proj else 0) + proj_in * sb * heads * d_v
    if keep_scores:
        shared += (e + mask + (e if dropout else 0)) * heads * s * s_scores * b
    return shared, replicated


def moe_mlp_terms(
    arch: Architecture,
    s: int,
    b: int,
    e: int,
    mask: int,
    tp: int,
    sp: bool,
    ep: int,
    etp: int,
    load_imbalance: float,
    *,
    recompute: frozenset[str] = frozenset(),
    gemm_input_bytes: int | None = None,
) -> tuple[int, int, int]:
    """(shared, replicated, rank) bytes of one MoE MLP on s tokens of b sequences (the norm
    input, counted with the block's two norm inputs, excluded).

    Megatron-Core's MoE layer (ops_moe.moe_segments), each tensor kept for backward:
      replicated: the MoE input (the pre-MLP norm output) e*sbh, read by the router GEMM, the
        permutation and the shared experts; the dropout mask after the MLP sbh
      rank, on the rank's T tokens (b*s, divided by tp with sequence parallelism) and its
        busiest experts' M = local experts x tokens per local expert (ops_moe.expert_tokens;
        T x top-k with ep = etp = 1 and balanced load):
        the router's fp32 probabilities [T, num_experts] (softmax output) 4*T*E and its bool
        routing map T*E; the permuted tokens, the experts' fc1 input, e*M*h; the experts'
        fc1 output(s) (gated: gate and up) and activation output, (2 or 1)*e*M*f_e/etp +
        e*M*f_e/etp; the M tokens' routing probabilities, e*M (the logits' dtype), which the
        experts' weighted activation applies and keeps for their gradient: Megatron-Core
        0.13 moved "the probs multiplication from unpermutation to activation function of
        GroupedMLP" (MoE README; experts.py bias_act_func, weighted_bias_swiglu_impl), so the
        unpermute of every dispatcher sums already weighted outputs and keeps nothing (before
        0.13 it kept its T x top-k inputs, e*T*k*h)
      shared: the shared experts as a dense MLP of n_shared x their width f_s:
        (2 or 1)*e*sb*f_s + g*sb*f_s, split over tp like the dense MLP.
    `gemm_input_bytes` (None: e; fp8-mixed: 1, Transformer Engine's GroupedLinear and Linear
    keeping their inputs quantized) is the element size of the experts' and the shared
    experts' fc1 and fc2 inputs; under fp8 the shared experts' fc1 keeps its own fp8 copy of
    the MoE input, whose 16-bit original the router keeps (replicated, g*sbh more).
    `recompute` (--recompute-modules, Megatron-Core) drops: moe_act, the experts' activation
    output e*M*f_e/etp (experts.py: output-discarding checkpointing of the activation, re-run
    from the fc1 output before fc2's backward); shared_experts, the shared experts' terms
    (shared_experts.py: the checkpointed MLP keeps only its input, the MoE input); moe, every
    rank and shared term (moe_layer.py: the checkpointed layer keeps only its input).
    """
    moe = arch.moe
    assert moe is not None
    check_expert_parallel(moe, ep, etp, load_imbalance)
    h, n_e = arch.hidden_size, moe.num_experts
    g = e if gemm_input_bytes is None else gemm_input_bytes
    sb = s * b
    fc1 = 2 if arch.gated else 1
    replicated = e * sb * h + mask * sb * h
    t = -(-sb // tp) if sp else sb
    local, m = expert_tokens(moe, t, ep, etp, load_imbalance)
    tokens, f_e = local * m, moe.expert_ffn_hidden_size // etp
    rank = (4 + 1) * t * n_e  # router probabilities and routing map
    act_out = 0 if "moe_act" in recompute else 1
    rank += g * tokens * h + fc1 * e * tokens * f_e + act_out * g * tokens * f_e  # fc1, fc2 in
    rank += e * tokens  # the probabilities the weighted activation applies
    shared = 0
    if "moe" in recompute:
        rank = 0
    elif moe.shared_experts and "shared_experts" not in recompute:
        f_s = moe.shared_experts * (moe.shared_expert_ffn_hidden_size or moe.expert_ffn_hidden_size)
        shared = fc1 * e * sb * f_s + g * sb * f_s
        if g != e:
            replicated += g * sb * h  # the shared fc1's fp8 copy of the MoE input
    return shared, replicated, rank
