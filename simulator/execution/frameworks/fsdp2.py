"""PyTorch FSDP2 (`fully_shard`, torch/distributed/fsdp/_fully_shard/) on ZeRO-3 and HSDP.

Where it differs from FSDP1 (execution/strategies/fsdp.py), following _fsdp_param.py,
_fsdp_collectives.py and _fsdp_param_group.py:
- Per-parameter sharding: each parameter is a DTensor sharded on dim 0 and padded to a
  multiple of the world size (`_init_sharded_param`: ceil(dim0 / n) rows per rank), so a
  block's all-gather and reduce-scatter move the sum of its padded parameters, and each rank
  stores that sum / n.
- foreach_all_gather copies the shards into one flat input (copy-in, on its own stream; here
  before the all-gather on the communication stream), all-gathers, and
  foreach_all_gather_copy_out splits the flat output into per-parameter tensors on the
  compute stream (wait_for_unshard): the output buffer and the parameters coexist until the
  copy-out ends, then the output is freed. foreach_reduce copies the gradients into the
  reduce-scatter input first, cast to MixedPrecisionPolicy's reduce_dtype (time only here: the two
  coexist briefly, not counted).
- No rate limiter (limit_all_gathers and backward_prefetch were removed): in forward the
  next all-gather waits for the current copy-out (the all-gather streams wait on its event);
  in backward each block's pre-backward copies out its parameters and then prefetches the
  previous block (always BACKWARD_PRE). post_backward makes the compute stream wait for the
  previous block's reduce-scatter before issuing the next: at most one reduce-scatter in
  flight behind the current backward.
- reshard_after_forward: True for blocks, never for the root (embeddings, head), which stays
  unsharded from its forward to the end of backward as in FSDP1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.execution.frameworks.units import stage_modules
from simulator.execution.strategies.base import PassEdges, StateBytes
from simulator.execution.strategies.fsdp import (
    HSDP,
    FsdpSession,
    Zero3,
    accumulates_unsharded,
    wire_grad_bytes,
)
from simulator.execution.strategies.fsdp_pass import PassState, copy_s
from simulator.spec.specs import ShardingSpec


def padded_numel(modules, n: int) -> int:
    """The unsharded size of these modules' parameters with each padded on dim 0 to n rows."""
    seen: dict[str, int] = {}
    for m in modules:
        for t in m.tensors:
            seen[t.name] = math.ceil(t.rows / n) * n * t.cols + max(0, t.numel - t.rows * t.cols)
    return sum(seen.values())


def local_numel(mods: dict, n: int) -> int:
    """This rank's elements of a stage's units: ceil(dim0 / n) rows of every parameter (a tied
    table once)."""
    return padded_numel([m for unit in mods.values() for m in unit], n) // n


