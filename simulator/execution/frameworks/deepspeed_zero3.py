"""DeepSpeed ZeRO stage 3 (deepspeed/runtime/zero/stage3.py, partitioned_param_coordinator.py,
partition_parameters.py), with DeepSpeed's defaults.

- Each parameter is partitioned on its own, padded to a multiple of the data-parallel size
  (`_aligned_size`): a rank stores ceil(numel / n) elements of each, and its gradient and
  optimizer states; parameters of at most stage3_param_persistence_threshold elements (1e5:
  norms, biases) stay whole on every rank.
- Parameters are fetched per module by hooks, prefetched along the recorded trace and bounded
  by stage3_max_live_parameters, and released unless reused within stage3_max_reuse_distance
  (deepspeed_plan.py); the sub-layer steps and their memory are in deepspeed_steps.py. A
  coalesced all-gather moves the padded partitions of its parameters.
- Gradients are copied into one IPG buffer of reduce_bucket_size elements (allocated whole at
  start, contiguous_gradients) and reduce-scattered per bucket when the next gradient would
  overflow it (reduce_scatter_coalesced: each tensor padded to n), on a side stream
  (overlap_comm defaults to true for stage 3); every micro-batch (no no_sync in ZeRO-3). The
  epilogue synchronizes the reduce stream, so the next forward waits for the last bucket.
  Simplification: a gradient is taken as copied into the bucket as soon as its sub-layer's
  backward ends, though DeepSpeed's copy queues behind a reduce-scatter still reading the buffer.
- The optimizer step casts one sub_group_size tile of the bf16 gradient partition to fp32 at a
  time (`_prepare_fp32_grad_for_sub_group`).
- Not modelled: the coalesced all-gather's flat buffer beside the per-parameter copies during
  AllGatherCoalescedHandle.wait, the host's two-event fetch throttle, parameter offload.
"""

from __future__ import annotations

import math
from typing import ClassVar

from simulator.core.errors import Problem
from simulator.execution.frameworks.buckets import BucketPlan, Buckets
from simulator.execution.frameworks.deepspeed import fp32_grad_bytes
from simulator.execution.frameworks.deepspeed_plan import Knobs
from simulator.execution.frameworks.deepspeed_steps import (
    coordinator,
    grad_tensors,
    micro_batch_steps,
    walk,
)
from simulator.execution.frameworks.units import padded, stage_modules
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.strategies.base import StateBytes
from simulator.execution.strategies.fsdp import Zero3
from simulator.execution.strategies.optimizer import optimizer_step
from simulator.execution.strategies.passes import StageSchedule


def _tensors(mods) -> dict[str, int]:
    return {t.name: t.numel for ms in mods.values() for m in ms for t in m.tensors}


def _knobs(s) -> Knobs:
    ds = s.training.framework.deepspeed
    # One rank: nothing is partitioned (DeepSpeed's world-size-1 gather is a no-op).
    keep = math.inf if s.training.parallel.dp == 1 else ds.stage3_param_persistence_threshold
    return Knobs(
        prefetch_bucket_size=ds.stage3_prefetch_bucket_size,
        max_live_parameters=ds.stage3_max_live_parameters,
        max_reuse_distance=ds.stage3_max_reuse_distance,
        persistence_threshold=keep,
    )


def _units(mods, chunk) -> list[tuple[str, tuple]]:
    names = (
        (["embedding"] if chunk.embedding else [])
        + [b.name for b in chunk.blocks]
        + (["head"] if chunk.head else [])
    )
    return [(n, mods[n]) for n in names if n in mods]


def _shared(mods) -> set[str]:
    return {t.name for m in mods.get("embedding", ()) for t in m.tensors}


