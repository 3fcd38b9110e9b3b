"""The step's memory peak, found analytically (execution/memory.py's activations and buffers):
the candidate moments of a pipeline stage's walk over its passes, each once, and the largest."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TypeAlias, overload

import numpy as np

from simulator.execution import finetune, layout
from simulator.execution.frameworks import strategy_for
from simulator.execution.pipeline import passes
from simulator.model.optimizer_kernels import update_temporary_bytes_per_param
from simulator.spec.specs import Scenario


@dataclass(frozen=True, kw_only=True)
class Moment:
    """A candidate for the step's memory peak: live activations and buffers at one point."""

    label: str
    activations_bytes: int
    buffers_bytes: int  # static buffers included
    static_buffers_bytes: int

    @property
    def bytes(self) -> int:
        return self.activations_bytes + self.buffers_bytes


def peak_moment(scenario: Scenario, stage: int = 0, lay: layout.Layout | None = None) -> Moment:
    """The largest moment of a stage's step. Walking its pipeline passes in order, the
    candidates are the backward passes: at each, the activations of every other micro-batch
    in flight are live, and within the pass the largest of its head's backward (all of the
    chunk's activations, the logits included) and each block's backward (activations of the
    blocks before it, its recompute working set and the strategy's transient buffers). Where a
    strategy states them (PassEdges), the first moment of each pass is a candidate too, with
    the gradients the previous pass, a backward, may leave in its last reduce-scatters."""
    t, par = scenario.training, scenario.training.parallel
    strategy = strategy_for(t)
    pb, gb = t.precision.weight_bytes, t.precision.grad_bytes
    lay = lay or layout.model_layout(scenario.model, par, stage)
    if finetune.active(scenario):
        # The adapters are the trainable parameters the strategy's buffers hold; the frozen
        # base's gathered copies and the dequantization buffer are held beside them.
        acts = finetune.activations(scenario, lay)
        extra = finetune.extra_static_bytes(scenario, lay, strategy)
        lay = finetune.trainable_layout(scenario, lay)
    else:
        acts, extra = layout.stage_activations(scenario, lay), 0
    static = strategy.static_buffer_bytes(scenario, lay, pb, gb) + extra
    static += dispatch_buffer_bytes(scenario, lay)
    within = _chunk_moments(scenario, strategy, lay, acts, static, pb, gb)
    v = par.pipeline.virtual_stages
    chunks = [within[k * par.pp + stage] for k in range(v)]
    walk = walk_events(scenario, stage)
    # Each event's bytes: the activations in flight (counts x each chunk's), its candidate's
    # (none: never the largest) and the gradients the previous backward may leave in flight.
    cand = [_NONE if e is None else e.bytes for _, _, (e, _, _) in chunks]
    cand += [m.bytes for _, m, _ in chunks]
    cand += [_NONE if e is None else e.bytes for _, _, (_, e, _) in chunks]
    extras = [pending for _, _, (_, _, pending) in chunks] + [0]
    fulls = np.array([full for full, _, _ in chunks], dtype=np.int64)
    totals = walk.counts @ fulls
    values = (
        totals
        + np.array(cand, dtype=np.int64)[walk.slot]
        + np.array(extras, dtype=np.int64)[walk.carry]
    )
    i = int(np.argmax(values))  # the first of the largest, as a walk keeping the first would
    assert values[i] >= 0, "every stage runs a backward pass, and each has a moment"
    kind, k, _, carry = walk.events[i]
    _, moment, edges = chunks[k]
    candidate = moment if kind == _BACKWARD else edges[0] if kind == _FORWARD_EDGE else edges[1]
    assert candidate is not None
    moment = dataclasses.replace(
        candidate,
        activations_bytes=candidate.activations_bytes + int(totals[i]),  # the others in flight
        buffers_bytes=candidate.buffers_bytes + extras[carry],
    )
    step = strategy.step_transient_bytes(scenario, lay, pb, gb) + _update_temporary(
        scenario, strategy, lay
    )
    if step and static + step > moment.bytes:
        # After every backward: no activations, the optimizer's own buffers.
        return Moment(
            label="optimizer step",
            activations_bytes=0,
            buffers_bytes=static + step,
            static_buffers_bytes=static,
        )
    return moment


