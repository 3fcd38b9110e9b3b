"""training.recompute_modules (Megatron-Core's --recompute-modules): resolved into TrainingSpec,
refused at its path with selective checkpointing absent, for unknown or repeated names and for
submodules the model lacks."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.model.activations import RECOMPUTE_MODULES
from tests.helpers import make_scenario

RC = "training.recompute_modules"


def problems(training: dict, model: dict | None = None) -> list[tuple[str, str]]:
    with pytest.raises(UserError) as exc:
        make_scenario(model, training)
    return [(p.path, f"{p.message} ({p.hint})") for p in exc.value.problems]


def sel(*names: str) -> dict:
    return {"activation_checkpointing": "selective", "recompute_modules": list(names)}


def test_default_and_given_lists_resolve():
    assert (
        make_scenario(None, {"activation_checkpointing": "selective"}).training.recompute_modules
        is None
    )
    s = make_scenario(None, sel("core_attn", "layernorm", "mlp"))
    assert s.training.recompute_modules == ("core_attn", "layernorm", "mlp")
    moe = make_scenario(
        {"preset": "deepseek-v3"}, sel(*RECOMPUTE_MODULES), {"topology": "dgx-h100"}
    )
    assert moe.training.recompute_modules == RECOMPUTE_MODULES


@pytest.mark.parametrize("ckpt", ["none", "full"])
def test_list_without_selective_is_refused(ckpt):
    found = problems({"activation_checkpointing": ckpt, "recompute_modules": ["layernorm"]})
    assert [p for p, _ in found] == [RC]
    assert "selective only" in found[0][1]


def test_unknown_name_names_the_closest():
    found = problems(sel("core_attn", "layernorms", "moe_activation"))
    assert [p for p, _ in found] == [f"{RC}.1", f"{RC}.2"]
    assert "'layernorm'" in found[0][1]
    assert "moe_act" in found[1][1]


def test_modules_a_dense_model_lacks_are_refused():
    found = problems(sel("layernorm", "moe_act", "mla_up_proj", "shared_experts", "moe"))
    assert [p for p, _ in found] == [f"{RC}.{i}" for i in (1, 2, 3, 4)]
    assert "no MoE layers" in found[0][1]
    assert "no MLA attention" in found[1][1]


def test_moe_model_without_shared_experts_or_dense_layers():
    found = problems(sel("moe_act", "shared_experts", "mlp"), {"preset": "mixtral-8x7b"})
    assert [p for p, _ in found] == [f"{RC}.1", f"{RC}.2"]
    assert "no shared experts" in found[0][1]
    assert "no dense MLP layer" in found[1][1]


def test_repeated_and_empty_lists():
    assert problems(sel("layernorm", "layernorm")) == [
        (f"{RC}.1", "'layernorm' is listed twice ()")
    ]
    assert [p for p, _ in problems(sel())] == [RC]
