"""DeepSpeed ZeRO-3's coordinator replayed (partitioned_param_coordinator.py): expected gathers and
releases worked out by hand from the documented rules on small traces of round sizes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.execution.frameworks.deepspeed_plan import Hook, Knobs, plan
from simulator.model.tensors import Tensor


def chain(n: int, numel: int = 100) -> list[Hook]:
    """n modules of one parameter each, one per compute step, each used once."""
    return [Hook(i, (Tensor(f"p{i}", numel, numel),)) for i in range(n)]


def knobs(prefetch=0, live=10**9, reuse=0, persist=0) -> Knobs:
    return Knobs(
        prefetch_bucket_size=prefetch,
        max_live_parameters=live,
        max_reuse_distance=reuse,
        persistence_threshold=persist,
    )


def names(groups) -> list[list[str]]:
    return [[t.name for t in g] for g in groups]


def test_without_prefetch_each_module_fetches_its_own_and_releases_it():
    out = plan(chain(4), 4, knobs())
    assert [names(p.gathers) for p in out] == [[["p0"]], [["p1"]], [["p2"]], [["p3"]]]
    assert [[t.name for t in p.released] for p in out] == [["p0"], ["p1"], ["p2"], ["p3"]]


def test_persistent_parameters_are_never_gathered():
    # stage3_param_persistence_threshold: numel <= threshold stays whole on every rank.
    out = plan(chain(3, numel=100), 3, knobs(persist=100))
    assert all(not p.gathers and not p.released for p in out)


def test_live_parameters_bound_the_prefetch():
    # max_live 300, prefetch bucket 1000, parameters of 100: hook 0 fetches p0 (100 live), then
    # prefetches min(300 - 100, 1000) = 200 elements: p1, p2 (300 live), and releases p0 (200).
    # Each later hook tops up by the 100 just freed: one parameter two ahead. Hook 8 finds the
    # queue empty (p9 was prefetched at hook 7).
    trace: list = []
    out = plan(chain(10), 10, knobs(prefetch=1000, live=300), trace)
    assert names(out[0].gathers) == [["p0"], ["p1", "p2"]]
    assert [names(p.gathers) for p in out[1:8]] == [[[f"p{k + 2}"]] for k in range(1, 8)]
    assert not out[8].gathers and not out[9].gathers
    assert max(after for _, _, after in trace) == 300


def test_prefetch_bucket_overshoots_by_one_parameter():
    # prefetch_bucket_size 250 with parameters of 100: parameters are taken while fewer than
    # 250 elements are chosen, so three (300) go into each prefetch.
    out = plan(chain(8), 8, knobs(prefetch=250))
    assert names(out[0].gathers) == [["p0"], ["p1", "p2", "p3"]]
    assert names(out[1].gathers) == [["p4", "p5", "p6"]]
    assert names(out[2].gathers) == [["p7"]]


def test_reuse_within_the_distance_keeps_a_parameter():
    # p0 is used at hooks 0 and 2, with 100 elements (p1) between: kept when max_reuse_distance
    # is above 100 (one gather), released and gathered again when it is below.
    hooks = [
        Hook(0, (Tensor("p0", 100, 100),)),
        Hook(1, (Tensor("p1", 100, 100),)),
        Hook(2, (Tensor("p0", 100, 100),)),
    ]
    kept = plan(hooks, 3, knobs(reuse=150))
    assert sum(len(p.gathers) for p in kept) == 2 and [t.name for t in kept[0].released] == []
    again = plan(hooks, 3, knobs(reuse=50))
    assert [names(p.gathers) for p in again] == [[["p0"]], [["p1"]], [["p0"]]]


def test_everything_gathered_is_released_by_the_end():
    out = plan(chain(6), 6, knobs(prefetch=500, reuse=10**9))
    gathered = sorted(t.name for p in out for g in p.gathers for t in g)
    released = sorted(t.name for p in out for t in p.released)
    assert gathered == released == [f"p{i}" for i in range(6)]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 500), min_size=1, max_size=30),
    reuse=st.integers(0, 2000),
    prefetch=st.integers(0, 1500),
    live=st.integers(1, 2000),
    persist=st.integers(0, 50),
    repeat=st.booleans(),
)
def test_prefetch_never_raises_live_parameters_past_the_bound(
    sizes, reuse, prefetch, live, persist, repeat
):
    # DeepSpeed: a prefetch takes at most min(max_live - available, bucket) elements plus one
    # parameter's overshoot; a module's own fetch and reuse may exceed max_live_parameters.
    hooks = [Hook(i, (Tensor(f"p{i}", n, n),)) for i, n in enumerate(sizes)]
    if repeat:  # the backward pass: the same modules in reverse
        hooks += [Hook(len(sizes) + j, h.tensors) for j, h in enumerate(reversed(hooks))]
    trace: list = []
    out = plan(hooks, len(hooks), knobs(prefetch, live, reuse, persist), trace)
    for _, before, after in trace:
        assert after == before or after < live + max(sizes)
    gathered = [t.name for p in out for g in p.gathers for t in g]
    assert sorted(gathered) == sorted(t.name for p in out for t in p.released)  # all released
    assert all(sizes[int(name[1:])] > persist for name in gathered)  # persistent ones never
