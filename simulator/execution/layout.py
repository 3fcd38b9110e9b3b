"""The model as the units a data-parallel framework wraps and one GPU runs.

Blocks are the FSDP wrap units (PyTorch FSDP `transformer_auto_wrap_policy`; DeepSpeed
ZeRO-3 fetches per submodule, which for a transformer is per block). Everything else -
embeddings, final norms, the (possibly tied) output head, a BERT pooler - belongs to the
root unit, which FSDP keeps unsharded from the start of forward to the end of backward
(FSDP does not reshard the root module after forward; the tied output projection needs
the embedding weights at both ends of the step).

Both the analytic memory model (memory.py) and the strategies' schedules read these
sizes, so the timeline's peak and the analytic peak are computed from the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from simulator.model import transformer as model_math
from simulator.scenario.load import ModelSpec


@dataclass(frozen=True)
class Block:
    name: str
    stack: str  # "encoder" | "decoder"
    params: int


@dataclass(frozen=True)
class Layout:
    arch: model_math.Architecture  # the real architecture, or a GPT-3-shaped stand-in
    root_params: int   # embeddings, final norms and head together
    head_params: int   # the part of the root whose gradients are ready right after the loss
    blocks: tuple[Block, ...]
    has_edges: bool  # embeddings and head are modelled (False for a bare parameter count)

    @property
    def params(self) -> int:
        return self.root_params + sum(b.params for b in self.blocks)


@dataclass(frozen=True)
class Activations:
    """Bytes of activations kept for backward, per unit, for one micro-batch."""

    embedding: int
    blocks: tuple[int, ...]     # what each block keeps through forward (its checkpoint if full)
    working: tuple[int, ...]    # extra bytes live during each block's backward (recompute)
    output: int                 # final norm, logits and loss

    @property
    def after_forward(self) -> int:
        return self.embedding + sum(self.blocks) + self.output


def shape_proxy(m: ModelSpec) -> model_math.Architecture:
    """The architecture for per-layer math: the real one, or a GPT-3-like stand-in."""
    if m.arch is not None:
        return m.arch
    heads = max(1, m.hidden_size // 128)
    while m.hidden_size % heads:
        heads -= 1
    # vocab_size=1: the vocabulary of a bare parameter count is unknown; edges are not modelled.
    return model_math.Architecture(kind="decoder", num_layers=m.num_layers, hidden_size=m.hidden_size,
                                   num_heads=heads, ffn_hidden_size=4 * m.hidden_size, vocab_size=1)


@lru_cache(maxsize=256)
def model_layout(m: ModelSpec) -> Layout:
    if m.arch is None:
        per_block = math.ceil(m.params / m.num_layers)
        blocks = tuple(Block(f"layers.{i}", "decoder", per_block) for i in range(m.num_layers - 1))
        last = Block(f"layers.{m.num_layers - 1}", "decoder", m.params - per_block * (m.num_layers - 1))
        return Layout(shape_proxy(m), 0, 0, blocks + (last,), has_edges=False)
    units = model_math.parameter_units(m.arch)
    blocks = tuple(Block(u.name, _stack(m.arch, u.name), u.params) for u in units if u.kind == "block")
    root = sum(u.params for u in units if u.kind != "block")
    head = sum(u.params for u in units if u.kind == "head")
    return Layout(m.arch, root, head, blocks, has_edges=True)


def _stack(arch: model_math.Architecture, name: str) -> str:
    if name.startswith("encoder.") or arch.kind == "encoder":
        return "encoder"
    return "decoder"


@lru_cache(maxsize=1024)
def activations(layout: Layout, seq_len: int, micro_batch: int, checkpointing: str, flash: bool,
                dtype_bytes: int) -> Activations:
    """Korthikanti et al. 2022 per-block activations, and the recompute working set in backward."""
    arch = layout.arch
    kw = dict(seq_len=seq_len, micro_batch=micro_batch, flash_attention=flash, dtype_bytes=dtype_bytes)
    kept, working = [], []
    for block in layout.blocks:
        stored = model_math.activation_bytes_per_layer(arch, checkpointing=checkpointing, stack=block.stack, **kw)
        kept.append(stored)
        if checkpointing == "full":
            # The block is recomputed in backward: its full activations are live again.
            working.append(model_math.recompute_working_bytes(arch, stack=block.stack, **kw))
        elif checkpointing == "selective":
            # Only the attention scores/softmax/dropout (the a*s^2 terms) are recomputed.
            full = model_math.activation_bytes_per_layer(arch, checkpointing="none", stack=block.stack, **kw)
            working.append(full - stored)
        else:
            working.append(0)
    edge = dict(seq_len=seq_len, micro_batch=micro_batch, dtype_bytes=dtype_bytes)
    emb = model_math.embedding_activation_bytes(arch, **edge) if layout.has_edges else 0
    out = model_math.output_activation_bytes(arch, **edge) if layout.has_edges else 0
    return Activations(emb, tuple(kept), tuple(working), out)
