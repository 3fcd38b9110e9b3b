"""Network backends the discrete-event engine drives: a fluid max-min model and an analytic bound.

A transfer is a costed collective (`cost.CollectiveCost`): phases in sequence, each a
latency followed by a bandwidth stage that puts `wire_bytes[e]` on each directed edge e.
`start(transfer)` returns a simpy event that fires when it completes.

Fluid backend (flow-level, as in flow-level network simulators): while several transfers
are in their bandwidth stage they share every directed link. Fairness definition: each
transfer j moves at a per-rank rate f_j (bytes/s sent by its busiest rank), and puts
k_je = wire_bytes_je / per_rank_wire_bytes_j bytes on link e per byte a rank sends (k = 1
for a single-channel ring whose flow crosses e once, 2 if it crosses twice). Rates are
max-min fair subject to sum_j k_je f_j <= capacity_e (progressive filling: raise all
unfrozen f_j together, freeze the transfers on each link that fills). Two rings that share
one link, each crossing it once, therefore get capacity/2 each on it, exactly like two TCP
flows; a transfer alone gets min_e capacity_e / k_je, i.e. exactly its standalone time.
Rates are recomputed only when a bandwidth stage starts or ends, so the number of events
grows with the number of collectives, not with GPUs x chunks. Per-link arrays are numpy,
indexed by the topology's edge index; rates of a set of concurrent phases are memoized in
the CommContext (steps repeat the same few combinations). A group of three or more phases that
share links is filled per sub-group linked by links that can fill (`sharing.FillSplit`): the
same answer, and sub-groups repeat far more often than whole groups in large pipeline layouts.

Analytic backend: no sharing; each transfer takes its standalone `time_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.system.comm.cost import CommContext
from simulator.system.comm.sharing import Demand, FillSplit, fixed_point_scale

# A bandwidth stage counts as finished when less than this fraction of it is left
# (floating-point residue of rate x time; 1e-9 of a 65 ms stage is 65 ps).
_DONE_FRACTION = 1e-9


def max_min_rates(
    capacity: np.ndarray,
    demands: list[tuple[np.ndarray, np.ndarray]],
    bounds: np.ndarray | None = None,
) -> np.ndarray:
    """Max-min fair rates f_j subject to sum_j k_je f_j <= capacity_e, by progressive filling.

    `demands[j]` = (edge indices, k_je > 0 on those edges). Returns f (one per demand).
    `bounds`: each demand's standalone bound b_j = min_e capacity_e / k_je, if known.

    Two reductions keep the filling small without changing its answer. The bound caps each
    demand (f_j <= b_j in the answer), so a link with sum_j k_je b_j <= capacity_e never
    fills and is dropped; the bounds themselves become one private link per demand. The
    links' loads are summed once and each demand's share taken off when it freezes, so each
    level of the filling is one pass over the links that can still fill.
    """
    n = len(demands)
    if n == 0:
        return np.zeros(0)
    if bounds is None:
        bounds = np.array([float((capacity[e] / k).min()) for e, k in demands])
    edges = np.concatenate([d[0] for d in demands])
    coef = np.concatenate([d[1] for d in demands])
    owner = np.repeat(np.arange(n), [len(d[0]) for d in demands])
    at_bounds = np.bincount(edges, weights=coef * bounds[owner], minlength=len(capacity))
    can_fill = at_bounds > capacity * (1 + 1e-9)
    keep = can_fill[edges]
    union = np.flatnonzero(can_fill)
    return _fill(
        capacity[union], np.searchsorted(union, edges[keep]), owner[keep], coef[keep], bounds
    )


def _fill(
    capacity: np.ndarray,
    local: np.ndarray,
    owner: np.ndarray,
    coef: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """The progressive filling of `max_min_rates` over the links that can fill (`capacity`, in
    ascending edge order): entries (link's index there, demand, k) on those links only, and each
    demand's bound as a private link."""
    n = len(bounds)
    rates = np.zeros(n)
    m = len(capacity)
    local = np.concatenate([local, m + np.arange(n)])
    owner = np.concatenate([owner, np.arange(n)])
    coef = np.concatenate([coef, np.ones(n)])
    cap = np.concatenate([capacity.astype(float), bounds])
    residual = cap.copy()
    load = np.bincount(local, weights=coef, minlength=len(cap))
    users = np.bincount(local, minlength=len(cap))  # unfrozen demands on each link
    frozen = np.zeros(n, bool)
    while not frozen.all():
        used = users > 0
        delta = float((residual[used] / load[used]).min())
        rates[~frozen] += delta
        residual -= delta * np.where(used, load, 0.0)
        full = used & (residual <= 1e-12 * cap)
        hit = np.zeros(n, bool)
        hit[owner[full[local]]] = True
        hit &= ~frozen
        if not hit.any():  # rounding left no link exactly full: the tightest one is
            share = residual[used] / load[used]
            tight = np.flatnonzero(used)[int(np.argmin(share))]
            hit[owner[local == tight]] = True
            hit &= ~frozen
        frozen |= hit
        gone = hit[owner]
        load -= np.bincount(local[gone], weights=coef[gone], minlength=len(cap))
        users -= np.bincount(local[gone], minlength=len(cap))
    return rates


@dataclass(eq=False)
class _Active:
    transfer: Any
    done: simpy.Event
    phase: int = 0
    remaining: float = 1.0  # fraction of the current bandwidth stage still to move
    record: Any = None  # the current stage's demand record (FluidNetwork._record)
    progress_rate: float = 0.0  # fraction per second
    unit_bytes: float = 1.0  # per-rank wire bytes of the current stage
    ph: Any = None  # the current stage's phase while it is active


def _demand(ph: Any) -> tuple[np.ndarray, np.ndarray]:
    """(edge indices, k_je) of a phase: bytes on each edge per byte its busiest rank sends."""
    return np.asarray(ph.edge_ids, np.int64), np.asarray(
        ph.wire_bytes, float
    ) / ph.per_rank_wire_bytes


class FluidNetwork:
    """Max-min fair sharing of directed links among concurrent collectives (see module doc)."""

    def __init__(self, env: simpy.Environment, comm: CommContext):
        self.env, self.comm = env, comm
        self.capacity = comm.capacity
        self.active: list[_Active] = []
        self.rate_updates = 0  # how many times rates were recomputed (tests, profiling)
        self._last_update = env.now
        self._timer_generation = 0
        self._deferred = False  # a rate update is scheduled for this instant
        self._scale = fixed_point_scale(self.capacity)
        self._split: FillSplit | None = None  # made at the first group of phases sharing links
        # The active stages' phases, in order -> their progress rates: what `_rates` and the
        # standalone snap give for them (a function of the phases alone; steps repeat the same
        # few combinations). Phases hash by identity; the keys keep them alive.
        self._progress: dict[tuple, list[float]] = {}

    def start(self, transfer: Any) -> simpy.Event:
        """Begin a transfer now; the returned event fires when its last phase ends."""
        state = _Active(transfer, self.env.event())
        self._begin_phase(state)
        return state.done

    def _begin_phase(self, st: _Active) -> None:
        phases = st.transfer.phases
        if st.phase >= len(phases):
            st.done.succeed(st.transfer)
            return
        latency = phases[st.phase].latency_s
        if latency > 0:
            self.env.timeout(latency).callbacks.append(lambda _ev: self._enter_bandwidth(st))
        else:
            self._enter_bandwidth(st)

    def _enter_bandwidth(self, st: _Active) -> None:
        ph = st.transfer.phases[st.phase]
        if ph.bandwidth_s <= 0 or len(ph.edge_ids) == 0:
            st.phase += 1
            self._begin_phase(st)
            return
        self._advance()
        st.remaining, st.unit_bytes, st.ph = 1.0, ph.per_rank_wire_bytes, ph
        st.record = self._record(ph)
        self.active.append(st)
        self._reschedule_at_end_of_instant()

    def _reschedule_at_end_of_instant(self) -> None:
        """One rate update for every stage that enters at this instant (many start together:
        pipeline stages' sends, a step's first collectives): no time passes before it, so the
        rates are those an update per entry would end with."""
        if not self._deferred:
            self._deferred = True
            self.env.timeout(0).callbacks.append(self._deferred_reschedule)

    def _deferred_reschedule(self, _event) -> None:
        self._deferred = False
        self._reschedule()

    def _advance(self) -> None:
        """Move every active stage forward at its current rate up to now."""
        dt = self.env.now - self._last_update
        if dt > 0:
            for st in self.active:
                st.remaining -= st.progress_rate * dt
        self._last_update = self.env.now

    def _rates(self) -> list[float]:
        """Max-min fair rates of the active stages. Stages that share no link with any other get
        their standalone rate; the others are filled per group of stages linked by shared links,
        and each group's rates are memoized by the stages' shapes (steps repeat them)."""
        phases = [st.transfer.phases[st.phase] for st in self.active]
        rates = [ph.per_rank_wire_bytes / ph.bandwidth_s for ph in phases]
        if len(phases) < 2:
            return rates
        for component in self.comm.sharing.groups(phases):
            if len(component) == 1:
                continue
            component.sort(key=lambda i: phases[i].shape)
            key = tuple(phases[i].shape for i in component)
            # Two phases: filled at once (splitting them would cost more than it saves).
            fill = self._split_filled if len(component) > 2 else self._filled
            found = self.comm.rates.get(
                # The Memo calls the lambda at once (on a miss): `component` is this iteration's.
                key,
                lambda: fill([phases[i] for i in component]),  # noqa: B023
            )
            # A transfer slower than its links alone allow (NCCL's LL bandwidth cap) keeps its cap.
            for i, f in zip(component, found.tolist()):
                rates[i] = min(f, rates[i])
        return rates

    def _split_filled(self, phases: list[Any]) -> np.ndarray:
        """Rates of a group of phases sharing links (sorted by shape), filled per sub-group linked
        by links that can fill (`sharing.FillSplit`): the sub-groups' keys repeat far more."""
        if self._split is None:
            # Splitting by links that can fill needs finite capacities (fixed-point loads).
            if not np.isfinite(self.capacity).all():
                return self._filled(phases)
            self._split = FillSplit(self.capacity, self.comm.fill_pairs, self._scale)
        active: dict[Any, tuple[int, Demand]] = {}
        for st in self.active:
            shape = st.transfer.phases[st.phase].shape
            had = active.get(shape)
            active[shape] = (had[0] + 1, had[1]) if had else (1, st.record)
        self._split.sync(active)
        shapes = [ph.shape for ph in phases]
        records = [active[s][1] for s in shapes]
        pairs = self.comm.sharing.sharing_pairs(phases)
        out = np.empty(len(phases))
        for group in self._split.split(records, pairs, shapes):
            if len(group) == 1:
                out[group[0]] = records[group[0]].bound
                continue
            out[group] = self.comm.fill_rates.get(
                tuple(shapes[i] for i in group),
                lambda: self._fill_group([records[i] for i in group]),  # noqa: B023
            )
        return out

    def _fill_group(self, records: list[Demand]) -> np.ndarray:
        """max_min_rates of one sub-group: its links that can fill, found by `excess`."""
        assert self._split is not None
        kept = [self._split.kept(r) for r in records]
        union, local = self._split.index(np.concatenate([e for e, _ in kept]))
        return _fill(
            self.capacity[union],
            local,
            np.repeat(np.arange(len(kept)), [len(e) for e, _ in kept]),
            np.concatenate([k for _, k in kept]),
            np.array([r.bound for r in records]),
        )

    def _filled(self, phases: list[Any]) -> np.ndarray:
        """max_min_rates of phases, each phase's demand and standalone bound made once."""
        demands = [self._record(ph) for ph in phases]
        return max_min_rates(
            self.capacity, [(d.edges, d.k) for d in demands], np.array([d.bound for d in demands])
        )

    def _record(self, ph: Any) -> Demand:
        """A phase shape's demand record (links, k_je, standalone bound), made once."""
        return self.comm.demands.get(ph.shape, lambda: self._demand(ph))

    def _demand(self, ph: Any) -> Demand:
        edges, k = _demand(ph)
        return Demand(edges, k, float((self.capacity[edges] / k).min()), self._scale)

    def _progress_rates(self) -> list[float]:
        """Each active stage's progress rate (fraction of its stage per second)."""
        rates = self._rates()
        out = []
        for st, f in zip(self.active, rates):
            ph = st.transfer.phases[st.phase]
            alone = 1.0 / ph.bandwidth_s
            rate = f / st.unit_bytes
            # Snap to the standalone rate when unshared, so a lone transfer takes exactly time_s.
            out.append(alone if abs(rate - alone) <= 1e-9 * alone else rate)
        return out

    def _reschedule(self) -> None:
        self.rate_updates += 1
        active = self.active
        if not active:
            return
        key = tuple([st.ph for st in active])
        progress = self._progress.get(key)
        if progress is None:
            progress = self._progress[key] = self._progress_rates()
        for st, rate in zip(active, progress):
            st.progress_rate = rate
        wait = min(
            [st.remaining / st.progress_rate if st.remaining > 0.0 else 0.0 for st in active]
        )
        self._timer_generation += 1
        generation = self._timer_generation
        self.env.timeout(wait).callbacks.append(lambda _ev: self._on_timer(generation))

    def _on_timer(self, generation: int) -> None:
        if generation != self._timer_generation:
            return  # superseded by a later start or end
        self._advance()
        # A stage is done when the residue is tiny, or when what is left would take less than
        # the clock can resolve at this time (else the timer re-fires at the same instant).
        tick = 4 * math.ulp(self.env.now)
        done = [
            st.remaining <= _DONE_FRACTION or st.remaining <= st.progress_rate * tick
            for st in self.active
        ]
        finished = [st for st, d in zip(self.active, done) if d]
        self.active = [st for st, d in zip(self.active, done) if not d]
        for st in finished:
            st.phase += 1
        self._reschedule()
        for st in finished:
            self._begin_phase(st)


class AnalyticNetwork:
    """No sharing: each transfer takes its standalone time (a lower bound under contention)."""

    def __init__(self, env: simpy.Environment, comm: CommContext):
        self.env, self.comm = env, comm

    def start(self, transfer: Any) -> simpy.Event:
        return self.env.timeout(transfer.time_s, value=transfer)


BACKENDS: dict[str, type[FluidNetwork | AnalyticNetwork]] = {
    "fluid": FluidNetwork,
    "analytic": AnalyticNetwork,
}


def make_network(
    name: str, env: simpy.Environment, comm: CommContext
) -> FluidNetwork | AnalyticNetwork:
    """A network backend by name ('fluid' or 'analytic')."""
    if name not in BACKENDS:
        raise UserError(
            Problem("--network", f"unknown backend {name!r}", did_you_mean(name, BACKENDS))
        )
    return BACKENDS[name](env, comm)
