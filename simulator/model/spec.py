"""The model of a scenario: a full architecture, or a bare parameter count with an assumed
shape. The one place a bare count gets its shape (layers, hidden size, heads)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.model.architecture import Architecture, active_param_count, param_count

# GPT-3 (Brown et al. 2020, Table 2.1) keeps d_model / n_layers near 128 (175B: 12288/96);
# with P ~ 12 L h^2 (Kaplan et al. 2020, Sec 2.1) that gives h = (128 P / 12)^(1/3).
ASPECT_RATIO = 128
# GPT-3's head size (Table 2.1: d_head = 128 from 6.7B up).
HEAD_DIM = 128


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The model: `arch` is the real architecture, or None for a bare parameter count (then the
    per-layer math uses `shape`, a GPT-3-shaped stand-in without embeddings)."""

    name: str
    params: int
    num_layers: int
    hidden_size: int
    arch: Architecture | None = None
    shape_estimated: bool = False
    # Training settings the scenario left out and took from its preset, e.g. (("dropout", False),).
    preset_defaults: tuple[tuple[str, bool], ...] = ()
    # Parameters one token uses (architecture.active_param_count, token table included);
    # None: all of `params` (a dense model or a bare count).
    active_params: int | None = None

    @property
    def shape(self) -> Architecture:
        """The architecture for per-layer math: the real one, or the stand-in."""
        return self.arch if self.arch is not None else stand_in(self.num_layers, self.hidden_size)

    @property
    def kind(self) -> str:
        return self.arch.kind if self.arch is not None else "decoder"


def from_architecture(arch: Architecture, name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        params=param_count(arch),
        num_layers=arch.total_layers,
        hidden_size=arch.hidden_size,
        arch=arch,
        active_params=active_param_count(arch) if arch.moe is not None else None,
    )


def from_params(params: int, layers: int | None = None, hidden: int | None = None) -> ModelSpec:
    """A bare parameter count; the layer count and hidden size are estimated when not given."""
    layers, hidden, estimated = shape_for(params, layers, hidden)
    return ModelSpec(
        name=f"{params / 1e9:g}B params",
        params=params,
        num_layers=layers,
        hidden_size=hidden,
        shape_estimated=estimated,
    )


def shape_for(params: int, layers: int | None, hidden: int | None) -> tuple[int, int, bool]:
    """(layers, hidden size, estimated?) for a bare parameter count."""
    if layers and hidden:
        return layers, hidden, False
    if hidden:
        return max(1, round(params / (12 * hidden**2))), hidden, True
    if layers:
        return layers, max(64, round(math.sqrt(params / (12 * layers)))), True
    h = (ASPECT_RATIO * params / 12) ** (1 / 3)
    h = max(64, round(h / 64) * 64)
    return max(1, round(params / (12 * h * h))), h, True


def stand_in(num_layers: int, hidden_size: int) -> Architecture:
    """A GPT-3-like decoder of this shape: heads of HEAD_DIM (fewer if hidden is small), 4h FFN.
    vocab_size=1: a bare count's vocabulary is unknown, so its edges are not modelled."""
    heads = max(1, hidden_size // HEAD_DIM)
    while hidden_size % heads:
        heads -= 1
    return Architecture(
        kind="decoder",
        num_layers=num_layers,
        hidden_size=hidden_size,
        num_heads=heads,
        ffn_hidden_size=4 * hidden_size,
        vocab_size=1,
    )
