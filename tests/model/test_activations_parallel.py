"""Activation memory with tensor and sequence parallelism and recomputation, per layer, exactly as
the formulas of Korthikanti et al. 2022 (arXiv 2205.05198) Table 2 give them.

The paper's model: a GPT layer (f = 4h, multi-head attention, dropout), 16-bit activations,
no flash attention (the softmax and its dropout are stored). Shapes are chosen so every term
is a whole number of bytes.
"""

from __future__ import annotations

import pytest

from simulator.model.activations import activation_bytes_per_layer
from simulator.model.architecture import Architecture

S, B, H, A = 2048, 4, 6144, 64  # the 22B model of Table 3 (a = 64, h = 6144), s = 2048
GPT = Architecture(
    kind="decoder",
    num_layers=48,
    hidden_size=H,
    num_heads=A,
    ffn_hidden_size=4 * H,
    vocab_size=51200,
)
SBH = S * B * H


def per_layer(checkpointing: str, tp: int, sp: bool) -> int:
    return activation_bytes_per_layer(GPT, S, B, checkpointing, flash_attention=False, tp=tp, sp=sp)


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_table_2_rows(t):
    ash = 5 * A * S / H  # the 5as/h term
    # no parallelism (t = 1) / tensor parallel: sbh (10 + 24/t + 5as/(ht))
    assert per_layer("none", t, False) == pytest.approx(SBH * (10 + 24 / t + ash / t))
    # tensor + sequence parallel: sbh (34/t + 5as/(ht))
    assert per_layer("none", t, True) == pytest.approx(SBH * (34 / t + ash / t))
    # tensor parallel + selective recompute: sbh (10 + 24/t)
    assert per_layer("selective", t, False) == pytest.approx(SBH * (10 + 24 / t))
    # tensor + sequence parallel + selective recompute: sbh (34/t)
    assert per_layer("selective", t, True) == pytest.approx(SBH * 34 / t)
    # full recompute: sbh (2), the layer's input (Megatron-Core keeps the s/t slice with SP)
    assert per_layer("full", t, False) == 2 * SBH
    assert per_layer("full", t, True) == pytest.approx(2 * SBH / t)


def test_no_parallelism_is_equation_1():
    assert per_layer("none", 1, False) == pytest.approx(SBH * (34 + 5 * A * S / H), rel=1e-12)


def test_fp8_keeps_gemm_inputs_in_one_byte():
    """fp8-mixed (Transformer Engine keeps a Linear's fp8-cast input for its weight gradient),
    flash attention, no dropout, tp 1. Per layer, in sbh:
      16 bits: Q 2 + K, V 4 + out-projection input 2 + QKV input 2 + MLP fc1 output 8 +
               activation output 8 + MLP input 2 + two norm inputs 4 = 32
      fp8:     Q 2 + K, V 4 + out-projection input 2 (flash attention's output) + 1 (its fp8
               copy) + QKV input 1 + fc1 output 8 + activation output 4 + MLP input 1 +
               norm inputs 4 = 27"""

    def layer(**kw) -> int:
        return activation_bytes_per_layer(GPT, S, B, "none", True, dropout=False, **kw)

    assert layer() == 32 * SBH
    assert layer(gemm_input_bytes=2) == 32 * SBH
    assert layer(gemm_input_bytes=1) == 27 * SBH
    # With sequence parallelism over 8 ranks every term is split.
    assert (
        activation_bytes_per_layer(
            GPT, S, B, "none", True, dropout=False, tp=8, sp=True, gemm_input_bytes=1
        )
        == 27 * SBH // 8
    )
    # Selective recompute of the norms drops their two outputs: the fp8 QKV and MLP inputs.
    assert (
        activation_bytes_per_layer(
            GPT,
            S,
            B,
            "selective",
            True,
            dropout=False,
            gemm_input_bytes=1,
            recompute=("core_attn", "layernorm"),
        )
        == 25 * SBH
    )
