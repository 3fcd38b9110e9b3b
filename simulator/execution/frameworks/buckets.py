"""Gradient buckets the way DeepSpeed ZeRO-1/2 and Megatron-Core fill them: whole parameters in
the order backward produces their gradients, one collective per bucket.

- DeepSpeed (stage_1_and_2.py reduce_independent_p_g_buckets_and_remove_grads): a bucket of
  reduce_bucket_size elements is reduced when the next gradient would overflow it, so the
  reduction is issued when that gradient arrives; with overlap_comm on a side stream, without
  it on the compute stream (backward waits). Stage 1 reduces on the accumulation boundary only.
- Megatron-Core (param_and_grad_buffer.py): a bucket closes once it holds bucket_size
  parameters; with overlap_grad_reduce it is reduced as soon as its last gradient is ready in
  the last micro-batch's backward, without it every bucket is reduced after the last backward
  (finish_grad_sync). The distributed optimizer pads each bucket to lcm(dp, 128) elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.execution.frameworks.units import own_tensors, padded, stage_modules
from simulator.execution.pipeline import Pass, last_backward
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.common import (
    ChunkWork,
    Context,
    UnitWork,
    shard_of,
)
from simulator.execution.strategies.optimizer import optimizer_step
from simulator.spec.mesh import Group


@dataclass(frozen=True, kw_only=True)
class BucketPlan:
    op: str  # all_reduce | reduce_scatter
    cap_elements: int | None  # None: one bucket for everything
    flush_before_overflow: bool  # DeepSpeed's rule; else Megatron's (close once reached)
    elem_bytes: int  # bytes per gradient element on the wire
    pad_to: int = 1  # bucket elements rounded up to a multiple of this
    pad_each: int = 1  # each tensor's elements rounded up to a multiple of this
    every_micro_batch: bool = False
    during_backward: bool = True  # issue as buckets fill (else after the last backward)
    stream: str = "comm"  # comm: overlapped; compute: backward waits for it
    sharded_optimizer: bool = True
    gather_buckets: bool = (
        False  # all-gather the weights bucket by bucket (else one flat all-gather)
    )
    gather_pad_to: int = 1  # the flat weight buffer rounded up to a multiple of this
    gather_before_forward: bool = False  # Megatron overlap_param_gather: during the next forward
    step_transient_bytes_per_param: int = 0  # held during the optimizer step, per local parameter


class Buckets:
    """Fills buckets in readiness order and issues one collective per full bucket."""

    def __init__(
        self, b: ScheduleBuilder, group, plan: BucketPlan, out: list[int], tag: str, wait_for=()
    ):
        self.b, self.group, self.plan, self.out, self.tag, self.wait_for = (
            b,
            group,
            plan,
            out,
            tag,
            wait_for,
        )
        self.fill, self.wire = 0, 0
        self.ready: int | None = None  # the task after which the open bucket is ready
        self.sizes: list[int] = []

    def add(self, numels: list[int], task: int | None) -> None:
        plan = self.plan
        for numel in numels:
            if (
                plan.cap_elements
                and plan.flush_before_overflow
                and self.fill
                and self.fill + numel > plan.cap_elements
            ):
                self.flush(task)
            self.fill += numel
            self.wire += padded(numel, plan.pad_each)
            self.ready = task
            if (
                plan.cap_elements
                and not plan.flush_before_overflow
                and self.fill >= plan.cap_elements
            ):
                self.flush(task)

    def flush(self, task: int | None = None) -> None:
        if not self.fill:
            return
        plan = self.plan
        size = padded(self.wire, plan.pad_to)
        self.sizes.append(size)
        if self.group.size > 1:
            deps = (task if task is not None else self.ready, *self.wait_for)
            self.out.append(
                self.b.add(
                    f"{self.tag} {plan.op} bucket {len(self.sizes) - 1}",
                    plan.stream,
                    "comm",
                    deps=deps,
                    collective=Collective(
                        op=plan.op, group=self.group, size_bytes=size * plan.elem_bytes
                    ),
                )
            )
        self.fill = self.wire = 0


class GradBucketSession:
    """DeepSpeed ZeRO-1/2 or Megatron on one stage: bucketed gradient reduction, the optimizer
    step on the local shard, and the weight all-gather of a sharded optimizer.

    Megatron-Core keeps the routed experts' parameters in buffers of their own, reduced and
    gathered over the expert-data-parallel group (distributed_data_parallel.py
    expert_parallel_buffers); the others over the data-parallel group with context parallelism
    (get_data_parallel_group(with_context_parallel=True)). Each buffer is one `_Buffer`."""

    def __init__(
        self,
        ctx: Context,
        b: ScheduleBuilder,
        plan: BucketPlan,
        expert_plan: BucketPlan | None = None,
    ):
        self.ctx, self.b, self.plan = ctx, b, plan
        self.modules = stage_modules(ctx.scenario, ctx.stage)
        expert = sum(sum(own_tensors(self.modules, n, expert=True)) for n in self.modules)
        self.buffers = [_Buffer(ctx.data_group, plan, False, ctx.stage_params - expert)]
        if expert:
            self.buffers.append(_Buffer(ctx.groups["edp"], expert_plan or plan, True, expert))
        self.last = last_backward(list(ctx.order))
        self.index = -1
        # The open buckets of each backward pass that reduces (two passes may be open at once
        # under combined 1F1B, pipeline.merged).
        self.buckets: dict[Pass, list[Buckets]] = {}
        self.comm_ids: list[int] = []
        self.gathers: dict[
            str, list[int]
        ] = {}  # overlap_param_gather: unit -> its weight all-gathers

    @property
    def group(self):
        """The data-parallel group of the non-expert parameters."""
        return self.buffers[0].group

    def _reducing(self, p: Pass) -> bool:
        return self.plan.every_micro_batch or self.index == self.last[p.chunk]

    def _new_buckets(self, tag: str) -> list[Buckets]:
        return [Buckets(self.b, f.group, f.plan, self.comm_ids, tag) for f in self.buffers]

    def _add(self, buckets: list[Buckets], name: str, task: int | None) -> None:
        for bucket, f in zip(buckets, self.buffers):
            bucket.add(own_tensors(self.modules, name, expert=f.expert), task)

    def start_pass(self, p: Pass, chunk: ChunkWork) -> tuple:
        self.index += 1
        if self.index == 0 and self.plan.gather_before_forward:
            self._gather_all(deps=())
        if not p.forward and self.plan.during_backward and self._reducing(p):
            self.buckets[p] = self._new_buckets(f"mb{p.micro_batch}")
        return ()

    def before_fwd(self, p: Pass, i: int, unit: UnitWork) -> tuple:
        return tuple(self.gathers.get(unit.name, ()))

    def after_fwd(self, p: Pass, i: int, unit: UnitWork, tid: int) -> None:
        pass

    def before_bwd(self, p: Pass, i: int, unit: UnitWork) -> tuple:
        return ()

    def after_bwd(self, p: Pass, i: int, unit: UnitWork, tid: int) -> None:
        if p in self.buckets and unit.name in self.modules:
            self._add(self.buckets[p], unit.name, tid)

    def end_pass(self, p: Pass, chunk: ChunkWork, last: int | None) -> None:
        buckets = self.buckets.pop(p, None)
        if buckets is not None:
            if chunk.embedding is not None and "embedding" in self.modules:
                self._add(buckets, "embedding", last)
            for bucket in buckets:
                bucket.flush(last)

    def _after_backward(self, last: int | None) -> None:
        """Every bucket after the last backward (Megatron finish_grad_sync, DeepSpeed stage 1
        at the accumulation boundary without overlap_comm)."""
        buckets = self._new_buckets("step")
        for name in self._backward_order():
            self._add(buckets, name, last)
        for bucket in buckets:
            bucket.flush(last)

    def _backward_order(self) -> list[str]:
        chunks = sorted(self.ctx.chunks.values(), key=lambda c: -c.index)
        names = []
        for c in chunks:
            names += ([c.head.name] if c.head else []) + [u.name for u in reversed(c.blocks)]
            names += ["embedding"] if c.embedding else []
        return [n for n in names if n in self.modules]

    def finish(self, last: int | None) -> None:
        if not self.plan.during_backward:
            self._after_backward(last)
        sharded = self.plan.sharded_optimizer
        local = sum(shard_of(f.params, f.group.size) if sharded else f.params for f in self.buffers)
        opt = optimizer_step(self.b, self.ctx, local, deps=(last, *self.comm_ids))
        extra = self.plan.step_transient_bytes_per_param * local
        if (
            extra
            and self.group.size > 1
            and sharded
            and not self.ctx.scenario.training.offload.optimizer
        ):
            self.b.adjust(opt, alloc=extra, free=extra)
        if sharded and not self.plan.gather_before_forward:
            self._gather_all(deps=(opt,))

    def _gather_all(self, deps) -> None:
        """The updated weights, all-gathered: one flat buffer, or bucket by bucket, per buffer."""
        pb = self.ctx.pb
        for f in self.buffers:
            if f.group.size == 1:
                continue
            if not f.plan.gather_buckets:
                size = padded(f.params, f.plan.gather_pad_to) * pb
                self.b.add(
                    "all_gather weights" + (" (experts)" if f.expert else ""),
                    "comm",
                    "comm",
                    deps=deps,
                    collective=Collective(op="all_gather", group=f.group, size_bytes=size),
                )
                continue
            for k, (names, elements) in enumerate(self._weight_buckets(f)):
                tid = self.b.add(
                    f"all_gather weights{' (experts)' if f.expert else ''} bucket {k}",
                    "comm",
                    "comm",
                    deps=deps,
                    collective=Collective(op="all_gather", group=f.group, size_bytes=elements * pb),
                )
                for name in names:
                    self.gathers.setdefault(name, []).append(tid)

    def _weight_buckets(self, f: _Buffer) -> list[tuple[set[str], int]]:
        """Megatron's buckets (the weight buffer has the gradient buffer's layout), in the order
        the next forward needs them: the units with a tensor in each, and its padded size."""
        cap, out, names, fill = f.plan.cap_elements, [], set(), 0
        for name in self._backward_order():
            for numel in own_tensors(self.modules, name, expert=f.expert):
                names.add(name)
                fill += numel
                if cap and fill >= cap:
                    out.append((names, padded(fill, f.plan.pad_to)))
                    names, fill = set(), 0
        if fill:
            out.append((names, padded(fill, f.plan.pad_to)))
        return list(reversed(out))


@dataclass(frozen=True)
class _Buffer:
    """One gradient (and weight) buffer: its group, bucket plan, whether it holds the routed
    experts, and its parameters on this rank."""

    group: Group
    plan: BucketPlan
    expert: bool
    params: int


def megatron_pad(dp: int) -> int:
    """megatron/core/optimizer/param_layout.py: buckets end on a multiple of lcm(dp, 128)."""
    return math.lcm(dp, 128)
