"""Many runs at once, as arithmetic: the checkpoint/restart renewal process of process.py with
numpy arrays over the runs instead of simpy processes, for the runs whose failure times do not
depend on the job (supports()).

Supported exactly (the same runs as the simpy process for the same seeds, to rounding): any
number of failure classes, exponential or Weibull times between arrivals, planned classes
(a full save first), periodic checkpoints (sync or async, or none), detection and restarts
(a failure during a save or a restart restarts it), a window, and the event cap, with hot
spares unlimited (or never needed: no class with arrivals takes a host). Left to the simpy
process (process.py): slow nodes, and finite hot spares where a failure takes a host
(waiting for repairs, or shrinking, which changes the rates).

There the arrival times are exogenous: each class's arrivals are drawn ahead (streams.py, the
same generators and batches as process.py) and merged; between two arrivals the job follows a
fixed chain (a planned save ends, then its restart, then a segment of training, which may
reach the end of the work), in closed form (progress.at_fresh, progress.finish_fresh). Each
iteration hands every run its next arrival; runs that reach the end of the arrivals drawn so
far are advanced to that horizon and given the next ones (the horizon doubles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.studies.goodput import progress
from simulator.studies.goodput.feasibility import log_wall
from simulator.studies.goodput.model import RunModel
from simulator.studies.goodput.process import DEGRADED, LOSSES, PERIODIC, STRAGGLER, RunResult
from simulator.studies.goodput.streams import RunArrivals

RUN, SAVE, RESTART, DONE = range(4)  # the job's phase between arrivals
# Rows of the loss table (LOSSES); waiting and degraded stay 0 in the runs this module takes.
REWORK, RESTARTING, CHECKPOINT = (LOSSES.index(k) for k in ("rework", "restart", "checkpoint"))


def supports(model: RunModel) -> bool:
    """True where this module gives the simpy process's runs: no slow nodes, hot spares
    unlimited or never needed, and an end (finite work or a window)."""
    takes_host = any(c.spec.takes_host and c.rate_s > 0 for c in model.classes)
    return (
        model.straggler_rate_s == 0.0
        and (model.hot_spares is None or not takes_host)
        and (math.isfinite(model.work_s) or model.window_s is not None)
    )


@dataclass(frozen=True, kw_only=True)
class Costs:
    """The constants of the model's runs (seconds)."""

    cycle: progress.Cycle
    work: float
    window: float  # inf: none
    restart: float  # detection + initialization + load, after a failure
    planned_restart: float  # initialization + load, after a planned save
    save: float  # a planned save's pause and write
    planned: np.ndarray  # by class

    @staticmethod
    def of(m: RunModel) -> Costs:
        return Costs(
            cycle=progress.Cycle(tau=m.interval_s, pause=m.pause_s, lag=m.commit_lag_s, rate=1.0),
            work=m.work_s,
            window=m.window_s if m.window_s is not None else math.inf,
            restart=m.detection_s + m.initialization_s + m.load_s,
            planned_restart=0.0 + m.initialization_s + m.load_s,
            save=m.pause_s + m.commit_lag_s,
            planned=np.array([c.spec.planned for c in m.classes], dtype=bool),
        )


