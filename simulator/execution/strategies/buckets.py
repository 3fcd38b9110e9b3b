"""Gradient bucketing shared by the replicated-parameter strategies (DDP, ZeRO-1, ZeRO-2):
gradients fill buckets in readiness order (reverse layer order) and each full bucket becomes
one collective, overlapping the rest of backward; then the optimizer step."""

from __future__ import annotations

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


class Bucketer:
    """Groups gradient bytes into buckets in readiness order and issues one collective per bucket."""

    def __init__(
        self,
        b: ScheduleBuilder,
        op: str,
        group: Group,
        cap_bytes: int,
        first_cap_bytes: int,
        tag: str,
    ):
        self.b, self.op, self.group, self.tag = b, op, group, tag
        self.cap, self.next_cap = first_cap_bytes, cap_bytes
        self.fill = 0
        self.ready_after: int | None = None  # the task after which the open bucket is ready
        self.ids: list[int] = []

    def add(self, grad_bytes: int, ready_task: int | None) -> None:
        """grad_bytes became ready when ready_task ended; emit every bucket this fills."""
        while grad_bytes > 0:
            take = min(grad_bytes, self.cap - self.fill)
            self.fill += take
            grad_bytes -= take
            self.ready_after = ready_task
            if self.fill >= self.cap:
                self.flush()

    def flush(self) -> None:
        if self.fill == 0:
            return
        tid = self.b.add(
            f"{self.tag} {self.op} bucket {len(self.ids)}",
            "comm",
            "comm",
            deps=(self.ready_after,),
            collective=Collective(op=self.op, group=self.group, size_bytes=self.fill),
        )
        self.ids.append(tid)
        self.fill, self.cap = 0, self.next_cap


class BucketSession:
    """DDP / ZeRO-1 / ZeRO-2 on one stage: gradients of the last micro-batch of each chunk (of
    every micro-batch with `every_micro_batch`) are bucketed into `op` collectives as its
    backward produces them; then the optimizer; then (sharded optimizer) the weight all-gather."""

    def __init__(
        self,
        ctx: Context,
        b: ScheduleBuilder,
        op: str,
        cap: int,
        first: int,
        every_micro_batch: bool,
        sharded_optimizer: bool,
        allgather_bucket_bytes: int = 0,
        grad_bytes: int | None = None,
    ):
        self.ctx, self.b, self.op, self.cap, self.first = ctx, b, op, cap, first
        # bytes per gradient element on the wire (None: the precision's)
        self.gb = ctx.gb if grad_bytes is None else grad_bytes
        self.group = ctx.data_group
        self.every, self.sharded, self.ag_bytes = (
            every_micro_batch,
            sharded_optimizer,
            allgather_bucket_bytes,
        )
        self.last = last_backward(list(ctx.order))
        self.index = -1
        self.bucketer: Bucketer | None = None
        self.comm_ids: list[int] = []

    def start_pass(self, p: Pass, chunk: ChunkWork) -> tuple:
        self.index += 1
        if (
            not p.forward
            and self.group.size > 1
            and (self.every or self.index == self.last[p.chunk])
        ):
            self.bucketer = Bucketer(
                self.b, self.op, self.group, self.cap, self.first, f"mb{p.micro_batch}"
            )
        return ()

    def before_fwd(self, p: Pass, i: int, unit: UnitWork) -> tuple:
        return ()

    def after_fwd(self, p: Pass, i: int, unit: UnitWork, tid: int) -> None:
        pass

    def before_bwd(self, p: Pass, i: int, unit: UnitWork) -> tuple:
        return ()

    def after_bwd(self, p: Pass, i: int, unit: UnitWork, tid: int) -> None:
        if self.bucketer is not None and unit.params:
            self.bucketer.add(unit.params * self.gb, tid)

    def end_pass(self, p: Pass, chunk: ChunkWork, last: int | None) -> None:
        if self.bucketer is not None:
            self.bucketer.add(chunk.edge_params * self.gb, last)
            self.bucketer.flush()
            self.comm_ids += self.bucketer.ids
            self.bucketer = None

    def finish(self, last: int | None) -> None:
        n, params = self.group.size, self.ctx.stage_params
        opt = optimizer_step(
            self.b,
            self.ctx,
            shard_of(params, n) if self.sharded else params,
            deps=(last, *self.comm_ids),
        )
        if self.sharded and n > 1:
            # All-gather the updated weights: the full buffer is every rank's shard of weights.
            remaining, bucket = shard_of(params, n) * n * self.ctx.pb, 0
            while remaining > 0:
                size = min(remaining, self.ag_bytes)
                self.b.add(
                    f"all_gather weights bucket {bucket}",
                    "comm",
                    "comm",
                    deps=(opt,),
                    collective=Collective(op="all_gather", group=self.group, size_bytes=size),
                )
                remaining -= size
                bucket += 1
