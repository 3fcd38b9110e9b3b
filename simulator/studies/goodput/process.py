"""One training run as simpy processes: the trainer (chunks of progress between events,
checkpoints in closed form, progress.py), one arrival process per failure class, slow nodes,
and host repairs (the reference of renewal.py, which gives the same runs as arithmetic where
failure times do not depend on the job). A failure interrupts the trainer, which rolls back to
the last durable checkpoint and restarts; a failure during a restart starts it again (Daly
2006's model).

Time lost is kept by cause, in wall seconds, so that wall = useful work + rework + restart +
waiting + checkpoint + degraded holds exactly:
- rework: progress made and lost in a rollback;
- restart: detection, re-initialization and checkpoint load (interrupted restarts included);
- waiting: no healthy host to restart on (finite hot spares, `without_spare: wait`);
- checkpoint: pauses for periodic snapshots, and the full save before a planned restart;
- degraded: running below full speed (a slow node, or fewer hosts with `without_spare: shrink`).
The same time is also charged to its cause: the failure class whose interruption caused the
rework, restart or wait (the latest, when a failure strikes a restart), 'maintenance' (or the
planned class) for planned saves and restarts, 'straggler' for slow-node removals, 'checkpoint'
for periodic checkpoints and 'degraded' for slow running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.spec.reliability import RESERVED_CAUSES
from simulator.studies.goodput import progress
from simulator.studies.goodput.model import JobClass, RunModel

LOSSES = ("rework", "restart", "waiting", "checkpoint", "degraded")
STRAGGLER, PERIODIC, DEGRADED = RESERVED_CAUSES
_BATCH = 256


@dataclass(frozen=True, kw_only=True)
class RunResult:
    wall_s: float
    useful_s: float
    lost_s: dict[str, float]  # by kind (LOSSES)
    lost_by_cause_s: dict[str, float]  # the same time by cause
    interruptions: dict[str, int]
    capped: bool = False  # stopped at the event bound before the end (wall: a lower bound)


class Draws:
    """Times between a class's arrivals, relative to their mean: exponential (shape 1) or
    Weibull with mean 1, drawn in batches from the class's own generator."""

    def __init__(self, rng: np.random.Generator, shape: float = 1.0):
        self.rng, self.shape = rng, shape
        self.scale = 1.0 / math.gamma(1.0 + 1.0 / shape)
        self.buf: list[float] = []
        self.i = 0

    def batch(self) -> np.ndarray:
        """The next _BATCH draws (renewal.py takes them whole: the same arrivals as here)."""
        if self.shape == 1.0:
            return self.rng.standard_exponential(_BATCH)
        return self.scale * self.rng.weibull(self.shape, _BATCH)

    def next(self) -> float:
        if self.i == len(self.buf):
            self.buf = self.batch().tolist()
            self.i = 0
        self.i += 1
        return self.buf[self.i - 1]


