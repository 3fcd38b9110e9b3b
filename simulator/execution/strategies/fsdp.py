"""ZeRO-3 / FSDP full shard and hybrid shard (HSDP / MiCS): parameters sharded, gathered per unit.

Follows PyTorch FSDP (Zhao et al. 2023, Sec 3-4) with the transformer block as the wrap unit:
- forward: all-gather each block's parameters before its forward; the host issues the
  all-gathers ahead of compute, limited to two in flight by limit_all_gathers (the rate
  limiter); parameters are freed after the block's forward (reshard_after_forward) or kept
  until its backward.
- backward: all-gather again (when resharded), prefetching the previous block before the
  current block's backward (BACKWARD_PRE); after a block's backward its gradients are
  reduce-scattered on a separate stream and the unsharded gradient freed.
- the root unit (embeddings, head) stays unsharded from forward to backward; its gradient
  is reduce-scattered after the last backward op.
- HSDP: all-gathers and reduce-scatters run within a shard group; each reduce-scattered
  gradient shard is then all-reduced across the replica groups.
- gradient accumulation without no_sync: every micro-batch communicates (FSDP default).
  With gradient_sync last_micro_batch the micro-batches before each chunk's last run under
  no_sync(): torch/distributed/fsdp/_runtime_utils.py `_post_backward_hook` returns before
  reducing when `not state._sync_gradients`, so autograd accumulates the unsharded gradient
  (the parameters' dtype) until the last micro-batch reduce-scatters it; `_should_free_in_backward`
  keeps SHARD_GRAD_OP's parameters unsharded while not syncing (FULL_SHARD still frees them), so
  SHARD_GRAD_OP gathers a chunk once per step. torch.distributed.pipelining's stage does the same
  under a pipeline schedule (gradients synchronized on each stage's last backward). The held
  gradients (and SHARD_GRAD_OP's gathered parameters, which an interleaved schedule holds for
  every chunk at once) are counted as static buffers: from the first backward (forward) to the
  last reduce-scatter.
- MixedPrecision reduce_dtype other than the gradients' (Composer's mixed_precision DEFAULT:
  bf16 parameters, fp32 reduce): the post-backward hook casts the unsharded gradient to it on
  the post-backward stream before the reduce-scatter, which then moves reduce_dtype bytes; the
  gradient autograd computed stays allocated beside the cast copy until the reduce-scatter ends
  (record_stream on the post-backward stream). torch/distributed/fsdp/_runtime_utils.py
  `_post_backward_hook` (torch 2.0-2.4): `flat_param.grad.data = flat_param.grad.to(
  handle._reduce_dtype)`, then `_reduce_grad`, then `_no_dispatch_record_stream`.
"""

from __future__ import annotations

from typing import ClassVar

from simulator.core.errors import Problem
from simulator.execution.pipeline import Pass, last_backward
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.base import Strategy
from simulator.execution.strategies.buckets import BucketSession
from simulator.execution.strategies.common import ChunkWork, Context, shard_of
from simulator.execution.strategies.ddp import DDP_FIRST_BUCKET_BYTES
from simulator.execution.strategies.fsdp_pass import PassState, accumulate_gradient, copy_s
from simulator.execution.strategies.optimizer import optimizer_step
from simulator.spec.mesh import Group

SHARD_GRAD_OP = "fsdp-shard-grad-op"
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def wire_grad_bytes(reduce_dtype: str | None, gb: int) -> int:
    """Bytes per gradient element reduced: reduce_dtype's, or the gradients' own (None)."""
    return DTYPE_BYTES[reduce_dtype] if reduce_dtype else gb


def accumulates_unsharded(s) -> bool:
    """FSDP under no_sync (FSDP2: set_requires_gradient_sync(False)): several micro-batches
    accumulate unsharded gradients (module doc)."""
    fw = s.training.framework
    sync = (
        fw.fsdp2.gradient_sync if fw.name == "pytorch-fsdp2" else s.training.sharding.gradient_sync
    )
    return sync == "last_micro_batch" and s.training.grad_accum_steps > 1


