"""Model FLOPs: the MFU numerator and the 6ND training compute (pure functions).

FLOPs are floats, 2 per multiply-accumulate. Attention scores count the full s x s matrix,
never halved for causal masking (Megatron, Narayanan et al. 2021 Sec 5.1; llm-foundry MFU).
Encoder-decoder: "per token" means per sequence position (one encoder token plus one
decoder token).
"""

from __future__ import annotations

from simulator.model.architecture import Architecture, _check_int, param_count


def flops_params(arch: Architecture) -> int:
    """The N of 6N: every parameter except a token table used only as a lookup.

    llm-foundry ComposerMPTCausalLM.flops_per_batch (llmfoundry/models/mpt/modeling_mpt.py)
    uses n_active_params and subtracts wte only when embeddings are untied; a tied table is
    the output GEMM and counts. Position tables and norms stay in, as there.
    """
    used_as_head = arch.lm_head and arch.tied_embeddings
    return param_count(arch) - (0 if used_as_head else arch.vocab_size * arch.hidden_size)


def model_flops_per_token(arch: Architecture, seq_len: int, training: bool = True) -> float:
    """Model FLOPs per token (MFU numerator), forward x3 when training.

    llm-foundry scripts/train/benchmarking/README.md (MFU): forward = 2 * n_params per token
    plus attn_flops_per_seq = n_layers * 2 * 2 * d_model * seq_len**2, i.e. 4*L*d*s per
    token; training = 3 x forward (= 6N + 12*L*d*s; PaLM, Chowdhery et al. 2022, App. B).
    d_model is generalized to num_heads * head_dim. Encoder-decoder: the decoder adds
    cross-attention over seq_len encoder tokens, so the attention term is
    4*s*q_dim*(L_enc + 2*L_dec) per position.
    """
    _check_int("seq_len", seq_len, minimum=1)
    attn_layers = arch.num_layers + 2 * arch.decoder_layers
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