class DeepSpeedZero3(Zero3):
    context_parallel = False  # DeepSpeed's sequence parallelism (Ulysses) is not modelled
    framework = "deepspeed"
    description = (
        "DeepSpeed ZeRO stage 3: per-module fetch with prefetch, live-parameter bound, persistence"
    )
    offload_params = False
    offload_refusals: ClassVar[dict[str, tuple[str, str]]] = {
        "params": (
            "parameter offload (ZeRO-Infinity) is not modelled for the deepspeed profile",
            "use framework pytorch-fsdp (FSDP CPUOffload) or offload the optimizer only",
        )
    }

    def validate(self, t, dp: int) -> list[Problem]:
        problems = super().validate(t, dp)
        if t.parallel.pp > 1:
            problems.append(
                Problem(
                    "training.strategy",
                    "DeepSpeed's pipeline engine supports ZeRO stage 1 "
                    "only (deepspeed/runtime/pipe/engine.py)",
                    "use zero1 with pipeline parallelism",
                )
            )
        elif t.parallel.pipeline.schedule != "1f1b" and t.grad_accum_steps > 1:
            problems.append(
                Problem(
                    "training.parallelism.pipeline.schedule",
                    "DeepSpeed runs the micro-batches of a step one after another",
                    "leave the pipeline schedule at 1f1b",
                )
            )
        return problems

    def states(self, s, lay, k: float) -> StateBytes:
        n, p = self.shard_degree(s), s.training.precision
        local = sum(math.ceil(v / n) for v in _tensors(stage_modules(s, lay.stage, lay)).values())
        return StateBytes(
            params=local * p.weight_bytes,
            grads=local * p.grad_bytes,
            optimizer=math.ceil(local * k),
        )

    def static_buffer_bytes(self, s, lay, pb, gb) -> int:
        ds = s.training.framework.deepspeed
        if s.training.parallel.dp == 1:
            return 0
        persistent = sum(
            v
            for v in _tensors(stage_modules(s, lay.stage, lay)).values()
            if v <= ds.stage3_param_persistence_threshold
        )
        return persistent * pb + (ds.reduce_bucket_size * gb if ds.contiguous_gradients else 0)

    def buffers_at_backward_start(self, s, blocks, pb, gb) -> int:
        return 0

    def buffers_at_block_backward(self, s, blocks, i, pb, gb) -> int:
        return 0

    def step_transient_bytes(self, s, lay, pb, gb) -> int:
        if s.training.parallel.dp == 1 or s.training.offload.optimizer:
            return 0
        local = self.states(s, lay, 0).params // s.training.precision.weight_bytes
        return fp32_grad_bytes(s) * min(local, s.training.framework.deepspeed.sub_group_size)

    def chunk_moments(self, s, lay, chunk, acts, pb, gb):
        emb, kept, working, output = acts
        mods = stage_modules(s, lay.stage, lay)
        per_unit = {"embedding": (emb, 0), "head": (output, 0)}
        per_unit.update({b.name: (kept[i], working[i]) for i, b in enumerate(chunk.blocks)})
        steps = micro_batch_steps(_units(mods, chunk), s.training.activation_checkpointing)
        walked = walk(steps, coordinator(steps, _knobs(s)), per_unit, _shared(mods), pb, gb)
        return [(w.label, w.activations, w.buffers) for w in walked]

    def collectives(self, s):
        group = self.grad_group(s)
        op = "reduce_scatter" if s.training.framework.deepspeed.reduce_scatter else "all_reduce"
        return [("all_gather", group), (op, group)]

    def session(self, ctx, b):
        raise NotImplementedError("DeepSpeed ZeRO-3 builds its own schedule")

    def schedule(self, ctx) -> ScheduleBuilder:
        b = ScheduleBuilder()
        _Zero3Schedule(ctx, b).run()
        return b


