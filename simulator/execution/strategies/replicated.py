"""DDP, ZeRO-1 and ZeRO-2: every rank holds all parameters; gradients are reduced in buckets
as backward produces them.

- DDP (PyTorch DistributedDataParallel): gradients fill buckets of bucket_cap_mb (25 MB;
  the first bucket 1 MiB, `dist._DEFAULT_FIRST_BUCKET_BYTES`) in reverse layer order; each
  full bucket is all-reduced at once, overlapping the rest of backward. With gradient
  accumulation, micro-batches before the last run under no_sync() and communicate nothing.
- ZeRO-1 (DeepSpeed stage 1): gradients accumulate locally; on the last micro-batch they
  are reduce-scattered to the optimizer-shard owners in buckets of reduce_bucket_size
  (5e8 elements), the optimizer updates its shard, and the updated weights are all-gathered
  in buckets of allgather_bucket_size (5e8 elements).
- ZeRO-2 (DeepSpeed stage 2): as ZeRO-1, but gradients are partitioned, so every
  micro-batch reduce-scatters its gradients (DeepSpeed reduces at each micro-step) and
  frees them bucket by bucket.
"""

from __future__ import annotations

from simulator.execution.memory import DEEPSPEED_BUCKET_ELEMENTS
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.common import Context, micro_batch, optimizer_step, shard_of

# torch/distributed/distributed_c10d.py: _DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024
DDP_FIRST_BUCKET_BYTES = 1024 * 1024


class Bucketer:
    """Groups gradient bytes into buckets in readiness order and issues one collective per bucket."""

    def __init__(self, b: ScheduleBuilder, op: str, cap_bytes: int, first_cap_bytes: int, tag: str):
        self.b, self.op, self.tag = b, op, tag
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
        tid = self.b.add(f"{self.tag} {self.op} bucket {len(self.ids)}", "comm", "comm",
                         deps=(self.ready_after,), collective=Collective(self.op, "dp", self.fill))
        self.ids.append(tid)
        self.fill, self.cap = 0, self.next_cap


def build(ctx: Context, stage: int):
    """The schedule of one step for stage 0 (DDP), 1 (ZeRO-1) or 2 (ZeRO-2)."""
    b = ScheduleBuilder()
    s = ctx.scenario
    n = s.cluster.num_gpus
    if stage == 0:
        op, cap, first = "all_reduce", s.training.bucket_size, DDP_FIRST_BUCKET_BYTES
    else:
        op = "reduce_scatter"
        cap = first = DEEPSPEED_BUCKET_ELEMENTS * ctx.gb
    comm_ids: list[int] = []
    last = None
    for m in range(ctx.accum):
        communicate = n > 1 and (m == ctx.accum - 1 or stage == 2)
        bucketer = Bucketer(b, op, cap, first, f"mb{m}") if communicate else None

        def ready(i, unit, task_id, bucketer=bucketer):
            if bucketer is not None and unit.params:
                bucketer.add(unit.params * ctx.gb, task_id)

        last = micro_batch(b, ctx, m, after_bwd=ready)
        if bucketer is not None:
            bucketer.add(ctx.work.edge_params * ctx.gb, last)
            bucketer.flush()
            comm_ids += bucketer.ids
    local = s.model.params if stage == 0 else shard_of(s.model.params, n)
    opt = optimizer_step(b, ctx, local, deps=(last, *comm_ids))
    if stage >= 1 and n > 1:
        # All-gather the updated weights: the full buffer is every rank's shard of weights.
        remaining = shard_of(s.model.params, n) * n
        bucket = 0
        while remaining > 0:
            elements = min(remaining, DEEPSPEED_BUCKET_ELEMENTS)
            b.add(f"all_gather weights bucket {bucket}", "comm", "comm", deps=(opt,),
                  collective=Collective("all_gather", "dp", elements * ctx.pb))
            remaining -= elements
            bucket += 1
    return b