class Runs:
    """The state of n runs (arrays over the runs) and their accounts, as process.Run keeps
    them: progress, the time lost by kind and by cause, interruptions by class."""

    def __init__(self, model: RunModel, n: int, cap: int | None):
        self.costs = k = Costs.of(model)
        self.names = [c.name for c in model.classes]
        self.causes = [*self.names, STRAGGLER, PERIODIC, DEGRADED]
        self.periodic = self.causes.index(PERIODIC)
        self.cap = cap if cap is not None else math.inf
        self.phase = np.full(n, RUN)
        self.t0 = np.zeros(n)  # the segment's start, or the down phase's
        self.until = np.zeros(n)  # the down phase's end, or the segment's
        self.progress = np.zeros(n)
        self.saved = np.zeros(n)  # committed progress when a planned save began
        self.blame = np.full(n, self.periodic)
        self.events = np.zeros(n, dtype=np.int64)
        self.counts = np.zeros((len(self.names), n), dtype=np.int64)
        self.lost = np.zeros((len(LOSSES), n))
        self.by_cause = np.zeros((len(self.causes), n))
        self.wall = np.zeros(n)
        self.capped = np.zeros(n, dtype=bool)
        self._segment(np.arange(n), np.zeros(n))
        self.horizon_s = _first_horizon(model, k)

    # ------------------------------------------------------------------ accounts

    def charge(
        self, i: np.ndarray, loss: int, seconds: np.ndarray, cause: np.ndarray | int
    ) -> None:
        self.lost[loss, i] += seconds
        self.by_cause[cause, i] += seconds

    def _close(self, i: np.ndarray, t: np.ndarray) -> progress.Positions:
        """Account the segment up to t (process.Run.close: its pauses; it runs at full speed,
        so nothing is degraded)."""
        p = progress.at_fresh(self.costs.cycle, self.t0[i], self.progress[i], t)
        self.charge(i, CHECKPOINT, p.pause_s, self.periodic)
        self.progress[i] = np.minimum(p.progress, self.costs.work)
        return p

    def _segment(self, i: np.ndarray, now: np.ndarray) -> None:
        k = self.costs
        self.phase[i], self.t0[i] = RUN, now
        end = np.full(len(i), math.inf)
        if math.isfinite(k.work):
            end = progress.finish_fresh(k.cycle, now, self.progress[i], k.work)
        self.until[i] = np.minimum(end, k.window)

    def _down(self, i: np.ndarray, now: np.ndarray, phase: int, seconds: float) -> None:
        self.phase[i], self.t0[i], self.until[i] = phase, now, now + seconds

    # ------------------------------------------------------------------ between arrivals

    def advance(self, i: np.ndarray, t: np.ndarray) -> None:
        """Move runs i to time t, no arrival before: the phases that end by then end."""
        for phase in (SAVE, RESTART, RUN):
            sel = (self.phase[i] == phase) & (self.until[i] <= t)
            if sel.any():
                self._ended(i[sel], phase)

    def _ended(self, i: np.ndarray, phase: int) -> None:
        took = self.until[i] - self.t0[i]
        now = self.t0[i] + took  # simpy's clock after a timeout of `took`
        if phase == RUN:  # the work is done (or the window over)
            self._close(i, now)
            self.phase[i], self.wall[i] = DONE, now
            return
        if phase == SAVE:  # saved: restart without detection, nothing lost
            self.charge(i, CHECKPOINT, took, self.blame[i])
            self._down(i, now, RESTART, self.costs.planned_restart)
            return
        self.charge(i, RESTARTING, took, self.blame[i])
        self._segment(i, now)

    # ------------------------------------------------------------------ at an arrival

    def step(self, i: np.ndarray, t: np.ndarray, cls: np.ndarray | None) -> None:
        """Runs i at time t: the window's end, or (cls given) an arrival of class cls there."""
        window = self.costs.window
        self.advance(i, np.minimum(t, window))
        live = self.phase[i] != DONE
        over = live & (t >= window)
        if over.any():
            self.end(i[over], np.full(int(over.sum()), window))
        if cls is None:
            return
        live &= ~over
        capped = live & (self.events[i] + 1 >= self.cap)
        if capped.any():
            self.capped[i[capped]] = True
            self.end(i[capped], t[capped])
        live &= ~capped
        i, t, cls = i[live], t[live], cls[live]
        self.events[i] += 1
        self.counts[cls, i] += 1
        self._arrive(i, t, cls)

    def _arrive(self, i: np.ndarray, t: np.ndarray, cls: np.ndarray) -> None:
        phase, planned = self.phase[i], self.costs.planned[cls]
        for sel, act in (
            ((phase == RUN) & ~planned, self._fail_running),
            ((phase == RUN) & planned, self._plan),
            ((phase == SAVE) & ~planned, self._fail_saving),
            ((phase == RESTART) & ~planned, self._fail_restarting),
        ):  # a planned arrival while down is counted, nothing more
            if sel.any():
                act(i[sel], t[sel], cls[sel])

    def _fail_running(self, i: np.ndarray, t: np.ndarray, cls: np.ndarray) -> None:
        p = self._close(i, t)
        self.blame[i] = cls
        self._rollback(i, p.committed)
        self._down(i, t, RESTART, self.costs.restart)

    def _plan(self, i: np.ndarray, t: np.ndarray, cls: np.ndarray) -> None:
        p = self._close(i, t)
        self.blame[i], self.saved[i] = cls, p.committed
        self._down(i, t, SAVE, self.costs.save)

    def _fail_saving(self, i: np.ndarray, t: np.ndarray, cls: np.ndarray) -> None:
        self.charge(i, CHECKPOINT, t - self.t0[i], self.blame[i])
        self.blame[i] = cls
        self._rollback(i, self.saved[i])
        self._down(i, t, RESTART, self.costs.restart)

    def _fail_restarting(self, i: np.ndarray, t: np.ndarray, cls: np.ndarray) -> None:
        self.charge(i, RESTARTING, t - self.t0[i], self.blame[i])
        self.blame[i] = cls
        self._down(i, t, RESTART, self.costs.restart)

    def _rollback(self, i: np.ndarray, committed: np.ndarray) -> None:
        self.charge(i, REWORK, self.progress[i] - committed, self.blame[i])
        self.progress[i] = committed

    def end(self, i: np.ndarray, t: np.ndarray) -> None:
        """Stop runs i at t (window or event cap) where they are."""
        phase = self.phase[i]
        run, save, rest = phase == RUN, phase == SAVE, phase == RESTART
        if run.any():
            self._close(i[run], t[run])
        for sel, loss in ((save, CHECKPOINT), (rest, RESTARTING)):
            if sel.any():
                j = i[sel]
                self.charge(j, loss, t[sel] - self.t0[j], self.blame[j])
        self.phase[i], self.wall[i] = DONE, t

    # ------------------------------------------------------------------ results

    def result(self, r: int) -> RunResult:
        return RunResult(
            wall_s=float(self.wall[r]),
            useful_s=float(self.progress[r]),
            lost_s={k: float(v) for k, v in zip(LOSSES, self.lost[:, r])},
            lost_by_cause_s={k: float(v) for k, v in zip(self.causes, self.by_cause[:, r])},
            interruptions={k: int(v) for k, v in zip(self.names, self.counts[:, r])}
            | {STRAGGLER: 0},
            capped=bool(self.capped[r]),
        )


