"""The compute steps of one micro-batch under DeepSpeed ZeRO-3 and the module hooks in each:
the GPU-side granularity of the coordinator's plan (deepspeed_plan.py).

A step is one compute task: a unit's forward, full recompute or backward, per sub-layer
(attention, cross-attention, MLP) for a block, whole for the embedding and the head; a
selective recompute is one step without hooks (the attention core has no parameters). Its
hooks are the modules it runs, in forward order for forward and recompute steps and reversed
for backward (DeepSpeed's pre-backward hooks fire as each module's output gradient arrives).

The coordinator's host-side decisions become GPU time this way: the all-gathers a step's hooks
issue are allocated when the step begins (when the previous compute step ends: DeepSpeed's
host runs hook by hook), and the parameters they release are freed when the step's compute
ends (record_stream keeps them until then). The analytic walk of the step's memory is here
too, so that the schedule (deepspeed_zero3.py) and the peak walk read the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.execution.frameworks.deepspeed_plan import Hook, Knobs, StepPlan, plan
from simulator.model.tensors import Module


@dataclass(frozen=True)
class Step:
    kind: str  # forward | recompute | backward
    unit: str  # the unit's name ("embedding", a block's, "head")
    segment: int  # index of the unit's sub-layer; -1: the whole unit (selective recompute)
    modules: tuple[Module, ...]
    first: bool = False  # forward: allocates the unit's activations; recompute: its working set
    last: bool = False  # backward: frees the unit's activations and working set


def _segments(modules: tuple[Module, ...]) -> list[tuple[Module, ...]]:
    """A unit's modules grouped by sub-layer, in forward order."""
    names = list(dict.fromkeys(m.segment for m in modules))
    return [tuple(m for m in modules if m.segment == n) for n in names]


def micro_batch_steps(
    units: list[tuple[str, tuple[Module, ...]]], checkpointing: str
) -> list[Step]:
    """Forward then backward steps of one micro-batch over `units` (name, modules) in forward order."""
    fwd: list[Step] = []
    bwd: list[Step] = []
    for name, mods in units:
        segs = _segments(mods)
        fwd += [Step("forward", name, g, seg, first=g == 0) for g, seg in enumerate(segs)]
        back = [
            Step("backward", name, g, tuple(reversed(seg)), last=g == 0)
            for g, seg in enumerate(segs)
        ]
        block = name not in ("embedding", "head")
        if block and checkpointing == "full":
            back = [
                Step("recompute", name, g, seg, first=g == 0) for g, seg in enumerate(segs)
            ] + back[::-1]
        elif block and checkpointing == "selective":
            back = [Step("recompute", name, -1, (), first=True)] + back[::-1]
        else:
            back = back[::-1]
        bwd = back + bwd
    return fwd + bwd


def coordinator(steps: list[Step], knobs: Knobs) -> list[StepPlan]:
    hooks = [Hook(k, m.tensors) for k, st in enumerate(steps) for m in st.modules]
    return plan(hooks, len(steps), knobs)


def grad_tensors(step: Step, shared: set[str]) -> list[int]:
    """Element counts of the gradients a backward step produces, in readiness order (a tied
    output projection's gradient is counted with the embedding)."""
    keep = set() if step.unit == "embedding" else shared
    return [t.numel for m in step.modules for t in reversed(m.tensors) if t.name not in keep]


@dataclass(frozen=True)
class Walked:
    label: str
    activations: int
    buffers: int


def walk(
    steps: list[Step],
    plans: list[StepPlan],
    acts: dict[str, tuple[int, int]],
    shared: set[str],
    pb: int,
    gb: int,
) -> list[Walked]:
    """Memory during each step's compute: activations (kept, working) per unit, the gathered
    parameters not yet freed, and the step's own gradients."""
    out, act, live = [], 0, 0
    for st, pl in zip(steps, plans):
        live += sum(t.numel for g in pl.gathers for t in g) * pb
        kept, working = acts.get(st.unit, (0, 0))
        if st.first:
            act += kept if st.kind == "forward" else working
        grads = sum(grad_tensors(st, shared)) * gb if st.kind == "backward" else 0
        out.append(
            Walked(
                f"{st.kind} {st.unit}" + (f" sub-layer {st.segment}" if st.segment > 0 else ""),
                act,
                live + grads,
            )
        )
        live -= sum(t.numel for t in pl.released) * pb
        if st.kind == "backward" and st.last:
            act -= kept + working
    return out