class Run:
    def __init__(self, model: RunModel, rngs: list[np.random.Generator], cap: int | None = None):
        self.m = model
        self.cap, self.events, self.capped = cap, 0, False
        self.env = simpy.Environment()
        self.progress = 0.0
        self.lost = dict.fromkeys(LOSSES, 0.0)
        self.counts = {c.name: 0 for c in model.classes} | {STRAGGLER: 0}
        self.by_cause = dict.fromkeys([*self.counts, PERIODIC, DEGRADED], 0.0)
        self.blame = PERIODIC
        self.up = False
        self.healthy = model.num_hosts + (model.hot_spares or 0)
        self.in_use = model.num_hosts
        self.returned = self.env.event()
        self.slow: set[int] = set()
        self.cycles: dict[float, progress.Cycle] = {}
        self.trainer = self.env.process(self.train())
        for c, rng in zip(model.classes, rngs):
            if c.rate_s > 0:
                self.env.process(self.arrivals(c, Draws(rng, c.spec.weibull_shape)))
        if model.straggler_rate_s > 0:
            self.env.process(self.slow_nodes(Draws(rngs[len(model.classes)])))
        if model.window_s is not None:
            self.env.process(self.end_at(model.window_s))

    def result(self) -> RunResult:
        self.env.run(until=self.trainer)
        return RunResult(
            wall_s=self.env.now,
            useful_s=self.progress,
            lost_s=dict(self.lost),
            lost_by_cause_s=dict(self.by_cause),
            interruptions=dict(self.counts),
            capped=self.capped,
        )

    def count_event(self) -> bool:
        """One more arrival; at the bound the run ends where it is (False: stop arriving)."""
        self.events += 1
        if self.cap is None or self.events < self.cap:
            return True
        if self.trainer.is_alive and not self.capped:
            self.capped = True
            self.trainer.interrupt(("end", PERIODIC))
        return False

    def charge(self, loss: str, seconds: float, cause: str | None = None) -> None:
        self.lost[loss] += seconds
        self.by_cause[cause or self.blame] += seconds

    # ------------------------------------------------------------------ the trainer

    def rate(self) -> float:
        speed = self.in_use / self.m.num_hosts
        if not self.slow:
            return speed
        assert self.m.straggler is not None  # nodes are slow only in a run with stragglers
        return speed / self.m.straggler.slowdown

    def cycle(self) -> progress.Cycle:
        rate = self.rate()
        if rate not in self.cycles:
            m = self.m
            self.cycles[rate] = progress.Cycle(
                tau=m.interval_s, pause=m.pause_s, lag=m.commit_lag_s, rate=rate
            )
        return self.cycles[rate]

    def train(self):
        self.up = True
        seg = progress.start(0.0, 0.0, self.cycle())
        while seg is not None:
            end = min(progress.finish_time(seg, self.m.work_s), self.m.window_s or math.inf)
            try:
                yield self.env.timeout(end - self.env.now)
            except simpy.Interrupt as stop:
                seg = yield from self.handle(seg, stop.cause)
                continue
            self.close(seg)
            seg = None
        self.up = False

    def close(self, seg: progress.Segment) -> progress.Position:
        """Account the segment up to now; the job's progress is where it got to."""
        now = self.env.now
        p = progress.at(seg, now)
        compute = now - seg.start - p.pause_s
        self.charge("checkpoint", p.pause_s, PERIODIC)
        self.charge("degraded", (1.0 - seg.cycle.rate) * compute, DEGRADED)
        self.progress = min(p.progress, self.m.work_s)
        return p

    def handle(self, seg: progress.Segment, cause: tuple[str, str]):
        """The trainer's answer to an interrupt while running; the next segment or None."""
        p = self.close(seg)
        kind, self.blame = cause
        if kind == "end":
            return None
        if kind == "rate":
            return progress.resume(seg, self.env.now, self.rate())
        self.up = False
        if kind == "failure":
            self.rollback(p.committed)
            detect = True
        else:  # planned maintenance or a slow node's removal: a full save first, nothing lost
            saved = yield from self.down("checkpoint", self.m.pause_s + self.m.commit_lag_s)
            if saved is not None and saved[0] == "end":
                return None
            detect = saved is not None
            if detect:
                self.rollback(p.committed)
        if not (yield from self.recover(detect)):
            return None
        self.up = True
        return progress.start(self.env.now, self.progress, self.cycle())

    def rollback(self, committed: float) -> None:
        self.charge("rework", self.progress - committed)
        self.progress = committed

    def down(self, loss: str, duration: float):
        """Wait `duration` off the job (None), or the failure or end that cut it short."""
        end = self.env.now + duration
        while True:
            t0 = self.env.now
            try:
                yield self.env.timeout(end - t0)
            except simpy.Interrupt as stop:
                self.charge(loss, self.env.now - t0)
                cause = stop.cause
                assert cause is not None  # every interrupt here is sent with a (kind, detail)
                if cause[0] in ("failure", "end"):
                    return self.cut_short(cause)
                continue  # sent just before the job went down: nothing to do while down
            self.charge(loss, end - t0)
            return None

    def cut_short(self, cause: tuple[str, str]) -> tuple[str, str]:
        if cause[0] == "failure":
            self.blame = cause[1]
        return cause

    def recover(self, detect: bool):
        """Restart from the last durable checkpoint (again after each failure); False at the end."""
        m = self.m
        while True:
            needed = m.num_hosts if m.without_spare == "wait" else 1
            if m.hot_spares is not None and self.healthy < needed:
                cause = yield from self.wait_for_host()
            else:
                cause = yield from self.down(
                    "restart", (m.detection_s if detect else 0.0) + m.initialization_s + m.load_s
                )
                if cause is None:
                    self.in_use = (
                        min(m.num_hosts, self.healthy) if m.hot_spares is not None else m.num_hosts
                    )
                    return True
            if cause[0] == "end":
                return False
            detect = detect or cause[0] == "failure"

    def wait_for_host(self):
        while True:
            t0 = self.env.now
            try:
                yield self.returned
            except simpy.Interrupt as stop:
                self.charge("waiting", self.env.now - t0)
                if stop.cause[0] in ("failure", "end"):
                    return self.cut_short(stop.cause)
                continue
            self.charge("waiting", self.env.now - t0)
            return ("host", self.blame)

    # ------------------------------------------------------------------ what happens to the job

    def arrivals(self, c: JobClass, draws: Draws):
        per_job = c.spec.unit == "job"
        while True:
            # Rates scale with the hosts in use (fewer after a shrink), read at each arrival.
            scale = 1.0 if per_job else self.in_use / self.m.num_hosts
            yield self.env.timeout(draws.next() / (c.rate_s * scale))
            if not self.count_event():
                return
            self.counts[c.name] += 1
            if c.spec.takes_host:
                self.lose_host()
            if c.spec.planned:
                if self.up:
                    self.trainer.interrupt(("planned", c.name))
            elif self.trainer.is_alive:
                self.trainer.interrupt(("failure", c.name))

    def lose_host(self) -> None:
        if self.m.hot_spares is None:
            return  # a spare replaces it at once
        self.healthy -= 1
        self.env.process(self.repair())

    def repair(self):
        yield self.env.timeout(self.m.repair_s)
        self.healthy += 1
        self.returned.succeed()
        self.returned = self.env.event()

    def slow_nodes(self, draws: Draws):
        st = self.m.straggler
        assert st is not None  # started only in a run with stragglers
        key = 0
        while True:
            yield self.env.timeout(draws.next() / self.m.straggler_rate_s)
            if not self.count_event():
                return
            key += 1
            self.slow.add(key)
            self.env.process(self.remove(key, st.detection_s))
            if self.up and len(self.slow) == 1:
                self.trainer.interrupt(("rate", DEGRADED))  # the step slows down from now

    def remove(self, key: int, after: float):
        yield self.env.timeout(after)
        self.slow.discard(key)
        if (
            self.up
        ):  # removing the node takes a restart; while down it is left out of the one under way
            self.counts[STRAGGLER] += 1
            self.trainer.interrupt(("remove", STRAGGLER))

    def end_at(self, t: float):
        yield self.env.timeout(t)
        if self.trainer.is_alive:
            self.trainer.interrupt(("end", PERIODIC))


def simulate_run(
    model: RunModel, seed_seq: np.random.SeedSequence, cap: int | None = None
) -> RunResult:
    """One run, deterministic for its seed sequence (a generator per failure class and one for
    slow nodes, so each class draws the same arrivals whatever the checkpoint policy); it stops
    after `cap` arrivals (failures and slow nodes), so that no input can keep it going."""
    rngs = [np.random.default_rng(s) for s in seed_seq.spawn(len(model.classes) + 1)]
    return Run(model, rngs, cap).result()