def _update_temporary(scenario: Scenario, strategy, lay: layout.Layout) -> int:
    """What the optimizer update allocates beside the model states (foreach's denominators,
    model/optimizer_kernels.py): per parameter this rank's optimizer updates. That count is the
    optimizer states' bytes per byte of state per parameter (a strategy's states are linear in
    k; Megatron's adds its fp32 main gradients beside them, hence the difference)."""
    t = scenario.training
    per_param = update_temporary_bytes_per_param(t.optimizer_implementation, t.precision)
    if not per_param or t.offload.optimizer:
        return 0
    updated = (
        strategy.states(scenario, lay, 1.0).optimizer
        - strategy.states(scenario, lay, 0.0).optimizer
    )
    return updated * per_param


# The moments of the walk, by kind: where a forward pass begins (PassEdges' first), within a
# backward pass (its peak), where a backward pass begins (PassEdges' second).
_FORWARD_EDGE, _BACKWARD, _BACKWARD_EDGE = 0, 1, 2
_NONE = -(1 << 62)  # the bytes of no candidate: below any moment's
# (kind, virtual chunk k of the pass, micro-batches in flight per virtual chunk, the virtual chunk
# whose backward ran just before (its gradients may be in flight) or -1)
_Event: TypeAlias = "tuple[int, int, tuple[int, ...], int]"


@dataclass(frozen=True, kw_only=True, eq=False)
class _Walk:
    """A stage's walk (walk_events) as arrays: each event's micro-batches in flight per virtual
    chunk, its candidate's slot (kind x v + chunk) and the chunk whose backward ran before it
    (v: none)."""

    events: tuple[_Event, ...]
    counts: np.ndarray  # events x v
    slot: np.ndarray
    carry: np.ndarray