class Zero3(Strategy):
    name = "zero3"
    # SHARD_GRAD_OP is this schedule with the parameters kept unsharded from a block's forward
    # to its backward (torch FSDP: reshard_after_forward False); scenario/load.py sets that.
    aliases: ClassVar[tuple[str, ...]] = ("fsdp", "fsdp-full-shard", SHARD_GRAD_OP)
    description = (
        "ZeRO stage 3 / PyTorch FSDP FULL_SHARD: all states sharded, parameters gathered per block"
    )
    zero_stage = 3
    context_parallel = True  # sharded over dp x cp (torchtitan's dp_shard_cp)
    offload_params = True

    # ---- memory

    def _sharded(self, s) -> bool:
        return self.shard_degree(s) > 1

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        if not self._sharded(s):
            return 0
        # The root unit stays unsharded through forward and backward, with its full gradient
        # until the final reduce-scatter; under no_sync every block's gradient is held too.
        held = 0
        if accumulates_unsharded(s):
            acc = self.accumulated_grad_bytes(s, gb)
            kept = self.keeps_parameters(s)  # SHARD_GRAD_OP's parameters
            held = sum(b.params for b in lay.blocks) * (acc + (pb if kept else 0))
            held += lay.root_params * (acc - gb)  # the root's, counted above at gb
        return lay.root_params * (pb + gb) + held

    @staticmethod
    def accumulated_grad_bytes(s, gb: int) -> int:
        """Bytes per element of a gradient accumulated under no_sync: autograd's, in the
        parameters' dtype (FSDP1)."""
        return gb

    @staticmethod
    def keeps_parameters(s) -> bool:
        """Whether no_sync keeps a chunk's gathered parameters between its passes (FSDP1's
        SHARD_GRAD_OP: `_should_free_in_backward` is False while not syncing)."""
        return accumulates_unsharded(s) and not s.training.sharding.reshard_after_forward

    def buffers_at_backward_start(self, s, blocks, pb, gb) -> int:
        if not self._sharded(s) or not blocks:
            return 0
        z = s.training.sharding
        if not z.reshard_after_forward:  # every block is still unsharded from forward
            return 0 if accumulates_unsharded(s) else sum(b.params for b in blocks) * pb
        # FSDP prefetches the last block while the loss and head run backward.
        return (blocks[-1].params * pb) if z.backward_prefetch else 0

    def buffers_at_block_backward(self, s, blocks, i, pb, gb) -> int:
        if not self._sharded(s):
            return 0
        z = s.training.sharding
        if not z.reshard_after_forward:  # blocks 0..i are still unsharded from forward
            gathered = 0 if accumulates_unsharded(s) else sum(b.params for b in blocks[: i + 1])
        else:  # this block, and the previous one prefetched
            gathered = blocks[i].params + (blocks[i - 1].params if i and z.backward_prefetch else 0)
        # This block's full gradient, and the next block's, whose reduce-scatter is in flight
        # (with backward prefetch it surely is; without, it may have finished while this
        # block's all-gather ran, so the analytic peak is then an upper bound). Reduced in
        # another dtype, the one in flight is held twice: as computed and cast.
        pending = blocks[i + 1].params if i + 1 < len(blocks) else 0
        return gathered * pb + blocks[i].params * gb + pending * self._pending_grad_bytes(s, gb)

    @staticmethod
    def _pending_grad_bytes(s, gb: int) -> int:
        """Bytes per element of a gradient whose reduce-scatter is in flight (module doc); under
        no_sync the accumulated gradient is a static buffer and only its cast copy is extra."""
        rb = wire_grad_bytes(s.training.sharding.reduce_dtype, gb)
        held = 0 if accumulates_unsharded(s) else gb
        return held + rb if rb != gb else held

    # ---- groups and schedule

    def replica_group(self, s):
        """HSDP's replica group (None for plain ZeRO-3 or one replica)."""
        return

    def collectives(self, s):
        shard, replica = self.grad_group(s), self.replica_group(s)
        if shard.size == 1:
            return [("all_reduce", replica or shard)]
        return [
            ("all_gather", shard),
            ("reduce_scatter", shard),
            *([("all_reduce", replica)] if replica else []),
        ]

    def session(self, ctx, b):
        s = ctx.scenario
        shard = self.grad_group(s)
        if shard.size == 1:
            # One rank per shard group: nothing is sharded, FSDP runs as DDP over the replicas.
            return BucketSession(
                ctx,
                b,
                "all_reduce",
                s.training.bucket_size_bytes,
                DDP_FIRST_BUCKET_BYTES,
                every_micro_batch=False,
                sharded_optimizer=False,
            )
        return self.sharded_session(ctx, b, shard, self.replica_group(s))

    def sharded_session(self, ctx, b, shard, replica):
        """The schedule hooks of a sharded run (a framework's own gathers and reduce-scatters)."""
        return FsdpSession(ctx, b, shard, replica)