def _first_horizon(m: RunModel, k: Costs) -> float:
    """Arrivals are first drawn this far: a quarter beyond the expected wall time (Daly's
    complete model, feasibility.log_wall), at most the window."""
    expected = math.exp(min(log_wall(m), 700.0))
    if not math.isfinite(expected) or expected <= 0.0:
        expected = k.work if math.isfinite(k.work) else k.window
    return min(1.25 * max(expected, 1.0), k.window)


def simulate_runs(
    model: RunModel, seqs: list[np.random.SeedSequence], cap: int | None = None
) -> list[RunResult]:
    """process.simulate_run for each seed sequence, at once (supports(model) must hold)."""
    assert supports(model), "renewal.supports: this model needs the simpy process"
    runs = Runs(model, len(seqs), cap)
    streams = [RunArrivals(model, s) for s in seqs]
    horizon = np.full(len(seqs), runs.horizon_s)
    todo = np.arange(len(seqs))
    limit = cap if cap is not None else math.inf
    while todo.size:
        parts = [streams[r].until(float(horizon[r]), limit) for r in todo]
        _play(runs, todo, horizon[todo], parts)
        todo = todo[runs.phase[todo] != DONE]
        horizon[todo] = np.minimum(2.0 * horizon[todo], runs.costs.window)
    return [runs.result(r) for r in range(len(seqs))]


def _play(
    runs: Runs, todo: np.ndarray, horizon: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    """Runs `todo` through their arrivals before `horizon` (parts: each run's, in time order),
    one arrival per run an iteration, then to the horizon."""
    times = np.concatenate([p[0] for p in parts])
    kinds = np.concatenate([p[1] for p in parts])
    stop = np.cumsum([len(p[0]) for p in parts])
    ptr = stop - [len(p[0]) for p in parts]
    live = np.arange(len(todo))  # positions in todo
    while live.size:
        has = ptr[live] < stop[live]
        if not has.all():
            out = live[~has]
            runs.step(todo[out], horizon[out], None)
            live = live[has]
        j = ptr[live]
        runs.step(todo[live], times[j], kinds[j])
        ptr[live] += 1
        live = live[runs.phase[todo[live]] != DONE]
