"""The allgather dispatcher and the shared-expert overlap (model/moe_dispatch.py): their
collectives and segments, against hand calculations from Megatron-Core's token_dispatcher.py
(MoEAllGatherTokenDispatcher: every rank's tokens, routing map and probabilities all-gathered
over the ep x etp ranks, the outputs reduce-scattered back) and shared_experts.py
(--moe-shared-expert-overlap: fc1 beside the dispatch all-to-all, fc2 beside the combine's)."""

from __future__ import annotations

from dataclasses import replace

from simulator.model.ops import Comm, Dispatch, layer_segments
from tests.model.test_ops_moe import ARCH, FE, NE, B, E, H, K, S, op, seg

AG = Dispatch(kind="allgather")


def test_allgather_dispatch_moves_every_token_once_over_ep_x_etp():
    tp, ep, etp = 2, 2, 2
    segs = layer_segments(ARCH, S, B, True, index=0, tp=tp, sp=True, ep=ep, etp=etp, dispatch=AG)
    # tokens_local = 4096 / tp 2 = 2048; gathered over ep x etp = 4 ranks: 8,192 rows.
    rows = 4 * 2048
    route, experts = seg(segs, "moe_route"), seg(segs, "experts")
    assert route.after == (
        Comm("all_gather", "ep_etp", rows * NE),  # the bool routing map
        Comm("all_gather", "ep_etp", rows * NE * E),  # the probabilities
        Comm("all_gather", "ep_etp", rows * H * E),  # the tokens, each once (not x top-k)
    )
    assert experts.after == (Comm("reduce_scatter", "ep_etp", rows * H * E),)
    # Backward: the combine's gradient is an all-gather, the tokens' and the probabilities'
    # gradients are reduce-scattered; the routing map has none.
    assert experts.bwd_before == (Comm("all_gather", "ep_etp", rows * H * E),)
    assert route.bwd_before == (
        Comm("reduce_scatter", "ep_etp", rows * H * E),
        Comm("reduce_scatter", "ep_etp", rows * NE * E),
    )
    # No all-to-all, no separate etp collective, and no permutation before the gather.
    comms = [c for g in segs for c in (*g.before, *g.after, *g.bwd_before, *g.bwd_after)]
    assert not any(c.dim in ("ep", "etp") for c in comms)
    assert [o.name for o in route.ops] == ["mlp_norm", "router", "router_topk"]
    # The local experts' tokens: 8,192 rows x top-2 / 8 experts = 2,048 per expert, 4 local
    # experts, f_e / etp wide (as the alltoall dispatcher gives them).
    gate = op(experts.ops, "expert_gate")
    assert (gate.gemm, gate.batch) == ((2048, FE // etp, H), NE // ep)
    names = [o.name for o in experts.ops]
    assert names[0] == "moe_permute" and names[-1] == "moe_unpermute"
    # The unpermute writes the zeroed [8192, h] output and adds the 4 x 2048 local outputs
    # (read and written; the activation already weighted them).
    tokens = 4 * 2048
    assert op(experts.ops, "moe_unpermute").bytes_moved == (rows * H + 2 * tokens * H) * E
    # The SwiGLU reads gate and up and writes their product, each token scaled by its
    # routing probability (one read per token): Megatron-Core's weighted activation.
    act = op(experts.ops, "expert_act")
    assert act.bytes_moved == 3 * tokens * (FE // etp) * E + tokens * E


def test_allgather_volume_does_not_depend_on_the_routing():
    even = layer_segments(ARCH, S, B, True, index=0, ep=4, dispatch=AG)
    skewed = layer_segments(ARCH, S, B, True, index=0, ep=4, dispatch=AG, load_imbalance=2.0)
    for name in ("moe_route", "experts"):
        assert seg(even, name).after == seg(skewed, name).after
    # ... while the busiest rank's experts do twice the mean's work.
    assert (
        op(seg(skewed, "experts").ops, "expert_up").gemm[0]
        == 2 * op(seg(even, "experts").ops, "expert_up").gemm[0]
    )


def test_allgather_without_expert_parallelism_has_no_collective():
    segs = layer_segments(ARCH, S, B, True, index=0, dispatch=AG)
    assert all(not (g.before or g.after or g.bwd_before or g.bwd_after) for g in segs)


SHARED = replace(ARCH, moe=replace(ARCH.moe, shared_experts=1, shared_expert_ffn_hidden_size=2048))


def test_shared_expert_overlap_puts_fc1_and_fc2_beside_the_all_to_alls():
    tp, ep = 2, 4
    kw = {"index": 0, "tp": tp, "sp": True, "ep": ep}
    plain = layer_segments(SHARED, S, B, True, **kw)
    over = layer_segments(SHARED, S, B, True, **kw, dispatch=Dispatch(shared_overlap=True))
    assert [g.name for g in over[-5:]] == [
        "moe_route",
        "shared_fc1",
        "experts",
        "shared_fc2",
        "moe_combine",
    ]
    a2a = Comm("all_to_all", "ep", 2048 * K * H * E)  # tokens_local 4096 / 2
    beside = replace(a2a, overlapped=True)
    fc1, fc2 = seg(over, "shared_fc1"), seg(over, "shared_fc2")
    # fc1 (gate, up, activation) beside the dispatch, fc2 (down) beside the combine, and
    # backward alike; the shared MLP's tp all-gather and reduce-scatter stay at its two ends.
    assert [o.name for o in fc1.ops] == ["shared_gate", "shared_up", "shared_act"]
    assert [o.name for o in fc2.ops] == ["shared_down"]
    tp_size = B * S * H * E  # b x s x h x 2, Megatron's g / f with sequence parallelism
    assert fc1.before == (Comm("all_gather", "tp", tp_size),) and fc1.after == (beside,)
    assert fc1.bwd_before == (beside,)
    assert fc1.bwd_after == (Comm("reduce_scatter", "tp", tp_size),)
    assert fc2.after == (beside, Comm("reduce_scatter", "tp", tp_size))
    assert fc2.bwd_before == (Comm("all_gather", "tp", tp_size), beside)
    # Transformer Engine's userbuffers are off in the overlapped shared experts.
    assert not fc1.userbuffers and not fc2.userbuffers
    # The routed path itself no longer carries the all-to-alls.
    for name in ("moe_route", "experts"):
        g = seg(over, name)
        assert not (g.after or g.bwd_before)
    # The same kernels run either way.
    ops = sorted(o.name for g in plain for o in g.ops)
    assert ops == sorted(o.name for g in over for o in g.ops)
