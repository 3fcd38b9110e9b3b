"""Gradient bucketing shared by the replicated-parameter strategies (DDP, ZeRO-1, ZeRO-2):
gradients fill buckets in readiness order (reverse layer order) and each full bucket becomes
one collective, overlapping the rest of backward."""

from __future__ import annotations

from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.common import Context, Hooks, micro_batch
from simulator.spec.mesh import Group


class Bucketer:
    """Groups gradient bytes into buckets in readiness order and issues one collective per bucket."""

    def __init__(self, b: ScheduleBuilder, op: str, group: Group, cap_bytes: int, first_cap_bytes: int, tag: str):
        self.b, self.op, self.group, self.tag = b, op, group, tag
        self.cap, self.next_cap = first_cap_bytes, cap_bytes
        self.fill, self.ready_after, self.ids = 0, None, []

    def add(self, grad_bytes: int, ready_task: int) -> None:
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
        tid = self.b.add(f"{self.tag} {self.op} bucket {len(self.ids)}", "comm", "comm", deps=(self.ready_after,),
                         collective=Collective(op=self.op, group=self.group, size_bytes=self.fill))
        self.ids.append(tid)
        self.fill, self.cap = 0, self.next_cap


def bucketed_backward(b: ScheduleBuilder, ctx: Context, op: str, group: Group, cap: int, first: int,
                      every_micro_batch: bool) -> tuple[int, list[int]]:
    """Every micro-batch's forward and backward; gradients bucketed into `op` collectives on the
    last micro-batch (or on every one). Returns (last backward task, collective task ids)."""
    comm_ids: list[int] = []
    last = None
    for m in range(ctx.accum):
        communicate = group.size > 1 and (m == ctx.accum - 1 or every_micro_batch)
        bucketer = Bucketer(b, op, group, cap, first, f"mb{m}") if communicate else None

        def ready(i, unit, task_id, bucketer=bucketer):
            if bucketer is not None and unit.params:
                bucketer.add(unit.params * ctx.gb, task_id)

        last = micro_batch(b, ctx, m, Hooks(after_bwd=ready))
        if bucketer is not None:
            bucketer.add(ctx.work.edge_params * ctx.gb, last)
            bucketer.flush()
            comm_ids += bucketer.ids
    return last, comm_ids
