"""The fluid network's grouping of concurrent phases by shared links, against a brute-force
connected-components search over the phases' edge sets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.system.comm.sharing import ShapeGraph


def _phase(shape: int, edges: frozenset) -> SimpleNamespace:
    return SimpleNamespace(shape=(shape, 0), edge_ids=np.array(sorted(edges), np.int64))


def _brute_force(phases) -> set[frozenset[int]]:
    """Components by repeated merging of index sets whose edges meet."""
    comps = [({i}, set(ph.edge_ids.tolist())) for i, ph in enumerate(phases)]
    merged = True
    while merged:
        merged = False
        for a in range(len(comps)):
            for b in range(a + 1, len(comps)):
                if comps[a][1] & comps[b][1]:
                    comps[a] = (comps[a][0] | comps[b][0], comps[a][1] | comps[b][1])
                    del comps[b]
                    merged = True
                    break
            if merged:
                break
    return {frozenset(idx) for idx, _ in comps}


# A pool of shapes (each with a fixed non-empty edge set), drawn with repeats as active phases.
EDGE_SETS = st.lists(
    st.frozensets(st.integers(0, 30), min_size=1, max_size=5), min_size=1, max_size=12
)


@given(
    pool=EDGE_SETS,
    picks=st.lists(st.integers(0, 11), min_size=1, max_size=20),
    again=st.lists(st.integers(0, 11), min_size=1, max_size=20),
)
@settings(max_examples=150, deadline=None)
def test_groups_are_the_connected_components(pool, picks, again):
    graph = ShapeGraph(max_shapes=8)  # small, so the graph also starts over mid-test
    for chosen in (picks, again, picks):  # memoized partitions must agree with fresh ones
        phases = [_phase(k % len(pool), pool[k % len(pool)]) for k in chosen]
        groups = graph.groups(phases)
        assert sorted(i for g in groups for i in g) == list(range(len(phases)))
        assert {frozenset(g) for g in groups} == _brute_force(phases)


def test_disjoint_phases_stay_apart_and_a_shared_link_joins():
    graph = ShapeGraph()
    a, b, c = _phase(1, frozenset({1, 2})), _phase(2, frozenset({3})), _phase(3, frozenset({2, 4}))
    assert sorted(map(sorted, graph.groups([a, b]))) == [[0], [1]]
    assert sorted(map(sorted, graph.groups([a, b, c]))) == [[0, 2], [1]]
    assert len(graph) == 3


@given(pool=EDGE_SETS, picks=st.lists(st.integers(0, 11), min_size=1, max_size=12))
@settings(max_examples=100, deadline=None)
def test_sharing_pairs_are_the_pairs_whose_edges_meet(pool, picks):
    graph = ShapeGraph()
    phases = [_phase(k % len(pool), pool[k % len(pool)]) for k in picks]
    graph.groups(phases)
    edges = [set(ph.edge_ids.tolist()) for ph in phases]
    assert graph.sharing_pairs(phases) == [
        (i, j) for i in range(len(phases)) for j in range(i + 1, len(phases)) if edges[i] & edges[j]
    ]
