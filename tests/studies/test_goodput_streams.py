"""The goodput Monte Carlo's cache of unit draws (studies/goodput/streams.py): each stream is
what the simpy process's own spawn and generator give, batch by batch, whoever asks first."""

from __future__ import annotations

import numpy as np

from simulator.studies.goodput.process import Draws
from simulator.studies.goodput.streams import DrawCache


def _reference(run: np.random.SeedSequence, child: int, shape: float, batches: int) -> list:
    """process.simulate_run's draws: spawn one child per class, a generator on it, batches."""
    seq = run.spawn(child + 1)[child]
    draws = Draws(np.random.default_rng(seq), shape)
    return [draws.batch() for _ in range(batches)]


def test_a_cached_stream_is_the_spawned_childs_draws():
    for shape in (1.0, 0.7):
        runs = np.random.SeedSequence(1234).spawn(3)
        cache = DrawCache()
        got = [cache.stream(runs[2], 4, shape).batch(j) for j in range(3)]
        want = _reference(np.random.SeedSequence(1234).spawn(3)[2], 4, shape, 3)
        for g, w in zip(got, want):
            assert np.array_equal(g, w)


def test_batches_are_the_same_whoever_asks_first():
    cache = DrawCache()
    runs = np.random.SeedSequence(7).spawn(2)
    late = cache.stream(runs[0], 1, 1.0).batch(2)  # batch 2 first: 0 and 1 drawn on the way
    again = cache.stream(np.random.SeedSequence(7).spawn(2)[0], 1, 1.0)  # same key, new objects
    assert again.batch(2) is late
    want = _reference(np.random.SeedSequence(7).spawn(2)[0], 1, 1.0, 3)
    assert all(np.array_equal(again.batch(j), want[j]) for j in range(3))
    assert not late.flags.writeable  # shared: nobody may change a cached batch


def test_the_run_seeds_earlier_children_are_counted_and_the_cache_is_bounded():
    run = np.random.SeedSequence(99)
    run.spawn(2)  # two children already taken: the next stream is child 2 + k
    cache = DrawCache(max_streams=2)
    got = cache.stream(run, 0, 1.0).batch(0)
    assert np.array_equal(got, _reference(np.random.SeedSequence(99), 2, 1.0, 1)[0])
    for child in (1, 2, 3):
        cache.stream(run, child, 1.0)
    assert len(cache._streams) == 2


def test_arrival_times_accumulate_gap_by_gap_per_rate():
    """What simpy's clock gives: t_i = t_(i-1) + gap_i / rate, one addition at a time, batch
    after batch; a stream keeps each rate's own times (asking for another rate in between
    changes nothing)."""
    from simulator.studies.goodput.streams import RATES_KEPT

    stream = DrawCache().stream(np.random.SeedSequence(7), 0, 0.8)
    rate = 1.0 / 3600.0
    first = stream.arrivals(rate, 0)
    for other in range(RATES_KEPT + 2):  # more rates than are kept: the first is made again
        stream.arrivals(rate * (2 + other), 1)
    second = stream.arrivals(rate, 1)
    t, want = 0.0, []
    for gap in np.concatenate([stream.batch(0), stream.batch(1)]):
        t = t + float(gap) / rate
        want.append(t)
    assert np.array_equal(np.concatenate([first, second]), np.array(want))
    assert len(stream.times) <= RATES_KEPT