def dispatch_buffer_bytes(scenario: Scenario, lay: layout.Layout) -> int:
    """The allgather dispatcher's gathered tokens, [ep x etp x T, h] in the activations' dtype
    (T: the rank's tokens of a micro-batch, b x s/cp, / tp with sequence parallelism): gathered
    into Megatron-Core's global memory buffer (token_dispatch: use_global_buffer=True), one
    per rank that every MoE layer reuses, held for the step. 0 for the other dispatchers or a
    stage without MoE blocks."""
    t, par = scenario.training, scenario.training.parallel
    if t.moe.dispatcher != "allgather" or not any(b.moe for b in lay.blocks):
        return 0
    tokens = t.micro_batch_size * (t.seq_len // par.cp)
    tokens = -(-tokens // par.tp) if par.sequence_parallel else tokens
    h = lay.arch.hidden_size
    return par.ep * par.etp * tokens * h * t.precision.activation_bytes


def walk_events(scenario: Scenario, stage: int) -> _Walk:
    """The candidate moments of a stage's walk over its passes (pipeline.stage_order's order),
    each once, in the order of their first occurrence: a moment's bytes are a function of its
    event (the activations in flight are the counts times each chunk's), and a repeated event
    never beats its first occurrence (peak_moment keeps the first of equal candidates), so the
    largest is the same as the walk over every pass would find."""
    t = scenario.training
    par = t.parallel
    return _walk_events(
        par.pipeline.schedule,
        stage,
        par.pp,
        t.grad_accum_steps,
        par.pipeline.virtual_stages,
        t.moe.overlap == "1f1b",
    )


# Memo of walk_events: a pure function of the schedule's six numbers (stage_order's arguments),
# shared by every scenario of a layout search with the same pipeline shape; a few hundred small
# tuples where a walk was thousands of passes.
@functools.lru_cache(maxsize=4096)
def _walk_events(schedule: str, stage: int, pp: int, m: int, v: int, combined: bool) -> _Walk:
    counts = [0] * v
    seen: set[_Event] = set()
    out: list[_Event] = []
    carry = -1

    def add(event: _Event) -> None:
        if event not in seen:
            seen.add(event)
            out.append(event)

    for p in passes(schedule, stage, pp, m, v, combined=combined):
        k = p.chunk // pp
        if p.forward:
            add((_FORWARD_EDGE, k, tuple(counts), carry))
            counts[k] += 1
            carry = -1
            continue
        counts[k] -= 1
        now = tuple(counts)
        add((_BACKWARD, k, now, -1))
        add((_BACKWARD_EDGE, k, now, carry))
        carry = k
    return _Walk(
        events=tuple(out),
        counts=_frozen(np.array([e[2] for e in out], dtype=np.int64).reshape(len(out), v)),
        slot=_frozen(np.array([e[0] * v + e[1] for e in out], dtype=np.intp)),
        carry=_frozen(np.array([e[3] if e[3] >= 0 else v for e in out], dtype=np.intp)),
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # shared by every caller of the memo
    return a


# A pass's edges: the first moments of a forward and a backward pass, and the gradient bytes
# a backward pass leaves in flight (PassEdges, as Moments).
_Edges: TypeAlias = "tuple[Moment | None, Moment | None, int]"


def _chunk_moments(
    scenario, strategy, lay, acts, static, pb, gb
) -> dict[int, tuple[int, Moment, _Edges]]:
    """Per chunk of the stage: its activations after forward, the peak moment of one of its
    backward passes (with no other micro-batch in flight), and the strategy's pass edges
    (forward and backward first moments, gradient bytes left in flight; see PassEdges)."""
    out: dict[int, tuple[int, Moment, _Edges]] = {}
    offset = 0
    for chunk in lay.chunks:
        n = len(chunk.blocks)
        blocks, kept, working = (
            chunk.blocks,
            acts.blocks[offset : offset + n],
            acts.working[offset : offset + n],
        )
        offset += n
        emb = acts.embedding if chunk.embedding else 0
        output = acts.output if chunk.head else 0
        full = emb + sum(kept) + output
        custom = strategy.chunk_moments(scenario, lay, chunk, (emb, kept, working, output), pb, gb)
        fwd, bwd, pending = strategy.pass_edges(
            scenario, lay, chunk, (emb, kept, working, output), pb, gb
        )
        edges = (_moment(fwd, static), _moment(bwd, static), pending)
        if custom is not None:
            out[chunk.index] = (
                full,
                _moment(max(custom, key=lambda m: m[1] + m[2]), static),
                edges,
            )
            continue
        label = (
            "forward head / start of backward (all activations and the logits live)"
            if chunk.head
            else f"start of backward of model chunk {chunk.index}"
        )
        best = Moment(
            label=label,
            activations_bytes=full,
            static_buffers_bytes=static,
            buffers_bytes=static
            + (strategy.buffers_at_backward_start(scenario, blocks, pb, gb) if chunk.head else 0),
        )
        live = emb + sum(kept)
        top, at = best.bytes, -1  # the largest so far, and its block (-1: the start)
        top_act = top_buf = 0
        for i in range(n - 1, -1, -1):
            act = live + working[i]
            buf = static + strategy.buffers_at_block_backward(scenario, blocks, i, pb, gb)
            if act + buf > top:
                top, at, top_act, top_buf = act + buf, i, act, buf
            live -= kept[i]
        if at >= 0:
            best = Moment(
                label=f"backward {blocks[at].name}",
                activations_bytes=top_act,
                buffers_bytes=top_buf,
                static_buffers_bytes=static,
            )
        out[chunk.index] = (full, best, edges)
    return out


@overload
def _moment(candidate: tuple[str, int, int], static: int) -> Moment: ...
@overload
def _moment(candidate: tuple[str, int, int] | None, static: int) -> Moment | None: ...
def _moment(candidate: tuple[str, int, int] | None, static: int) -> Moment | None:
    """A strategy's (label, activations, transient buffers) candidate as a Moment."""
    if candidate is None:
        return None
    label, act, buf = candidate
    return Moment(
        label=label, activations_bytes=act, buffers_bytes=static + buf, static_buffers_bytes=static
    )
