"""How tokens reach their experts and come back: the dispatchers' collectives around an MoE
layer's routing and experts (model/ops_moe.py builds their ops), pure functions.

Megatron-Core's token_dispatcher.py:
- MoEAlltoAllTokenDispatcher ("token_permutation(): permute -> A2A(EP) -> AG(TP) ->
  sort_chunk(if num_local_experts>1); token_unpermutation(): sort_chunk -> RS(TP) -> A2A(EP) ->
  unpermute", where TP is the expert tensor-parallel group, etp);
- MoEAllGatherTokenDispatcher ("this allgather spans the communication domain of TP*EP"): every
  rank's tokens, routing map and probabilities all-gathered over ep x etp, each token once;
  each rank permutes out the tokens of its local experts, scatters their outputs back into the
  gathered order and reduce-scatters that over the same group;
- DeepEP's normal kernels (Dispatch below).
With --moe-shared-expert-overlap (shared_experts.py) the shared experts run on their own
stream: fc1 and its activation beside the dispatch all-to-all, fc2 beside the combine's, in
forward and in backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from simulator.model.architecture import MoE
from simulator.model.ops_common import Comm, Op, Segment, _mem, tp_in, tp_out


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """How tokens reach their experts (training.moe.dispatcher).

    alltoall (Megatron-Core MoEAlltoAllTokenDispatcher): one all-to-all over the ep group, each
    token sent once per chosen expert. allgather (MoEAllGatherTokenDispatcher): all-gathers over
    ep x etp, the volume independent of the routing (`allgather_segments`). deepep (DeepEP's
    normal kernels, DeepSeek-V3 Sec 3.2.2): a token crosses the inter-host fabric once per
    distinct remote host among its experts, to the GPU of the same local index there (`ep_node`
    group), which forwards it over NVLink to its experts' GPUs (`ep_local` group); dispatched in
    FP8 when `fp8` (1 byte per element and one fp32 scale per 128, DeepSeek-V3 Sec 3.3.2:
    "quantize the activation before MoE up-projections into FP8 and then apply dispatch
    components"), combined in 16 bits. The two hops run at the same time (DeepEP forwards tokens
    over NVLink while RDMA brings the next ones: its README's "asymmetric-domain bandwidth
    forwarding").
    """

    kind: str = "alltoall"
    ep_local: int = 1  # ranks of the ep group on one host (deepep)
    fp8: bool = False
    # The shared experts beside the dispatch and the combine (training.moe.overlap
    # shared-expert; alltoall and deepep only, as Megatron-Core's config asserts).
    shared_overlap: bool = False


# DeepEP's FP8 dispatch: a byte per element plus an fp32 scale per 128 (per-token, per-128-
# channel quantization, DeepSeek-V3 Sec 3.3.2).
FP8_DISPATCH_BYTES = 1 + 4 / 128


def hosts_per_token(moe: MoE, hosts: int) -> float:
    """Expected distinct hosts among a token's experts, its experts spread evenly over `hosts`:
    with group-limited routing whose groups are the hosts (router_groups == hosts), at most
    router_group_topk of them (taken as exactly that many: each chosen group holds one of the
    token's top experts); else k independent uniform choices, hosts x (1 - (1 - 1/hosts)^k)."""
    k = moe.experts_per_token
    if moe.router_groups == hosts and moe.router_group_topk is not None:
        return float(min(moe.router_group_topk, k, hosts))
    return hosts * (1.0 - (1.0 - 1.0 / hosts) ** k)


def busiest_share(moe: MoE, load_imbalance: float) -> Fraction:
    """The busiest rank's expert tokens over the mean: load_imbalance, at most the capacity
    factor where one is set (the tokens over capacity are dropped before the dispatch)."""
    factor = Fraction(load_imbalance)
    if moe.capacity_factor is not None:
        factor = min(factor, Fraction(moe.capacity_factor))
    return factor


def dispatch_comms(
    moe: MoE,
    tl: int,
    h: int,
    e: int,
    ep: int,
    dispatch: Dispatch | None,
    busiest: Fraction = Fraction(1),
) -> tuple[tuple[Comm, ...], tuple[Comm, ...]]:
    """The dispatch's and the combine's collectives (forward; each one's gradient is the other
    mirrored). alltoall: tokens_local x top-k x h x e each way over ep. deepep: over ep_node
    the bytes of each token's distinct remote hosts (nccl-tests' buffer: the sent bytes x
    n / (n - 1), a 1/n share staying home), over ep_local each token copy to its GPU. Each size
    is the busiest rank's (`busiest` x the mean): the collective ends when the rank receiving
    the most tokens has them, so every rank is costed as that one (an upper bound where the
    imbalance is on the receive side only)."""
    k = moe.experts_per_token
    if ep == 1:
        return (), ()
    if dispatch is None or dispatch.kind == "alltoall":
        a2a = (Comm("all_to_all", "ep", math.ceil(tl * k * h * e * busiest)),)
        return a2a, a2a
    g = dispatch.ep_local
    n = ep // g
    remote = hosts_per_token(moe, n) * (n - 1) / n if n > 1 else 0.0

    def hops(elem: float, reverse: bool = False) -> tuple[Comm, ...]:
        sizes = []
        if n > 1:
            sizes.append(("ep_node", math.ceil(tl * remote * h * elem * n / (n - 1) * busiest)))
        if g > 1:
            sizes.append(("ep_local", math.ceil(tl * k * h * elem * busiest)))
        sizes = sizes[::-1] if reverse else sizes
        return tuple(
            Comm("all_to_all", dim, size, with_previous=i > 0, algorithm="deepep")
            for i, (dim, size) in enumerate(sizes)
        )

    return hops(FP8_DISPATCH_BYTES if dispatch.fp8 else e), hops(e, reverse=True)


def alltoall_segments(
    moe: MoE,
    route: list[Op],
    experts: list[Op],
    *,
    tl: int,
    h: int,
    e: int,
    ep: int,
    etp: int,
    dispatch: Dispatch | None,
    load: float,
) -> list[Segment]:
    """The routing and the experts with the alltoall or deepep dispatcher's collectives: the
    dispatch after the routing, the combine after the experts, an etp all-gather /
    reduce-scatter inside them; backward mirrors each."""
    busiest = busiest_share(moe, load)
    disp = math.ceil(tl * moe.experts_per_token * h * e * busiest)
    there, back = dispatch_comms(moe, tl, h, e, ep, dispatch, busiest)
    # Backward mirrors each direction in 16 bits: the combine's gradient takes the dispatch's
    # hops (the reverse of the combine's), the dispatch's gradient the combine's.
    back_grad = dispatch_comms(
        moe, tl, h, e, ep, dispatch and replace(dispatch, fp8=False), busiest
    )[0]
    gather = (Comm("all_gather", "etp", etp * disp),) if etp > 1 else ()
    scatter = (Comm("reduce_scatter", "etp", etp * disp),) if etp > 1 else ()
    return [
        Segment(
            name="moe_route", ops=tuple(route), after=there + gather, bwd_before=scatter + back
        ),
        Segment(
            name="experts", ops=tuple(experts), after=scatter + back, bwd_before=back_grad + gather
        ),
    ]


def allgather_segments(
    moe: MoE,
    route: list[Op],
    experts: list[Op],
    *,
    tl: int,
    h: int,
    e: int,
    n: int,
    local: int,
    m: int,
) -> list[Segment]:
    """The routing and the experts with the allgather dispatcher's collectives over the n = ep x etp
    ranks (Megatron-Core MoEAllGatherTokenDispatcher): after the routing, all-gathers of the
    routing map (bool), the probabilities and the tokens, n x tl rows each (token_dispatch); the
    local experts' tokens are picked out of them (dispatch_postprocess), their outputs (weighted
    in the experts' activation) scattered back into a zeroed [n x tl, h] buffer
    (combine_preprocess) and reduce-scattered
    (token_combine, in the probabilities' dtype, the logits': router.py
    `probs.type_as(logits)`). The volume does not depend on the routing: no imbalance reaches
    it. Backward: the tokens' all-gather becomes a reduce-scatter of their gradients, with the
    probabilities' gradients; the combine's reduce-scatter an all-gather. n == 1: no collectives
    (token_dispatch skips them)."""
    n_e, tokens, rows = moe.num_experts, local * m, n * tl
    pick = _mem("moe_permute", "copy", tokens * h, 2 * tokens * h * e)
    scatter = _mem("moe_unpermute", "residual", tokens * h, (rows * h + 2 * tokens * h) * e)
    work = (pick, *experts, scatter)
    if n == 1:
        return [Segment(name="moe_route", ops=tuple(route)), Segment(name="experts", ops=work)]
    tokens_ag = Comm("all_gather", "ep_etp", rows * h * e)
    tokens_rs = Comm("reduce_scatter", "ep_etp", rows * h * e)
    gathered = (
        Comm("all_gather", "ep_etp", rows * n_e),  # the routing map (no gradient)
        Comm("all_gather", "ep_etp", rows * n_e * e),
        tokens_ag,
    )
    return [
        Segment(
            name="moe_route",
            ops=tuple(route),
            after=gathered,
            bwd_before=(tokens_rs, Comm("reduce_scatter", "ep_etp", rows * n_e * e)),
        ),
        Segment(name="experts", ops=work, after=(tokens_rs,), bwd_before=(tokens_ag,)),
    ]


def shared_overlap_segments(
    routed: list[Segment], shared: list[Op], tail: list[Op], size: int, tp: int, sp: bool
) -> list[Segment]:
    """The routing and experts with the shared experts beside the dispatch and the combine
    (--moe-shared-expert-overlap): fc1 and its activation ("shared_fc1") run while the dispatch
    all-to-all does, fc2 ("shared_fc2") while the combine's does, each all-to-all on its own
    stream beside them (Comm.overlapped) and the next kernels waiting for both; backward alike
    (token_dispatcher.py: "Backward launch order: probs A2A -> tokens A2A -> shared experts
    fc1"). The shared experts' tensor-parallel input all-gather and output reduce-scatter stay
    at their two ends, without Transformer Engine's userbuffers. `tail`: the unpermute, the
    shared output's addition and the block's residual."""
    route, experts = routed
    ag_in, rs_in = tp_in(size, tp, sp)
    rs_out, ag_out = tp_out(size, tp, sp)

    def split(cs: tuple[Comm, ...]) -> tuple[tuple[Comm, ...], tuple[Comm, ...]]:
        """(expert-tensor-parallel ones, the others made to run beside the kernels)."""
        return (
            tuple(c for c in cs if c.dim == "etp"),
            tuple(replace(c, overlapped=True) for c in cs if c.dim != "etp"),
        )

    gather, there = split(route.after)
    scatter_bwd, back_bwd = split(route.bwd_before)
    scatter, back = split(experts.after)
    gather_bwd, back_grad = split(experts.bwd_before)
    return [
        replace(route, after=(), bwd_before=()),
        Segment(
            name="shared_fc1",
            ops=tuple(shared[:-1]),
            before=ag_in,
            after=there + gather,
            bwd_before=scatter_bwd + back_bwd,
            bwd_after=rs_in,
            userbuffers=False,
        ),
        replace(experts, after=scatter, bwd_before=()),
        Segment(
            name="shared_fc2",
            ops=tuple(shared[-1:]),
            after=back + rs_out,
            bwd_before=ag_out + back_grad,
            bwd_after=gather_bwd,
            userbuffers=False,
        ),
        Segment(name="moe_combine", ops=tuple(tail)),
    ]
