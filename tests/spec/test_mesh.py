"""The device mesh and its folding for expert layers (Megatron-Core MoE parallel folding), with
rank lists derived by hand from Megatron-Core's RankGenerator: the attention layers' order
tp-cp-dp-pp, the expert layers' etp-ep-edp-pp over the same ranks (megatron/core/parallel_state.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.spec.mesh import Mesh, fold

TP2_DP4_PP2 = Mesh(dims=(("tp", 2), ("dp", 4), ("pp", 2)))
EXPERT = ("tp", "cp", "dp")  # what the expert parts are carved from (cp absent: size 1)


def groups(mesh: Mesh, *dims: str) -> list[tuple[int, ...]]:
    g = mesh.group(*dims)
    return [g.ranks(i) for i in range(g.count)]


def test_ep_over_tp_and_dp_takes_consecutive_ranks_in_each_stage():
    m = fold(TP2_DP4_PP2, (("etp", 1), ("ep", 4), ("edp", 2)), EXPERT)
    assert m.dims == (("etp", 1), ("ep", 4), ("edp", 2), ("pp", 2))
    assert groups(m, "ep")[:2] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert groups(m, "ep")[2:] == [(8, 9, 10, 11), (12, 13, 14, 15)]
    assert groups(m, "edp")[:4] == [(0, 4), (1, 5), (2, 6), (3, 7)]
    assert groups(m, "etp") == [(r,) for r in range(16)]
    assert m.group("ep").instances_at({"pp": 0}) == [0, 1]
    assert m.world == TP2_DP4_PP2.world and groups(m, "pp") == groups(TP2_DP4_PP2, "pp")


def test_etp_equal_to_tp_leaves_ep_strided_by_tp():
    m = fold(TP2_DP4_PP2, (("etp", 2), ("ep", 2), ("edp", 2)), EXPERT)
    assert groups(m, "ep")[:4] == [(0, 2), (1, 3), (4, 6), (5, 7)]
    assert groups(m, "etp")[:2] == [(0, 1), (2, 3)] == groups(TP2_DP4_PP2, "tp")[:2]
    assert groups(m, "edp")[:2] == [(0, 4), (1, 5)]
    assert groups(m, "etp", "ep")[0] == (0, 1, 2, 3)


def test_ep_straddling_pp_is_two_pieces_and_one_group():
    """order [tp, pp, dp]: ranks 0-1 are tp, stride 2 is pp, stride 4 dp. ep 4 takes tp's 2 and
    dp's first 2, skipping the pipeline stride."""
    mesh = Mesh(dims=(("tp", 2), ("pp", 2), ("dp", 4)))
    m = fold(mesh, (("etp", 1), ("ep", 4), ("edp", 2)), EXPERT)
    assert m.dims == (("etp", 1), ("ep", 2), ("pp", 2), ("ep.1", 2), ("edp", 2))
    assert m.pieces("ep") == ("ep", "ep.1") and m.size("ep") == 4
    g = m.group("ep")
    assert g.name == "ep" and g.size == 4 and g.count == 4
    assert groups(m, "ep") == [(0, 1, 4, 5), (2, 3, 6, 7), (8, 9, 12, 13), (10, 11, 14, 15)]
    assert g.instances_at({"pp": 1}) == [1, 3]
    assert [g.ranks(i) for i in g.instances_at({"pp": 1})] == [(2, 3, 6, 7), (10, 11, 14, 15)]
    assert np.array_equal(g.ranks_of([0, 3]), [[0, 1, 4, 5], [10, 11, 14, 15]])
    assert groups(m, "edp") == [(r, r + 8) for r in range(8)]
    assert groups(m, "pp") == groups(mesh, "pp")


def test_cp_is_folded_like_tp_and_dp():
    """tp 2, cp 2, dp 2 (Megatron's tp-cp-dp-pp): ep 4 over the 8 ranks of a stage."""
    mesh = Mesh(dims=(("tp", 2), ("cp", 2), ("dp", 2), ("pp", 2)))
    m = fold(mesh, (("etp", 1), ("ep", 4), ("edp", 2)), EXPERT)
    assert groups(m, "ep")[:2] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    m = fold(mesh, (("etp", 2), ("ep", 4), ("edp", 1)), EXPERT)
    assert groups(m, "ep")[:2] == [(0, 2, 4, 6), (1, 3, 5, 7)]
    assert m.size("edp") == 1 and groups(m, "edp")[:2] == [(0,), (1,)]


def test_megatron_rank_generator_by_brute_force():
    """Every fold of tp x cp x dp (order tp-cp-dp-pp) against Megatron-Core's rule: the expert
    ranks are etp x ep x edp x pp in that order, etp fastest."""
    for tp, cp, dp, pp in itertools.product((1, 2), (1, 2), (1, 2, 4), (1, 2)):
        mesh = Mesh(dims=(("tp", tp), ("cp", cp), ("dp", dp), ("pp", pp)))
        n = tp * cp * dp
        for etp, ep in itertools.product((1, 2, 4), (1, 2, 4, 8)):
            if n % (etp * ep):
                continue
            edp = n // (etp * ep)
            m = fold(mesh, (("etp", etp), ("ep", ep), ("edp", edp)), EXPERT)
            want = sorted(
                tuple(e + ep_i * etp + d * etp * ep + p * n for ep_i in range(ep))
                for e, d, p in itertools.product(range(etp), range(edp), range(pp))
            )
            assert sorted(groups(m, "ep")) == want, (tp, cp, dp, pp, etp, ep)


def test_a_dimension_missing_from_the_mesh():
    with pytest.raises(KeyError, match="no dimension 'cp'"):
        TP2_DP4_PP2.group("cp")
    assert TP2_DP4_PP2.size("cp") == 1 and not TP2_DP4_PP2.has("cp")
    m = fold(TP2_DP4_PP2, (("etp", 1), ("ep", 8), ("edp", 1)), EXPERT)
    with pytest.raises(KeyError, match="'tp' was folded away"):
        m.group("tp")
    assert m.folded == ("tp", "dp") and m.has("ep") and m.group("pp").size == 2


def test_folds_that_cannot_be_laid_out():
    with pytest.raises(ValueError, match="hold 8 ranks"):
        fold(TP2_DP4_PP2, (("ep", 8), ("edp", 1)), ("tp", "dp", "pp"))
    with pytest.raises(ValueError, match="cannot be cut"):
        fold(Mesh(dims=(("tp", 2), ("pp", 2), ("dp", 3))), (("ep", 3), ("edp", 2)), EXPERT)
    with pytest.raises(ValueError, match="collide"):
        fold(TP2_DP4_PP2, (("pp", 8),), EXPERT)
