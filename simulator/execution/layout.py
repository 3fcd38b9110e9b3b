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

from simulator.model import activations as act_math
from simulator.model.architecture import Architecture, parameter_units
from simulator.model.spec import ModelSpec


@dataclass(frozen=True, kw_only=True)
class Block:
    name: str
    stack: str  # "encoder" | "decoder"
    params: int


@dataclass(frozen=True, kw_only=True)
class Layout:
    arch: Architecture  # the real architecture, or a GPT-3-shaped stand-in
    root_params: int   # embeddings, final norms and head together
    head_params: int   # the part of the root whose gradients are ready right after the loss
    blocks: tuple[Block, ...]
    has_edges: bool  # embeddings and head are modelled (False for a bare parameter count)

    @property
    def params(self) -> int:
        return self.root_params + sum(b.params for b in self.blocks)

    @property
    def edge_params(self) -> int:
        """Root parameters whose gradients are ready at the end of backward (embeddings)."""
        return self.root_params - self.head_params


@dataclass(frozen=True, kw_only=True)
class Activations:
    """Bytes of activations kept for backward, per unit, for one micro-batch."""

    embedding: int
    blocks: tuple[int, ...]     # what each block keeps through forward (its checkpoint if full)
    working: tuple[int, ...]    # extra bytes live during each block's backward (recompute)
    output: int                 # final norm, logits and loss

    @property
    def after_forward(self) -> int:
        return self.embedding + sum(self.blocks) + self.output


def model_layout(m: ModelSpec) -> Layout:
    if m.arch is None:
        per_block = math.ceil(m.params / m.num_layers)
        blocks = tuple(Block(name=f"layers.{i}", stack="decoder", params=per_block)
                       for i in range(m.num_layers - 1))
        last = Block(name=f"layers.{m.num_layers - 1}", stack="decoder",
                     params=m.params - per_block * (m.num_layers - 1))
        return Layout(arch=m.shape, root_params=0, head_params=0, blocks=blocks + (last,), has_edges=False)
    units = parameter_units(m.arch)
    blocks = tuple(Block(name=u.name, stack=_stack(m.arch, u.name), params=u.params)
                   for u in units if u.kind == "block")
    root = sum(u.params for u in units if u.kind != "block")
    head = sum(u.params for u in units if u.kind == "head")
    return Layout(arch=m.arch, root_params=root, head_params=head, blocks=blocks, has_edges=True)


def _stack(arch: Architecture, name: str) -> str:
    if name.startswith("encoder.") or arch.kind == "encoder":
        return "encoder"
    return "decoder"


def activations(layout: Layout, seq_len: int, micro_batch: int, checkpointing: str, flash: bool,
                dtype_bytes: int) -> Activations:
    """Korthikanti et al. 2022 per-block activations, and the recompute working set in backward.
    Blocks of one stack are alike, so each stack's figures are computed once."""
    arch = layout.arch
    kw = dict(seq_len=seq_len, micro_batch=micro_batch, flash_attention=flash, dtype_bytes=dtype_bytes)
    per_stack: dict[str, tuple[int, int]] = {}
    for stack in {b.stack for b in layout.blocks}:
        stored = act_math.activation_bytes_per_layer(arch, checkpointing=checkpointing, stack=stack, **kw)
        full = act_math.activation_bytes_per_layer(arch, checkpointing="none", stack=stack, **kw)
        if checkpointing == "full":
            working = full  # the block is recomputed in backward: its full activations are live again
        elif checkpointing == "selective":
            working = full - stored  # only the attention core (the a*s^2 terms) is recomputed
        else:
            working = 0
        per_stack[stack] = (stored, working)
    edge = dict(seq_len=seq_len, micro_batch=micro_batch, dtype_bytes=dtype_bytes)
    emb = act_math.embedding_activation_bytes(arch, **edge) if layout.has_edges else 0
    out = act_math.output_activation_bytes(arch, **edge) if layout.has_edges else 0
    return Activations(embedding=emb, blocks=tuple(per_stack[b.stack][0] for b in layout.blocks),
                       working=tuple(per_stack[b.stack][1] for b in layout.blocks), output=out)
