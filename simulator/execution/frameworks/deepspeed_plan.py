"""DeepSpeed ZeRO-3's parameter coordinator, replayed on the host side: which parameters each
module hook gathers, prefetches and releases (deepspeed/runtime/zero/partitioned_param_coordinator.py).

The trace is the sequence of module hook calls of one forward and backward (DeepSpeed records
it on the first step and follows it after). At each hook (`fetch_sub_module`):
1. the module's own parameters that are not available are all-gathered (one coalesced call);
2. its entries are popped from the parameter queue (the trace, parameter by parameter);
3. prefetch: entries are popped while the elements chosen stay below
   min(max_live_parameters - available elements, prefetch_bucket_size); each popped parameter
   that is not available is chosen (one may overshoot); the chosen are all-gathered together;
4. after the module runs (`release_sub_module`) each of its parameters is released unless it
   is persistent, a prefetch already popped a later use of it, or it is used again within
   max_reuse_distance elements of the modules that follow.
Parameters of at most param_persistence_threshold elements are persistent: never partitioned,
never gathered. `available` counts gathered elements, in flight or not, until released; it
bounds prefetching only (a module's own parameters are always fetched). At the end of the
backward everything is released (release_and_reset_all).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from simulator.model.tensors import Tensor


@dataclass(frozen=True)
class Hook:
    step: int  # the compute step the module runs in
    tensors: tuple[Tensor, ...]  # the module's direct parameters


@dataclass
class StepPlan:
    gathers: list[tuple[Tensor, ...]] = field(
        default_factory=list
    )  # coalesced all-gathers, in order
    released: list[Tensor] = field(default_factory=list)  # freed when the step ends


@dataclass(frozen=True, kw_only=True)
class Knobs:
    prefetch_bucket_size: int
    max_live_parameters: int
    max_reuse_distance: int
    persistence_threshold: float  # elements; math.inf with one rank (nothing is partitioned)


def _unique(tensors) -> list[Tensor]:
    return list({t.name: t for t in tensors}.values())


def plan(hooks: list[Hook], steps: int, k: Knobs, trace: list | None = None) -> list[StepPlan]:
    """Per compute step: the all-gathers issued by its hooks and the parameters they release.
    `trace`, if given, gets (hook, available elements before the prefetch, after it) per hook."""
    out = [StepPlan() for _ in range(steps)]
    persistent = {t.name for h in hooks for t in h.tensors if t.numel <= k.persistence_threshold}
    queue = deque(
        (t, i)
        for i, h in enumerate(hooks)
        for t in sorted(_unique(h.tensors), key=lambda t: t.name)
    )
    reuse = _reuse_within(hooks, k.max_reuse_distance)
    available: set[str] = set()
    latest: dict[str, int] = {}  # most recent use popped off the queue, per parameter
    live = 0

    def gather(step: int, tensors: list[Tensor]) -> None:
        nonlocal live
        out[step].gathers.append(tuple(tensors))
        available.update(t.name for t in tensors)
        live += sum(t.numel for t in tensors)

    for i, h in enumerate(hooks):
        own = [
            t for t in _unique(h.tensors) if t.name not in persistent and t.name not in available
        ]
        if own:
            gather(h.step, own)
        while queue and queue[0][1] <= i:
            t, use = queue.popleft()
            latest[t.name] = max(latest.get(t.name, -1), use)
        before = live
        if k.prefetch_bucket_size > 0:
            budget = min(k.max_live_parameters - live, k.prefetch_bucket_size)
            chosen: dict[str, Tensor] = {}
            numel = 0
            while queue and numel < budget:
                t, use = queue.popleft()
                latest[t.name] = max(latest.get(t.name, -1), use)
                if t.name not in persistent and t.name not in available and t.name not in chosen:
                    chosen[t.name] = t
                    numel += t.numel
            if chosen:
                gather(h.step, list(chosen.values()))
        if trace is not None:
            trace.append((i, before, live))
        for t in _unique(h.tensors):
            if t.name in persistent or latest.get(t.name, -1) > i or (i, t.name) in reuse:
                continue
            available.discard(t.name)
            live -= t.numel
            out[h.step].released.append(t)
    left = {t.name: t for h in hooks for t in h.tensors if t.name in available}
    if hooks:
        out[hooks[-1].step].released.extend(left.values())
    return out


def _reuse_within(hooks: list[Hook], distance: int) -> set[tuple[int, str]]:
    """(hook, parameter) pairs whose parameter is used again before `distance` elements of the
    following modules' parameters have gone by (`__params_to_release` walks the trace from the
    next module, counting every parameter it meets)."""
    prefix = [0]
    for h in hooks:
        prefix.append(prefix[-1] + sum(t.numel for t in h.tensors))
    nxt: dict[str, int] = {}
    keep = set()
    for i in range(len(hooks) - 1, -1, -1):
        for t in hooks[i].tensors:
            j = nxt.get(t.name)
            if j is not None and prefix[j] - prefix[i + 1] < distance:
                keep.add((i, t.name))
        for t in hooks[i].tensors:
            nxt[t.name] = i
    return keep