class _Zero3Schedule:
    """One rank's step: per micro-batch the planned steps, their gathers and gradient buckets."""

    def __init__(self, ctx, b: ScheduleBuilder):
        s = self.s = ctx.scenario
        self.ctx, self.b, self.ds = ctx, b, s.training.framework.deepspeed
        self.group = ctx.mesh.group("dp")
        self.n = self.group.size
        (chunk,) = ctx.chunks.values()
        self.works = {
            u.name: u for u in (chunk.embedding, *chunk.blocks, chunk.head) if u is not None
        }
        mods = stage_modules(s, ctx.stage)
        self.shared = _shared(mods)
        self.steps = micro_batch_steps(_units(mods, chunk), s.training.activation_checkpointing)
        self.plans = coordinator(self.steps, _knobs(s))
        self.tp = StageSchedule(ctx, b)
        overlap = self.ds.overlap(3)
        self.bucket_plan = BucketPlan(
            op="reduce_scatter" if self.ds.reduce_scatter else "all_reduce",
            cap_elements=self.ds.reduce_bucket_size,
            flush_before_overflow=True,
            elem_bytes=ctx.gb,
            pad_each=self.n if self.ds.reduce_scatter else 1,
            stream="comm_rs" if overlap else "compute",
        )
        self.reduces: list[int] = []
        self.last: int | None = None

    def run(self) -> None:
        wait: tuple[int, ...] = ()
        for p in self.ctx.order:
            kind = ("forward",) if p.forward else ("recompute", "backward")
            if p.forward:
                self.source: dict[str, int] = {}
            else:
                self.buckets = Buckets(
                    self.b, self.group, self.bucket_plan, self.reduces, f"mb{p.micro_batch}"
                )
            for k, st in enumerate(self.steps):
                if st.kind in kind:
                    self.step(f"mb{p.micro_batch}", k, st, wait)
                    wait = ()
            if not p.forward:
                self.buckets.flush(self.last)
                wait = tuple(self.reduces[-1:])  # the epilogue synchronizes the reduce stream
        local = self._local()
        opt = optimizer_step(self.b, self.ctx, local, deps=(self.last, *self.reduces))
        extra = (
            0
            if self.s.training.offload.optimizer or self.n == 1
            else fp32_grad_bytes(self.s) * min(local, self.ds.sub_group_size)
        )
        if extra:
            self.b.adjust(opt, alloc=extra, free=extra)

    def _local(self) -> int:
        mods = stage_modules(self.s, self.ctx.stage)
        return sum(math.ceil(v / self.n) for v in _tensors(mods).values())

    def step(self, tag: str, k: int, st, wait) -> None:
        b, pb, plan = self.b, self.ctx.pb, self.plans[k]
        issue = None
        if plan.gathers:
            held = sum(t.numel for g in plan.gathers for t in g) * pb
            issue = b.add(
                f"{tag} fetch for {st.kind} {st.unit}",
                "host",
                "issue",
                deps=(self.last, *wait),
                alloc_bytes=held,
            )
            for g in plan.gathers:
                size = sum(padded(t.numel, self.n) for t in g) * pb
                ag = b.add(
                    f"{tag} all_gather {len(g)} params ({st.kind} {st.unit})",
                    "comm",
                    "comm",
                    deps=(issue,),
                    collective=Collective(op="all_gather", group=self.group, size_bytes=size),
                )
                self.source.update({t.name: ag for t in g})
        need = {self.source[t.name] for m in st.modules for t in m.tensors if t.name in self.source}
        self.last = self.compute(
            tag, st, (issue, *wait, *sorted(need)), sum(t.numel for t in plan.released) * pb
        )
        if st.kind == "backward":
            self.buckets.add(grad_tensors(st, self.shared), self.last)

    def compute(self, tag: str, st, deps, released: int) -> int:
        unit = self.works[st.unit]
        kept, working = unit.act_bytes, unit.working_bytes
        grads = sum(grad_tensors(st, self.shared)) * self.ctx.gb if st.kind == "backward" else 0
        alloc = grads + ((kept if st.kind == "forward" else working) if st.first else 0)
        free = released + grads + (kept + working if st.kind == "backward" and st.last else 0)
        forward = st.kind != "backward"
        if st.segment < 0:  # selective recompute: the attention core, no collectives
            return self.b.add(
                f"{tag} recompute {unit.name}",
                "compute",
                "recompute",
                deps=deps,
                duration_s=unit.recompute_s,
                alloc_bytes=alloc,
                free_bytes=free,
            )
        seg = unit.segments[st.segment]
        inline = self._inline(unit, st.segment, forward)
        comm_s = sum(self.ctx.inline_s(c) for c in inline)
        name = f"{tag} {st.kind} {unit.name}" + (f" {seg.name}" if len(unit.segments) > 1 else "")
        return self.b.add(
            name,
            "compute",
            st.kind,
            deps=deps,
            duration_s=(seg.fwd_s if forward else seg.bwd_s) + comm_s,
            alloc_bytes=alloc,
            free_bytes=free,
            inline=inline,
            inline_comm_s=comm_s,
        )

    def _inline(self, unit, g: int, forward: bool) -> tuple:
        """The sub-layer's tensor-parallel collectives, from its layer description (model/ops.py
        Segment; the embedding's and the head's too)."""
        if self.s.training.parallel.tp == 1:
            return ()
        seg = unit.segments[g]
        comms = seg.before + seg.after if forward else seg.bwd_before + seg.bwd_after
        return tuple(self.tp._collective(c) for c in comms)