class HSDP(Zero3):
    context_parallel = False  # its shard group (shard_group_size) is not folded with cp here
    name = "hsdp"
    aliases = ("fsdp-hybrid-shard",)
    description = (
        "FSDP HYBRID_SHARD / MiCS: ZeRO-3 within shard groups, gradients all-reduced across them"
    )

    def validate(self, t, dp: int) -> list[Problem]:
        problems = super().validate(t, dp)
        if t.shard_group_size is None:
            problems.append(
                Problem(
                    "training.shard_group_size",
                    "required when strategy is hsdp",
                    "e.g. shard_group_size: 8 to shard within each host",
                )
            )
        elif dp % min(t.shard_group_size, dp):
            problems.append(
                Problem(
                    "training.shard_group_size",
                    f"the data-parallel degree {dp} does not split "
                    f"into groups of {t.shard_group_size}",
                    "use a divisor of the GPU count",
                )
            )
        return problems

    def dp_dims(self, s):
        dp = s.training.parallel.dp
        g = min(s.training.shard_group_size, dp)
        return (("dp_shard", g), ("dp_replicate", dp // g))

    def grad_group(self, s):
        return self.mesh(s).group("dp_shard")

    def replica_group(self, s):
        group = self.mesh(s).group("dp_replicate")
        return group if group.size > 1 else None

    def shard_degree(self, s) -> int:
        return min(s.training.shard_group_size, s.training.parallel.dp)


class FsdpSession:
    """One stage's FSDP step: per-block all-gathers with prefetch and rate limiting, per-block
    reduce-scatters (and HSDP's replica all-reduces), for every pass of the pipeline."""

    # FSDP1's post-backward cast to reduce_dtype, a kernel of its own (module doc); FSDP2
    # casts while copying into its reduce-scatter input.
    casts_gradient: ClassVar[bool] = True

    def __init__(self, ctx: Context, b: ScheduleBuilder, shard: Group, replica: Group | None):
        self.ctx, self.b, self.shard, self.replica = ctx, b, shard, replica
        s = ctx.scenario
        self.z, self.offload, self.n = s.training.sharding, s.training.offload.params, shard.size
        # bytes per gradient element on the wire
        self.reduce_bytes = wire_grad_bytes(s.training.sharding.reduce_dtype, ctx.gb)
        self.grad_comm: list[int] = []
        self.previous_pass_end: int | None = None
        self.previous_pass: tuple[bool, int, int] | None = None
        self.previous_pass_is_own_forward = False
        self.passes: dict[tuple[int, int], PassState] = {}
        self.current: PassState | None = None
        # no_sync (module doc): only each chunk's last backward reduces; SHARD_GRAD_OP's
        # parameters then stay gathered from a chunk's first forward to that backward.
        self.accumulate = accumulates_unsharded(s)
        self.keeps_params = Zero3.keeps_parameters(s)
        # bytes per element of the gradient accumulated under no_sync
        self.acc_bytes = Zero3.accumulated_grad_bytes(s, ctx.gb)
        self.last = last_backward(list(ctx.order))
        self.index = -1
        self.sync = True  # whether the current backward pass reduces its gradients
        self.backwards: set[int] = set()  # chunks whose backward has run
        self.first_backward = True  # the current backward pass is its chunk's first
        self.resident: set[int] = set()  # chunks whose parameters stay gathered

    def gathered(self, unit: str, params: int) -> int:
        """Elements of a unit's all-gather output: one FlatParameter padded to n equal shards."""
        return shard_of(params, self.n) * self.n

    def held(self, unit: str, params: int) -> int:
        """Elements the all-gather's output holds in memory (the model counts the unpadded unit)."""
        return params

    def gather(self, name: str, params: int, deps=(), alloc=True, unit: str = "") -> int:
        """All-gather a unit: the output buffer is n shards (padded) of weights. With parameter
        offload (ZeRO-Infinity / FSDP CPUOffload) the shard first crosses PCIe to the GPU."""
        ctx, b = self.ctx, self.b
        if self.offload:
            h2d = b.add(
                name.replace("all_gather", "offload: shard to GPU for"),
                "pcie",
                "offload",
                deps=deps,
                duration_s=shard_of(params, self.n) * ctx.pb / ctx.cm.gpu.pcie_bw_bytes_per_s,
            )
            deps = (h2d,)
        return b.add(
            name,
            "comm",
            "comm",
            deps=deps,
            alloc_bytes=self.held(unit, params) * ctx.pb if alloc else 0,
            collective=Collective(
                op="all_gather", group=self.shard, size_bytes=self.gathered(unit, params) * ctx.pb
            ),
        )

    def reduce(self, name: str, params: int, deps, free: int, unit: str = "") -> int:
        rb, numel = self.reduce_bytes, self.gathered(unit, params)
        cast = 0
        if rb != self.ctx.gb and self.casts_gradient:
            cast = numel * rb
            deps = (
                self.b.add(
                    name.replace("reduce_scatter", "cast gradient for reduce_scatter"),
                    "comm_rs",
                    "copy",
                    deps=deps,
                    duration_s=copy_s(self.ctx, numel * (self.ctx.gb + rb)),
                    alloc_bytes=cast,
                ),
            )
        rs = self.b.add(
            name,
            "comm_rs",
            "comm",
            deps=deps,
            free_bytes=free + cast,
            collective=Collective(op="reduce_scatter", group=self.shard, size_bytes=numel * rb),
        )
        self.last_reduce_scatter = rs
        if self.replica is not None:
            rs = self.b.add(
                name.replace("reduce_scatter", "all_reduce"),
                "comm_rs",
                "comm",
                deps=(rs,),
                collective=Collective(
                    op="all_reduce",
                    group=self.replica,
                    size_bytes=numel // self.n * rb,
                ),
            )
        return rs

    @staticmethod
    def _root(chunk: ChunkWork) -> int:
        return sum(u.params for u in (chunk.embedding, chunk.head) if u is not None)

    def start_pass(self, p: Pass, chunk: ChunkWork) -> tuple:
        key = (p.micro_batch, p.chunk)
        self.previous_pass_is_own_forward = self.previous_pass == (True, *key)
        self.index += 1
        self.sync = p.forward or not self.accumulate or self.index == self.last[p.chunk]
        if p.forward:
            self.passes[key] = self.current = self.pass_state(p, chunk)
            if self.keeps_params:
                self.current.gathered = p.chunk in self.resident
                self.resident.add(p.chunk)
            if self._root(chunk) and not self.current.gathered:  # held in static memory
                self.current.root_gather = self.gather(
                    f"mb{p.micro_batch} all_gather root",
                    self._root(chunk),
                    alloc=False,
                    unit="root",
                )
        else:
            self.current = self.passes.pop(key)
            self.first_backward = p.chunk not in self.backwards
            self.backwards.add(p.chunk)
        return ()

    def before_fwd(self, p, i, unit):
        return self.current.before_fwd(i)

    def after_fwd(self, p, i, unit, tid):
        self.current.after_fwd(i, unit, tid)

    def before_bwd(self, p, i, unit):
        return self.current.before_bwd(i)

    def after_bwd(self, p, i, unit, tid):
        self.current.after_bwd(i, unit, tid)

    def end_pass(self, p: Pass, chunk: ChunkWork, last: int | None) -> None:
        self.previous_pass_end, self.previous_pass = last, (p.forward, p.micro_batch, p.chunk)
        if not p.forward and self.sync:
            self.resident.discard(p.chunk)
        if not p.forward and self._root(chunk):
            last = accumulate_gradient(
                self, f"mb{p.micro_batch} accumulate gradients root", self._root(chunk), last
            )
        if not p.forward and self._root(chunk) and self.sync:
            self.grad_comm.append(
                self.reduce(
                    f"mb{p.micro_batch} reduce_scatter root",
                    self._root(chunk),
                    (last,),
                    0,
                    unit="root",
                )
            )

    def pass_state(self, p: Pass, chunk: ChunkWork) -> PassState:
        return PassState(self, p, chunk)

    def optimizer_params(self) -> int:
        """The parameters this rank's optimizer updates: its shard of the flat parameters."""
        return shard_of(self.ctx.stage_params, self.n)

    def finish(self, last: int | None) -> None:
        optimizer_step(self.b, self.ctx, self.optimizer_params(), deps=(last, *self.grad_comm))
