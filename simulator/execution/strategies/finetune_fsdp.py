"""FSDP with LoRA / QLoRA (execution/finetune.py): the schedule's units carry their trainable
parameters (the adapters), whose gradients are reduce-scattered and whose shards the
optimizer updates; the frozen base is all-gathered beside them at its storage bytes (the
packed 4-bit or int8 weights flattened as bnb_4bit_quant_storage, Answer.AI's FSDP-QLoRA; the
16-bit norms, embeddings and head), and has no gradient to reduce. Its gathered copies are
held in the buffers the memory model counts for the whole pass (finetune.extra_static_bytes),
so the all-gathers here allocate only the adapters."""

from __future__ import annotations

from simulator.execution import finetune
from simulator.execution import layout as layout_mod
from simulator.execution.schedule import Collective
from simulator.execution.strategies.common import shard_of
from simulator.execution.strategies.fsdp import FsdpSession
from simulator.model import lora


class FinetuneFsdpSession(FsdpSession):
    """FsdpSession whose all-gathers add each unit's frozen base bytes."""

    def __init__(self, ctx, b, shard, replica):
        super().__init__(ctx, b, shard, replica)
        s = ctx.scenario
        f = s.training.finetune
        lay = layout_mod.model_layout(s.model, s.training.parallel, ctx.stage)
        self.base = {
            blk.name: lora.sharded_frozen_block_bytes(
                lay.arch, blk.params, f.base_weights, f.double_quant
            )[0]
            for blk in lay.blocks
        }
        self.base["root"] = 2 * lay.root_params

    def gather(self, name: str, params: int, deps=(), alloc=True, unit: str = "") -> int:
        ctx, b = self.ctx, self.b
        size = (
            self.gathered(unit, params) * ctx.pb + shard_of(self.base.get(unit, 0), self.n) * self.n
        )
        return b.add(
            name,
            "comm",
            "comm",
            deps=deps,
            alloc_bytes=self.held(unit, params) * ctx.pb if alloc else 0,
            collective=Collective(op="all_gather", group=self.shard, size_bytes=size),
        )

    def start_pass(self, p, chunk) -> tuple:
        out = super().start_pass(p, chunk)
        if p.forward and (chunk.embedding or chunk.head) and self.base["root"]:
            # The frozen root (embeddings, head) is gathered for the pass; it has no gradient.
            assert self.current is not None
            self.current.root_gather = self.gather(
                f"mb{p.micro_batch} all_gather root", 0, alloc=False, unit="root"
            )
        return out


def finetune_session(session, ctx, b):
    """The session of a fine-tuning run: FSDP's with the frozen base's all-gathers; DDP's and
    ZeRO-1/2's as they are (their units already carry only the adapters)."""
    if finetune.active(ctx.scenario) and type(session) is FsdpSession:
        return FinetuneFsdpSession(ctx, b, session.shard, session.replica)
    return session
