"""MoE blocks (Megatron-Core MoE layer with the alltoall dispatcher): segments, expert GEMMs,
dispatch / combine collectives, load imbalance and capacity. Expected values are hand
calculations from the shapes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from simulator.model.architecture import Architecture, MoE
from simulator.model.ops import Comm, backward_ops, layer_ops, layer_segments

H, A, S, B, E = 1024, 16, 4096, 1, 2
NE, K, FE = 8, 2, 1024  # 8 experts, top-2, expert width 1024
ARCH = Architecture(
    kind="decoder",
    num_layers=4,
    hidden_size=H,
    num_heads=A,
    ffn_hidden_size=4096,
    vocab_size=32000,
    ffn="swiglu",
    norm="rmsnorm",
    bias=False,
    position_embedding="rotary",
    moe=MoE(num_experts=NE, experts_per_token=K, expert_ffn_hidden_size=FE),
)


def seg(segs, name):
    return next(g for g in segs if g.name == name)


def op(ops, name):
    return next(o for o in ops if o.name == name)


def test_segments_in_order():
    segs = layer_segments(ARCH, S, B, True, causal=True, index=0)
    assert [g.name for g in segs] == ["attention", "moe_route", "experts", "moe_combine"]
    assert [o.name for o in seg(segs, "moe_route").ops] == [
        "mlp_norm",
        "router",
        "router_topk",
        "moe_permute",
    ]
    assert [o.name for o in seg(segs, "experts").ops] == [
        "expert_gate",
        "expert_up",
        "expert_act",
        "expert_down",
    ]
    assert [o.name for o in seg(segs, "moe_combine").ops] == ["moe_unpermute", "mlp_residual"]
    # ep = 1, etp = 1, tp = 1: no collective at all.
    assert all(not (g.before or g.after or g.bwd_before or g.bwd_after) for g in segs)


def test_dispatch_all_to_all_bytes_per_rank():
    cp, tp, ep = 2, 2, 4
    segs = layer_segments(ARCH, S, B, True, causal=True, index=0, tp=tp, sp=True, cp=cp, ep=ep)
    # tokens_local = b x s / cp / tp = 4096 / 2 / 2 = 1024; x top-2 x h x 2 bytes.
    a2a = Comm("all_to_all", "ep", 1024 * 2 * 1024 * 2)
    assert a2a.size_bytes == 4_194_304
    route, experts = seg(segs, "moe_route"), seg(segs, "experts")
    assert route.after == (a2a,) and route.bwd_before == (a2a,)  # dispatch and its gradient
    assert experts.after == (a2a,) and experts.bwd_before == (a2a,)  # combine and its gradient
    assert route.before == route.bwd_after == experts.before == experts.bwd_after == ()
    # The attention keeps its tp collectives (b x s/cp x h x 2 = 4 MiB), the routed experts none.
    assert [c.op for c in seg(segs, "attention_in").before] == ["all_gather"]
    assert seg(segs, "attention_in").before[0].size_bytes == 2048 * 1024 * 2


def test_expert_tensor_parallel_collectives():
    tp, ep, etp = 2, 2, 2
    segs = layer_segments(ARCH, S, B, True, index=0, tp=tp, sp=True, ep=ep, etp=etp)
    disp = 2048 * K * H * E  # tokens_local 4096 / 2 = 2048
    a2a, ag, rs = (
        Comm("all_to_all", "ep", disp),
        Comm("all_gather", "etp", etp * disp),
        Comm("reduce_scatter", "etp", etp * disp),
    )
    route, experts = seg(segs, "moe_route"), seg(segs, "experts")
    # permute -> A2A(EP) -> AG(TP); sort_chunk -> RS(TP) -> A2A(EP) -> unpermute.
    assert route.after == (a2a, ag) and route.bwd_before == (rs, a2a)
    assert experts.after == (rs, a2a) and experts.bwd_before == (a2a, ag)
    # 4 local experts, each 2048 x 2 x 2 x 2 / 8 = 2048 tokens (all etp ranks' tokens), f_e / 2.
    gate = op(experts.ops, "expert_gate")
    assert (gate.gemm, gate.batch) == ((2048, FE // etp, H), NE // ep)
    assert op(experts.ops, "expert_down").gemm == (2048, H, FE // etp)
    # Chunks from several ranks are regrouped by local expert and back.
    names = [o.name for o in experts.ops]
    assert names[0] == "moe_sort" and names[-1] == "moe_unsort"


@pytest.mark.parametrize("ep,etp,tp", [(1, 1, 1), (4, 1, 1), (2, 2, 2), (8, 1, 2)])
def test_moe_flops_per_token_are_the_active_experts(ep, etp, tp):
    ops = layer_ops(ARCH, S, B, True, index=0, tp=tp, sp=tp > 1, ep=ep, etp=etp)
    tokens_local = B * S // tp
    expert = sum(o.flops for o in ops if o.name.startswith("expert_") and o.kind == "matmul")
    # A gated expert forward: 2 x 3 x h x f_e per token per chosen expert, top-2.
    assert expert == tokens_local * 2 * 3 * H * FE * K
    assert expert / tokens_local == 2 * 3 * 1024 * 1024 * 2
    router = op(ops, "router")
    assert router.gemm == (tokens_local, NE, H) and router.flops == 2 * tokens_local * NE * H
    bwd = backward_ops([o for o in ops if o.name.startswith("expert_")])
    assert sum(o.flops for o in bwd if o.kind == "matmul") == 2 * expert
    assert all(o.batch == NE // ep for o in bwd if o.kind == "matmul")


def test_load_imbalance_and_capacity():
    def tokens_per_expert(arch, **kw):
        return op(layer_ops(arch, S, B, True, index=0, **kw), "expert_up").gemm[0]

    # Mean: 4096 tokens x top-2 / 8 experts = 1024 per expert.
    assert tokens_per_expert(ARCH) == 1024
    assert tokens_per_expert(ARCH, load_imbalance=1.5) == 1536
    capped = replace(ARCH, moe=replace(ARCH.moe, capacity_factor=1.25))
    assert tokens_per_expert(capped, load_imbalance=1.5) == 1280  # 1.25 x 1024
    assert tokens_per_expert(capped, load_imbalance=1.1) == 1127  # ceil(1.1 x 1024)
    # The collectives are costed as the busiest rank's: it receives load_imbalance x the
    # mean (the issue: "load imbalance stretches both the busiest rank's compute and its
    # all-to-all"), at most the capacity.
    segs = layer_segments(ARCH, S, B, True, index=0, ep=4, load_imbalance=2.0)
    assert seg(segs, "moe_route").after[0].size_bytes == 2 * 4096 * K * H * E
    segs = layer_segments(capped, S, B, True, index=0, ep=4, load_imbalance=2.0)
    assert seg(segs, "moe_route").after[0].size_bytes == 4096 * K * H * E * 5 // 4


def test_shared_experts_are_a_tensor_parallel_mlp():
    shared = replace(
        ARCH, moe=replace(ARCH.moe, shared_experts=2, shared_expert_ffn_hidden_size=512)
    )
    tp = 4
    segs = layer_segments(shared, S, B, True, index=0, tp=tp, sp=True, ep=2)
    assert [g.name for g in segs] == [
        "attention",
        "moe_route",
        "experts",
        "moe_combine",
        "shared_experts",
    ]
    sh = seg(segs, "shared_experts")
    # 2 shared experts x 512 = 1024 wide, column-parallel over tp = 4 on all b x s tokens.
    assert op(sh.ops, "shared_gate").gemm == (S, 1024 // tp, H)
    assert op(sh.ops, "shared_down").gemm == (S, H, 1024 // tp)
    size = S * H * E
    assert [(c.op, c.dim, c.size_bytes) for c in sh.before] == [("all_gather", "tp", size)]
    assert [(c.op, c.dim, c.size_bytes) for c in sh.after] == [("reduce_scatter", "tp", size)]
    assert [c.op for c in sh.bwd_before] == ["all_gather"]
    assert [c.op for c in sh.bwd_after] == ["reduce_scatter"]
    assert [o.name for o in sh.ops][-1] == "mlp_residual"
    assert [o.name for o in seg(segs, "moe_combine").ops] == ["moe_unpermute"]


def test_dense_layers_of_an_moe_model():
    mixed = replace(ARCH, moe=replace(ARCH.moe, first_dense_layers=1, layer_frequency=2))
    names = [[g.name for g in layer_segments(mixed, S, B, True, index=i)] for i in range(4)]
    assert names[0] == names[2] == ["attention", "mlp"]  # dense: index 0, and 2 (1 + odd)
    assert names[1] == names[3] == ["attention", "moe_route", "experts", "moe_combine"]


def test_moe_validation():
    with pytest.raises(ValueError, match="num_experts"):
        layer_segments(ARCH, S, B, True, index=0, ep=3)
    with pytest.raises(ValueError, match="load_imbalance"):
        layer_segments(ARCH, S, B, True, index=0, load_imbalance=0.5)


def test_deepep_dispatch_crosses_hosts_once_per_distinct_remote_host():
    """DeepSeek-V3 with node-limited routing (n_group 8, topk_group 4) on EP 64 over 8 hosts of
    8: each token reaches exactly 4 hosts, its own among them with probability 4/8, so 3.5
    remote hosts; dispatched in FP8 (1 + 4/128 bytes per element), combined in bf16."""
    from simulator.model.ops import Dispatch, layer_segments
    from simulator.model.presets import get_preset

    arch = get_preset("deepseek-v3")
    tokens, h, k = 4096, 7168, 8
    segs = layer_segments(
        arch,
        4096,
        1,
        True,
        dtype_bytes=2,
        causal=True,
        index=3,
        ep=64,
        dispatch=Dispatch(kind="deepep", ep_local=8, fp8=True),
    )
    route = next(s for s in segs if s.name == "moe_route")
    ib, nvl = route.after
    remote = 4 * 7 / 8
    assert (ib.dim, nvl.dim) == ("ep_node", "ep_local") and nvl.with_previous
    # nccl-tests' all-to-all buffer: the bytes that leave, x 8 / 7 (a share stays home).
    assert ib.size_bytes == math.ceil(tokens * remote * h * (1 + 4 / 128) * 8 / 7)
    assert nvl.size_bytes == math.ceil(tokens * k * h * (1 + 4 / 128))
    experts = next(s for s in segs if s.name == "experts")
    nvl_back, ib_back = experts.after  # the combine: NVLink first, then home over the fabric
    assert ib_back.size_bytes == math.ceil(tokens * remote * h * 2 * 8 / 7)
    assert nvl_back.size_bytes == tokens * k * h * 2


def test_deepep_permutes_on_the_receiving_side_only():
    # Megatron-Core's DeepEP manager permutes inside the dispatch kernel: no moe_permute before
    # it and no unpermute after the combine; the received tokens are gathered to the local
    # experts and back. ep 4: 2 local experts, each 4096 x 2 x 4 / 8 = 4096 tokens (from all
    # four ranks).
    from simulator.model.ops import Dispatch

    segs = layer_segments(ARCH, S, B, True, index=0, ep=4, dispatch=Dispatch(kind="deepep"))
    assert [o.name for o in seg(segs, "moe_route").ops] == ["mlp_norm", "router", "router_topk"]
    experts = seg(segs, "experts").ops
    assert experts[0].name == "moe_permute" and experts[-1].name == "moe_unpermute"
    assert experts[0].bytes_moved == experts[-1].bytes_moved == 2 * 2 * 4096 * H * E
    assert [o.name for o in seg(segs, "moe_combine").ops] == ["mlp_residual"]
    # The alltoall dispatcher keeps its four permutations.
    names = [o.name for g in layer_segments(ARCH, S, B, True, index=0, ep=4) for o in g.ops]
    assert {"moe_permute", "moe_sort", "moe_unsort", "moe_unpermute"} <= set(names)


def test_deepep_hops_run_deepeps_kernels():
    # The deepep dispatcher's two hops name their algorithm (DeepEP's chunked kernels, a send's
    # calibration row); the alltoall dispatcher's all-to-all leaves it to the step.
    from simulator.model.ops import Dispatch

    segs = layer_segments(ARCH, S, B, True, index=0, ep=4, dispatch=Dispatch(kind="deepep"))
    assert all(c.algorithm == "deepep" for c in seg(segs, "moe_route").after)
    plain = layer_segments(ARCH, S, B, True, index=0, ep=4)
    assert all(c.algorithm == "" for c in seg(plain, "moe_route").after)
