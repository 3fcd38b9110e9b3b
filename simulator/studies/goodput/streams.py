"""The arrivals of one run's failure classes, drawn ahead in time for renewal.py: the same
generators (a child of the run's seed sequence per class, process.simulate_run's spawn) and the
same batches of draws (process.Draws) as the simpy process, so that both see the same failure
times. Valid while the rates do not change during a run (no shrink: renewal.supports).

The draws are times between arrivals over their mean: they depend on the stream's seed and the
class's Weibull shape, not on its rate. `DRAWS` keeps each stream's batches across evaluations
(a sweep's points, a Session's re-runs, a planner's layouts all run the same seeds): a stream is
made (its seed sequence, its generator) and drawn once. Its generator is kept beside its
batches, advanced exactly past them, so batch j is the same whoever asks for it first."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from simulator.studies.goodput.model import RunModel
from simulator.studies.goodput.process import Draws

StreamKey = tuple  # (entropy, spawn key of the child, pool size, Weibull shape)


# Rates whose arrival times a stream keeps (a sweep varies the rate, a Session re-runs one).
RATES_KEPT = 4


class _Stream:
    __slots__ = ("batches", "draws", "times")

    def __init__(self, seq: np.random.SeedSequence, shape: float):
        self.draws = Draws(np.random.default_rng(seq), shape)
        self.batches: list[np.ndarray] = []
        self.times: OrderedDict[float, list[np.ndarray]] = OrderedDict()

    def batch(self, j: int) -> np.ndarray:
        while len(self.batches) <= j:
            b = self.draws.batch()
            b.flags.writeable = False
            self.batches.append(b)
        return self.batches[j]

    def arrivals(self, rate_s: float, j: int) -> np.ndarray:
        """The arrival times of batch j at `rate_s` arrivals per second: the gaps (unit draws
        over the rate) accumulated one at a time from 0, as simpy's clock does, batch after
        batch; kept for the RATES_KEPT latest rates."""
        per = self.times.get(rate_s)
        if per is None:
            per = self.times[rate_s] = []
            if len(self.times) > RATES_KEPT:
                self.times.popitem(last=False)
        else:
            self.times.move_to_end(rate_s)
        while len(per) <= j:
            last = float(per[-1][-1]) if per else 0.0
            gaps = self.batch(len(per)) / rate_s
            t = np.cumsum(np.concatenate(([last], gaps)))[1:]
            t.flags.writeable = False
            per.append(t)
        return per[j]


class DrawCache:
    """Unit draws by stream (module doc), the `max_streams` most recently used kept."""

    def __init__(self, max_streams: int = 20_000):
        self.max_streams = max_streams
        self._streams: OrderedDict[StreamKey, _Stream] = OrderedDict()

    def stream(self, run: np.random.SeedSequence, child: int, shape: float) -> _Stream:
        """The stream of `run`'s child `child` (what run.spawn would give it, the run's earlier
        children counted), with the class's Weibull shape."""
        entropy = run.entropy if isinstance(run.entropy, int) else tuple(run.entropy)  # type: ignore[arg-type]
        spawn_key = (*run.spawn_key, run.n_children_spawned + child)
        key = (entropy, spawn_key, run.pool_size, shape)
        found = self._streams.get(key)
        if found is None:
            seq = np.random.SeedSequence(entropy, spawn_key=spawn_key, pool_size=run.pool_size)
            found = self._streams[key] = _Stream(seq, shape)
            if len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(key)
        return found

    def clear(self) -> None:
        self._streams.clear()


DRAWS = DrawCache()


class RunArrivals:
    """Arrival times of each class with a rate, merged in time order, a horizon at a time."""

    def __init__(self, model: RunModel, seed_seq: np.random.SeedSequence, cache: DrawCache = DRAWS):
        # process.simulate_run spawns one child per class and one for slow nodes (none here)
        self.classes = [i for i, c in enumerate(model.classes) if c.rate_s > 0]
        self.rates = [model.classes[i].rate_s for i in self.classes]
        self.streams = [
            cache.stream(seed_seq, i, model.classes[i].spec.weibull_shape) for i in self.classes
        ]
        self.used = [0] * len(self.classes)  # each stream's batches taken
        self.last = [0.0] * len(self.classes)  # the latest arrival drawn
        self.drawn = [0] * len(self.classes)
        self.pending = [np.empty(0)] * len(self.classes)  # drawn, at or after the last horizon

    def _extend(self, k: int, horizon: float, limit: float) -> None:
        """Take class k's batches of arrival times (_Stream.arrivals) until past the horizon (or
        `limit` arrivals: the run ends by then)."""
        parts = [self.pending[k]]
        while self.last[k] < horizon and self.drawn[k] < limit:
            times = self.streams[k].arrivals(self.rates[k], self.used[k])
            self.used[k] += 1
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
