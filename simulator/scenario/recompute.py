"""`training.recompute_modules` against the model and the checkpointing mode (Megatron-Core's
--recompute-modules)."""

from __future__ import annotations

from simulator.core.errors import Problem, did_you_mean
from simulator.model.activations import RECOMPUTE_MODULES
from simulator.model.architecture import is_moe_layer
from simulator.model.spec import ModelSpec
from simulator.spec.specs import TrainingSpec

_RC = "training.recompute_modules"


def check_recompute_modules(model: ModelSpec, t: TrainingSpec, problems: list[Problem]) -> None:
    """Megatron-Core's --recompute-modules: with selective checkpointing only, known names,
    each once, and submodules the model has (moe_act, moe and shared_experts need MoE
    layers, shared experts the latter; mla_up_proj MLA attention; mlp a dense MLP layer)."""
    names = t.recompute_modules
    if names is None:
        return
    if t.activation_checkpointing != "selective":
        problems.append(
            Problem(
                _RC,
                "applies to activation_checkpointing selective only "
                f"(it is {t.activation_checkpointing})",
                "set activation_checkpointing: selective, or remove the key",
            )
        )
        return
    if not names:
        problems.append(
            Problem(
                _RC,
                "no module is recomputed",
                "e.g. [core_attn], or activation_checkpointing: none",
            )
        )
    arch = model.arch
    lacks: dict[str, str] = {}
    if arch is not None and not model.shape_estimated:
        moe = arch.moe
        if moe is None:
            for name in ("moe_act", "moe", "shared_experts"):
                lacks[name] = "no MoE layers"
        elif not moe.shared_experts:
            lacks["shared_experts"] = "no shared experts"
        if not arch.mla:
            lacks["mla_up_proj"] = "no MLA attention"
        if moe is not None and all(is_moe_layer(arch, i) for i in range(arch.num_layers)):
            lacks["mlp"] = "no dense MLP layer (every layer is MoE: use moe or moe_act)"
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name not in RECOMPUTE_MODULES:
            problems.append(
                Problem(
                    f"{_RC}.{i}",
                    f"{name!r} is not a Megatron-Core recompute module",
                    did_you_mean(name, RECOMPUTE_MODULES),
                )
            )
        elif name in seen:
            problems.append(Problem(f"{_RC}.{i}", f"{name!r} is listed twice"))
        elif name in lacks:
            problems.append(
                Problem(
                    f"{_RC}.{i}",
                    f"{model.name} has {lacks[name]}: nothing for {name} to recompute",
                    f"remove {name}",
                )
            )
        seen.add(name)
