"""A preset's training defaults (dropout) apply when the scenario does not say, the scenario's
own setting wins, and the report says which defaults it took.

Activation memory is checked against Korthikanti et al. 2022 (arXiv 2205.05198) Sec 4.1: dropout
keeps a 1-byte mask of s*b*h after attention and after the MLP in every layer, one of s*b*h after
the embedding (Sec 4.3), and without flash attention a*s^2*b for the attention-probability mask
plus 2*a*s^2*b for the dropped-out probabilities (16-bit), which feed attention-over-values.
"""

from __future__ import annotations

import pytest

from simulator.execution.memory import memory_breakdown
from simulator.model.activations import activation_bytes_per_layer
from simulator.model.presets import get_preset
from simulator.report.document import build_report
from simulator.report.text import _header
from simulator.scenario.load import scenario_from_dict

pytestmark = pytest.mark.timeout(30)

S, B = 4096, 1
H, A, L = 4096, 32, 32  # llama2-7b: hidden, heads, layers


def scenario(preset: str = "llama2-7b", **training):
    return scenario_from_dict(
        {"model": {"preset": preset}, "training": {"strategy": "zero3", "seq_len": S, **training}}
    )


def test_llama_trains_without_dropout_unless_the_file_says():
    assert scenario().training.dropout is False
    assert scenario(dropout=True).training.dropout is True
    assert scenario("gpt3-1.3b", seq_len=2048).training.dropout is True
    assert scenario_from_dict({"model": {"params": 7e9}}).training.dropout is True  # no preset: on


def test_the_dropout_masks_per_layer_by_hand():
    arch = get_preset("llama2-7b")
    flash = [activation_bytes_per_layer(arch, S, B, "none", True, dropout=d) for d in (True, False)]
    assert flash[0] - flash[1] == 2 * S * B * H  # the two 1-byte masks
    plain = [
        activation_bytes_per_layer(arch, S, B, "none", False, dropout=d) for d in (True, False)
    ]
    assert plain[0] - plain[1] == 2 * S * B * H + A * S * S * B + 2 * A * S * S * B


def test_a_scenario_saves_the_masks_of_every_layer_and_the_embedding():
    # zero3 on 8 GPUs, one micro-batch, flash attention: 32 layers x 2sbh + the embedding's sbh.
    saved = (
        memory_breakdown(scenario(dropout=True)).activations_bytes
        - memory_breakdown(scenario()).activations_bytes
    )
    assert saved == L * 2 * S * B * H + S * B * H


def test_the_report_says_which_defaults_came_from_the_preset():
    s = scenario()
    report = build_report(s, memory_breakdown(s))
    assert report["model"]["preset_defaults"] == {"dropout": False}
    assert "defaults from preset llama2-7b: dropout off" in "\n".join(
        _header(report)
    )  # the text report's header
    given = scenario(dropout=False)
    assert build_report(given, memory_breakdown(given))["model"]["preset_defaults"] == {}