class _Fsdp2:
    """Mixed into a ZeRO-3 strategy (Zero3 or HSDP), which provides shard_degree."""

    framework = "pytorch-fsdp2"

    if TYPE_CHECKING:

        def shard_degree(self, s) -> int: ...

    @staticmethod
    def _reshard(s) -> bool:
        return s.training.framework.fsdp2.reshard_after_forward

    @staticmethod
    def accumulated_grad_bytes(s, gb: int) -> int:
        """set_requires_gradient_sync(False) accumulates in reduce_dtype where it differs from the
        gradients' (_fsdp_param.py to_accumulated_grad_if_needed: unsharded_accumulated_grad =
        grad.to(reduce_dtype); accumulate_unsharded_grad_if_needed adds the next into it)."""
        return wire_grad_bytes(s.training.framework.fsdp2.reduce_dtype, gb)

    @staticmethod
    def keeps_parameters(s) -> bool:
        """reshard_after_backward stays True under set_requires_gradient_sync(False): every pass
        gathers (_fsdp_param_group.py post_backward reshards before returning)."""
        return False

    def states(self, s, lay, k: float) -> StateBytes:
        """Each rank stores ceil(dim0 / n) rows of every parameter, and their gradients and
        optimizer states."""
        n = self.shard_degree(s)
        local = local_numel(stage_modules(s, lay.stage, lay), n)
        p = s.training.precision
        return StateBytes(
            params=local * p.weight_bytes,
            grads=local * p.grad_bytes,
            optimizer=math.ceil(local * k),
        )

    def chunk_moments(self, s, lay, chunk, acts, pb, gb):
        if self.shard_degree(s) == 1:
            return None
        n, reshard, blocks = self.shard_degree(s), self._reshard(s), chunk.blocks
        mods = stage_modules(s, lay.stage, lay)
        unp = [b.params for b in blocks]
        pad = [padded_numel(mods[b.name], n) for b in blocks]
        emb, kept, working, output = acts
        live = emb + sum(kept)
        first = (pad[-1] if reshard else sum(unp)) * pb if blocks and chunk.head else 0
        out = [
            (
                "forward head / start of backward (all activations and the logits live)"
                if chunk.head
                else f"start of backward of model chunk {chunk.index}",
                live + output,
                first,
            )
        ]
        # Under set_requires_gradient_sync(False) the gradients in flight are the held ones
        # (static_buffer_bytes).
        held = accumulates_unsharded(s)
        for i in range(len(blocks) - 1, -1, -1):
            pending = unp[i + 1] * gb if i + 1 < len(blocks) and not held else 0
            if reshard:
                out.append(
                    (
                        f"all-gather copy-out {blocks[i].name} (backward)",
                        live,
                        (unp[i] + pad[i]) * pb + pending,
                    )
                )
                gathered = unp[i] + (pad[i - 1] if i else 0)
            else:
                gathered = sum(unp[: i + 1])
            out.append(
                (
                    f"backward {blocks[i].name}",
                    live + working[i],
                    gathered * pb + unp[i] * gb + pending,
                )
            )
            live -= kept[i]
        return out

    def pass_edges(self, s, lay, chunk, acts, pb, gb):
        """A backward pass ends with the reduce-scatters of its first blocks in flight: block 0's
        and block 1's (block 0's backward waited only for block 2's), each holding its block's
        unsharded gradient. They may still run when the next pass copies out its first block: a
        forward's block 0 (the embedding's activations live), or a backward's last block (all
        the chunk's activations live; a head chunk's logits while that block is prefetched)."""
        if self.shard_degree(s) == 1 or not self._reshard(s) or not chunk.blocks:
            return PassEdges()
        n, blocks, mods = self.shard_degree(s), chunk.blocks, stage_modules(s, lay.stage, lay)
        emb, kept, _, output = acts
        first, last = blocks[0], blocks[-1]
        pad_first, pad_last = padded_numel(mods[first.name], n), padded_numel(mods[last.name], n)
        forward = (
            f"all-gather copy-out {first.name} (forward)",
            emb,
            (first.params + pad_first) * pb,
        )
        backward = max(
            (
                f"all-gather copy-out {last.name} (backward)",
                emb + sum(kept),
                (last.params + pad_last) * pb,
            ),
            (
                "forward head / start of backward (all activations and the logits live)",
                emb + sum(kept) + output,
                pad_last * pb if chunk.head else 0,
            ),
            key=lambda m: m[1] + m[2],
        )
        in_flight = 0 if accumulates_unsharded(s) else sum(b.params for b in blocks[:2]) * gb
        return PassEdges(forward, backward, in_flight)

    def sharded_session(self, ctx, b, shard, replica):
        return Fsdp2Session(ctx, b, shard, replica)


class Fsdp2Zero3(_Fsdp2, Zero3):
    description = "PyTorch FSDP2 fully_shard: per-parameter sharding, all-gather copy-in/copy-out"


class Fsdp2HSDP(_Fsdp2, HSDP):
    description = (
        "PyTorch FSDP2 on a 2-D mesh (HSDP): sharded within groups, all-reduced across them"
    )


