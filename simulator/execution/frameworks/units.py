"""The parameter tensors of a stage's units (simulator/model/tensors.py), by unit name as the
schedule names them (a block's name, "embedding", "head"); a tied output projection on the
embedding's stage is the embedding's tensor and appears under "embedding" only for sums."""

from __future__ import annotations

import dataclasses
import math

from simulator.execution import layout as layout_mod
from simulator.model.tensors import Module, Tensor, root_modules, unit_modules
from simulator.spec.specs import Scenario


def stage_modules(
    scenario: Scenario, stage: int, lay: layout_mod.Layout | None = None
) -> dict[str, tuple[Module, ...]]:
    """Every unit of the stage: its modules in forward order."""
    par = scenario.training.parallel
    lay = lay or layout_mod.model_layout(scenario.model, par, stage)
    out = {
        b.name: _named(
            b.name, unit_modules(lay.arch, b.name, b.stack, b.params, par.tp, par.ep, par.etp)
        )
        for b in lay.blocks
    }
    if lay.has_edges:
        tied_copy = par.pp > 1 and lay.head_params > 0
        emb, head = root_modules(lay.arch, par.tp, lay.embedding_params, lay.head_params, tied_copy)
        if emb:
            out["embedding"] = emb
        if head:
            out["head"] = head
    return out


def _named(unit: str, modules: tuple[Module, ...]) -> tuple[Module, ...]:
    """The block's modules and tensors under names unique in the model ("layers.3.mlp.up_proj")."""
    return tuple(
        dataclasses.replace(
            m,
            name=f"{unit}.{m.name}",
            tensors=tuple(Tensor(f"{unit}.{t.name}", t.numel, t.rows) for t in m.tensors),
        )
        for m in modules
    )


def own_tensors(
    modules: dict[str, tuple[Module, ...]], unit: str, expert: bool | None = None
) -> list[int]:
    """The element counts of a unit's tensors in backward order (reverse of forward), without a
    tensor the embedding owns (the tied output projection); with `expert`, only the routed
    experts' tensors (True) or only the others (False)."""
    shared = (
        {t.name for m in modules.get("embedding", ()) for t in m.tensors}
        if unit != "embedding"
        else set()
    )
    return [
        t.numel
        for m in reversed(modules[unit])
        if expert is None or getattr(m, "expert", False) == expert
        for t in reversed(m.tensors)
        if t.name not in shared
    ]


def padded(numel: int, multiple: int) -> int:
    """numel rounded up to a multiple (a flat buffer padded so that n ranks get equal shards)."""
    return math.ceil(numel / multiple) * multiple
