"""Model FLOPs: the MFU numerator and the 6ND training compute (pure functions).

FLOPs are floats, 2 per multiply-accumulate. Attention scores count the full s x s matrix,
never halved for causal masking (Megatron, Narayanan et al. 2021 Sec 5.1; llm-foundry MFU).
Encoder-decoder: "per token" means per sequence position (one encoder token plus one
decoder token).
"""

from __future__ import annotations

from simulator.model import moe_params as mp
from simulator.model.architecture import (
    Architecture,
    _check_int,
    active_param_count,
    block_params,
    moe_layer_count,
    mtp_block_index,
)


def flops_params(arch: Architecture) -> int:
    """The N of 6N: every parameter a token uses except a token table used only as a lookup.

    llm-foundry ComposerMPTCausalLM.flops_per_batch (llmfoundry/models/mpt/modeling_mpt.py)
    uses n_active_params and subtracts wte only when embeddings are untied; a tied table is
    the output GEMM and counts. Position tables and norms stay in, as there. An MoE model
    counts the experts_per_token routed experts a token is sent to, not all of them
    (active_param_count(arch, embedding=False)); a dense model's N is its parameter count.
    """
    return active_param_count(arch, embedding=False)


def attention_score_flops_per_layer(arch: Architecture, seq_len: int) -> float:
    """Forward FLOPs per token of one attention's scores and weighted sum, over the full s x s
    matrix: 2*s*q_dim for QK^T plus 2*s*q_dim for PV (= 4*s*q_dim). MLA: QK^T over
    head_dim + rope_head_dim per head, PV over v_head_dim (Megatron-LM
    num_floating_point_operations' MLA branch, without its causal halving)."""
    if arch.mla:
        a = arch.attention
        assert a is not None
        qk = arch.num_heads * (arch.head_size + a.rope_head_dim)
        return 2.0 * seq_len * qk + 2.0 * seq_len * arch.num_heads * mp.mla_v_head_dim(arch)
    return 4.0 * arch.q_dim * seq_len


def model_flops_per_token(arch: Architecture, seq_len: int, training: bool = True) -> float:
    """Model FLOPs per token (MFU numerator), forward x3 when training.

    llm-foundry scripts/train/benchmarking/README.md (MFU): forward = 2 * n_params per token
    plus attn_flops_per_seq = n_layers * 2 * 2 * d_model * seq_len**2, i.e. 4*L*d*s per
    token; training = 3 x forward (= 6N + 12*L*d*s; PaLM, Chowdhery et al. 2022, App. B).
    d_model is generalized to num_heads * head_dim. Encoder-decoder: the decoder adds
    cross-attention over seq_len encoder tokens, so the attention term is
    4*s*q_dim*(L_enc + 2*L_dec) per position.

    MoE: N is the active parameters (flops_params), so 6N counts the experts_per_token routed
    experts and the shared experts of each MoE layer. This is Megatron-LM's
    num_floating_point_operations (megatron/training/training.py, the formula behind the
    Megatron-Core MoE README's TFLOP/s, e.g. Mixtral 8x7B 468): 12 B s L h^2 [(1 + g/a + s/h)
    q_dim/h + (f/h) k (3/2 if swiglu) + shared + V/(2 L h)], i.e. 6 x (attention and active
    expert GEMM weights + output head) + 12 L q_dim s per token, with two differences: we also
    count the router (h x num_experts) and the norms as parameters (6 x (L (2h + h E) + h)
    for Mixtral, 1e-4 of the total), and the attention matrix in full (Megatron's current
    version halves it for causal masking; its 2024 versions did not). MLA's score term is
    attention_score_flops_per_layer. Each MTP module adds its block's and eh_proj's active
    parameters (in flops_params), its attention scores and one more pass of the shared
    output head (2 V h), as Megatron's `(mtp_num_layers + 1)` logits do.
    """
    _check_int("seq_len", seq_len, minimum=1)
    attn_layers = arch.num_layers + 2 * arch.decoder_layers
    if arch.mla or arch.mtp_layers:
        heads = arch.mtp_layers * (arch.vocab_size * arch.hidden_size if arch.lm_head else 0)
        attention = (attn_layers + arch.mtp_layers) * attention_score_flops_per_layer(arch, seq_len)
        forward = 2.0 * (flops_params(arch) + heads) + attention
    else:
        forward = 2.0 * flops_params(arch) + 4.0 * attn_layers * arch.q_dim * seq_len
    return 3.0 * forward if training else forward


def forward_flops_per_token(arch: Architecture, seq_len: int) -> float:
    return model_flops_per_token(arch, seq_len, training=False)


def six_n_d_flops(params: float, tokens: float) -> float:
    """Training compute C = 6*N*D (Kaplan et al. 2020 Sec 2.1; GPT-3 Table D.1)."""
    return 6.0 * float(params) * float(tokens)


def spec_flops_per_token(
    params: int, num_layers: int, hidden_size: int, seq_len: int, arch: Architecture | None
) -> float:
    """Model FLOPs per token of a scenario's model: the architecture's, or for a bare parameter
    count PaLM's 6N + 12 L h s (Chowdhery et al. 2022, App. B)."""
    if arch is not None:
        return model_flops_per_token(arch, seq_len)
    return 6.0 * params + 12.0 * num_layers * hidden_size * seq_len


def recompute_flops_per_token(
    block_params: int, attn_layers: int, q_dim: int, seq_len: int, checkpointing: str
) -> float:
    """Forward FLOPs recomputed in backward, per token, counted as model FLOPs count them.

    Full recompute re-runs every block's forward (2 per block parameter plus the attention
    scores, 4 s q_dim per layer); selective recompute re-runs only the attention core
    (Korthikanti et al. 2022, Sec 4.2). Hardware FLOPs = model FLOPs + these (PaLM App. B:
    HFU counts rematerialization), so HFU >= MFU always.
    """
    attention = 4.0 * attn_layers * q_dim * seq_len
    if checkpointing == "full":
        return 2.0 * block_params + attention
    if checkpointing == "selective":
        return attention
    return 0.0


def arch_recompute_flops_per_token(arch: Architecture, seq_len: int, checkpointing: str) -> float:
    """recompute_flops_per_token for an architecture, counting as model FLOPs count: an MoE
    block's active parameters (its experts_per_token routed experts) and MLA's score term.
    Per token of the whole model (every block of every stack and the MTP modules)."""
    attn_layers = arch.num_layers + 2 * arch.decoder_layers + arch.mtp_layers
    attention = attn_layers * attention_score_flops_per_layer(arch, seq_len)
    if checkpointing == "selective":
        return attention
    if checkpointing != "full":
        return 0.0
    stacks = [("decoder" if arch.kind == "decoder" else "encoder", arch.num_layers)]
    if arch.kind == "encoder-decoder":
        stacks.append(("decoder", arch.decoder_layers))
    blocks = sum(block_params(arch, stack, i) for stack, n in stacks for i in range(n))
    blocks += arch.mtp_layers * block_params(arch, "decoder", mtp_block_index(arch))
    if arch.moe is not None:
        blocks -= moe_layer_count(arch) * mp.inactive_expert_params(arch)
    return 2.0 * blocks + attention