class Fsdp2Session(FsdpSession):
    casts_gradient = False

    def __init__(self, ctx, b, shard, replica) -> None:
        super().__init__(ctx, b, shard, replica)
        s = ctx.scenario
        # FSDP2's fixed behaviour, in FSDP1's names for the shared code.
        self.z = ShardingSpec(
            backward_prefetch=True,
            limit_all_gathers=False,
            reshard_after_forward=s.training.framework.fsdp2.reshard_after_forward,
        )
        mods = stage_modules(s, ctx.stage)
        root = [m for name in ("embedding", "head") for m in mods.get(name, ())]
        self.padded = {name: padded_numel(m, self.n) for name, m in mods.items()}
        self.padded["root"] = padded_numel(root, self.n)
        self.reduces: list[int] = []
        self.reduce_bytes = wire_grad_bytes(s.training.framework.fsdp2.reduce_dtype, ctx.gb)
        self.keeps_params = _Fsdp2.keeps_parameters(s)
        self.acc_bytes = _Fsdp2.accumulated_grad_bytes(s, ctx.gb)
        # The reduce-scatter's copy-in reads the gradient as accumulated.
        self.grad_read_bytes = self.acc_bytes if self.accumulate else ctx.gb
        self.local = local_numel(mods, self.n)

    def optimizer_params(self) -> int:
        """This rank's elements, as _Fsdp2.states counts them."""
        return self.local

    def gathered(self, unit: str, params: int) -> int:
        return self.padded[unit]

    def held(self, unit: str, params: int) -> int:
        return self.padded[unit]

    def gather(self, name: str, params: int, deps=(), alloc=True, unit: str = "") -> int:
        shard_bytes = self.padded[unit] // self.n * self.ctx.pb
        copy_in = self.b.add(
            name.replace("all_gather", "all_gather copy-in"),
            "comm",
            "copy",
            deps=deps,
            duration_s=copy_s(self.ctx, 2 * shard_bytes),
        )
        return super().gather(name, params, (copy_in,), alloc, unit)

    def reduce(self, name: str, params: int, deps, free: int, unit: str = "") -> int:
        copy_in = self.b.add(
            name.replace("reduce_scatter", "reduce_scatter copy-in"),
            "comm_rs",
            "copy",
            deps=deps,
            duration_s=copy_s(
                self.ctx, self.padded[unit] * (self.grad_read_bytes + self.reduce_bytes)
            ),
        )
        done = super().reduce(name, params, (copy_in,), free, unit)
        self.reduces.append(self.last_reduce_scatter)
        return done

    def copy_out(self, tag: str, unit, phase: str, deps) -> int:
        """Split the all-gather output into the unit's parameters; the output is freed after."""
        pb, pad = self.ctx.pb, self.padded[unit.name]
        return self.b.add(
            f"{tag} all_gather copy-out {unit.name} ({phase})",
            "compute",
            "copy",
            deps=deps,
            duration_s=copy_s(self.ctx, (pad + unit.params) * pb),
            alloc_bytes=unit.params * pb,
            free_bytes=pad * pb,
        )

    def pass_state(self, p, chunk):
        return _Fsdp2Pass(self, p, chunk)


class _Fsdp2Pass(PassState):
    def __init__(self, f, p, chunk) -> None:
        super().__init__(f, p, chunk)
        self.reduced: dict[int, int] = {}  # block index -> its reduce-scatter

    def after_bwd(self, i, unit, tid):
        super().after_bwd(i, unit, tid)
        if i < len(self.blocks) and self.f.sync:
            self.reduced[i] = self.f.reduces[-1]

    def issue_at(self, i: int, deps) -> None:
        self.fwd_gather[i] = self.f.gather(
            f"{self.tag} all_gather {self.blocks[i].name} (forward)",
            self.blocks[i].params,
            deps=deps,
            unit=self.blocks[i].name,
        )

    def before_fwd(self, i):
        if i == 0:
            self.issue_at(0, (self.f.previous_pass_end,))
        # The next all-gather waits for this copy-out (the all-gather streams wait on its event).
        done = self.f.copy_out(
            self.tag, self.blocks[i], "forward", (self.fwd_gather[i], self.root_gather)
        )
        if i + 1 < len(self.blocks):
            self.issue_at(i + 1, (done,))
        return (done,)

    def before_bwd(self, i):
        f, last = self.f, len(self.blocks) - 1
        # post_backward of the block after this one waited for the reduce-scatter before it.
        wait = self.reduced.get(i + 2)
        if i == len(self.blocks):  # the root's pre-backward prefetches the last block
            if self.z.reshard_after_forward and self.blocks:
                started = () if f.previous_pass_is_own_forward else (f.previous_pass_end,)
                self.issue_backward(last, (self.fwd_done[last], *started))
            return ()
        if not self.z.reshard_after_forward:
            return (self.fwd_done.get(i), wait)
        self.issue_backward(i, (self.bwd_done.get(i + 1, f.previous_pass_end),))
        done = f.copy_out(
            self.tag, self.blocks[i], "backward", (self.bwd_gather[i], self.fwd_done.get(i), wait)
        )
        self.issue_backward(i - 1, (done,))
        return (done,)
