"""The arrivals of one run's failure classes, drawn ahead in time for renewal.py: the same
generators (a child of the run's seed sequence per class, process.simulate_run's spawn) and the
same batches of draws (process.Draws) as the simpy process, so that both see the same failure
times. Valid while the rates do not change during a run (no shrink: renewal.supports)."""

from __future__ import annotations

import numpy as np

from simulator.studies.goodput.model import RunModel
from simulator.studies.goodput.process import Draws


class RunArrivals:
    """Arrival times of each class with a rate, merged in time order, a horizon at a time."""

    def __init__(self, model: RunModel, seed_seq: np.random.SeedSequence):
        seqs = seed_seq.spawn(len(model.classes) + 1)  # the last: slow nodes (none here)
        self.classes = [i for i, c in enumerate(model.classes) if c.rate_s > 0]
        self.rates = [model.classes[i].rate_s for i in self.classes]
        self.draws = [
            Draws(np.random.default_rng(seqs[i]), model.classes[i].spec.weibull_shape)
            for i in self.classes
        ]
        self.last = [0.0] * len(self.classes)  # the latest arrival drawn
        self.drawn = [0] * len(self.classes)
        self.pending = [np.empty(0)] * len(self.classes)  # drawn, at or after the last horizon

    def _extend(self, k: int, horizon: float, limit: float) -> None:
        """Draw class k's batches until past the horizon (or `limit` arrivals: the run ends by
        then). Times accumulate one gap at a time from the last, as simpy's clock does."""
        parts = [self.pending[k]]
        while self.last[k] < horizon and self.drawn[k] < limit:
            gaps = self.draws[k].batch() / self.rates[k]
            times = np.cumsum(np.concatenate(([self.last[k]], gaps)))[1:]
            parts.append(times)
            self.last[k] = float(times[-1])
            self.drawn[k] += len(times)
        self.pending[k] = np.concatenate(parts) if len(parts) > 1 else parts[0]

    def until(self, horizon: float, limit: float) -> tuple[np.ndarray, np.ndarray]:
        """The arrivals before `horizon` not yet given (times, class indices), in time order."""
        times, kinds = [], []
        for k, index in enumerate(self.classes):
            self._extend(k, horizon, limit)
            cut = int(np.searchsorted(self.pending[k], horizon, side="left"))
            times.append(self.pending[k][:cut])
            kinds.append(np.full(cut, index, dtype=np.int64))
            self.pending[k] = self.pending[k][cut:]
        if not times:
            return np.empty(0), np.empty(0, dtype=np.int64)
        t, c = np.concatenate(times), np.concatenate(kinds)
        order = np.argsort(t, kind="stable")
        return t[order], c[order]
