"""The MLP sub-layer of a block as segments: the dense MLP, or a mixture-of-experts (MoE) layer
with the collectives of expert and tensor parallelism, pure functions.

The MoE layer is Megatron-Core's with the alltoall token dispatcher
(megatron/core/transformer/moe/): moe_layer.py MoELayer.forward (router -> dispatch ->
experts -> combine, then `output + shared_experts(hidden_states)`), router.py TopKRouter,
token_dispatcher.py MoEAlltoAllTokenDispatcher ("token_permutation(): permute -> A2A(EP) ->
AG(TP) -> sort_chunk(if num_local_experts>1); token_unpermutation(): sort_chunk -> RS(TP) ->
A2A(EP) -> unpermute", where TP is the expert tensor-parallel group, etp) and experts.py
GroupedMLP / TEGroupedMLP (one grouped GEMM per projection over the rank's local experts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from simulator.model.architecture import Architecture, MoE
from simulator.model.ops_common import (
    Comm,
    Op,
    Segment,
    _matmul,
    _mem,
    _norm,
    _residual,
    tp_segment,
)


def ffn_ops(prefix: str, m: int, f: int, h: int, e: int, gated: bool, batch: int = 1) -> list[Op]:
    """Up (and gate) GEMMs, the activation and the down GEMM of an MLP of width f on m tokens;
    `batch` experts of m tokens each as grouped GEMMs."""
    if gated:
        ops = [
            _matmul(f"{prefix}_gate", m, f, h, e, batch),
            _matmul(f"{prefix}_up", m, f, h, e, batch),
            _mem(f"{prefix}_act", "act", batch * m * f, 3 * batch * m * f * e),
        ]  # read gate, up; write product
    else:
        ops = [
            _matmul(f"{prefix}_up", m, f, h, e, batch),
            _mem(f"{prefix}_act", "act", batch * m * f, 2 * batch * m * f * e),
        ]
    return ops + [_matmul(f"{prefix}_down", m, h, f, e, batch)]


def mlp_segment(
    arch: Architecture, *, t: int, tr: int, e: int, dropout: bool, tp: int, sp: bool
) -> Segment:
    """The dense MLP (column-parallel up, row-parallel down; Shoeybi et al. 2019 Sec 3)."""
    h, f = arch.hidden_size, arch.ffn_hidden_size // tp
    ops = [_norm("mlp_norm", tr, h, e)]
    ops += ffn_ops("mlp", t, f, h, e, arch.gated)
    ops.append(_residual("mlp_residual", tr, h, e, dropout))
    return tp_segment("mlp", ops, t * h * e, tp, sp)


def check_expert_parallel(moe: MoE, ep: int, etp: int, load_imbalance: float) -> None:
    """Megatron-Core BaseMoELayer asserts num_moe_experts % expert_model_parallel_size == 0."""
    if ep < 1 or etp < 1:
        raise ValueError(f"ep, etp: expected integers >= 1, got {ep}, {etp}")
    if moe.num_experts % ep:
        raise ValueError(f"ep: {ep} does not divide num_experts {moe.num_experts}")
    if not load_imbalance >= 1.0:
        raise ValueError(f"load_imbalance: expected >= 1.0, got {load_imbalance!r}")


def expert_tokens(
    moe: MoE, tokens_local: int, ep: int, etp: int, load_imbalance: float
) -> tuple[int, int]:
    """(local experts, tokens per local expert) of the busiest rank.

    Each of the ep x etp ranks that feed a rank's experts routes tokens_local tokens to
    experts_per_token experts each, so a local expert gets on average
    tokens_local x top-k x ep x etp / num_experts tokens (after the dispatch all-to-all over
    ep and the all-gather over etp). The busiest rank's experts get load_imbalance times the
    mean, at most capacity_factor times it when a capacity is set (Megatron-Core moe_utils
    get_capacity: capacity = num_tokens * topk * capacity_factor / num_experts; the tokens
    over it are dropped before the dispatch).
    """
    local = moe.num_experts // ep
    mean = Fraction(tokens_local * moe.experts_per_token * ep * etp, moe.num_experts)
    return local, max(1, math.ceil(mean * busiest_share(moe, load_imbalance)))


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """How tokens reach their experts (training.moe.dispatcher).

    alltoall (Megatron-Core MoEAlltoAllTokenDispatcher): one all-to-all over the ep group, each
    token sent once per chosen expert. deepep (DeepEP's normal kernels, DeepSeek-V3 Sec 3.2.2):
    a token crosses the inter-host fabric once per distinct remote host among its experts, to
    the GPU of the same local index there (`ep_node` group), which forwards it over NVLink to
    its experts' GPUs (`ep_local` group); dispatched in FP8 when `fp8` (1 byte per element and
    one fp32 scale per 128, DeepSeek-V3 Sec 3.3.2: "quantize the activation before MoE
    up-projections into FP8 and then apply dispatch components"), combined in 16 bits. The two
    hops run at the same time (DeepEP forwards tokens over NVLink while RDMA brings the next
    ones: its README's "asymmetric-domain bandwidth forwarding").
    """

    kind: str = "alltoall"
    ep_local: int = 1  # ranks of the ep group on one host (deepep)
    fp8: bool = False


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
            Comm("all_to_all", dim, size, with_previous=i > 0)
            for i, (dim, size) in enumerate(sizes)
        )

    return hops(FP8_DISPATCH_BYTES if dispatch.fp8 else e), hops(e, reverse=True)


def moe_segments(
    arch: Architecture,
    *,
    t: int,
    tr: int,
    e: int,
    dropout: bool,
    tp: int,
    sp: bool,
    ep: int,
    etp: int,
    load_imbalance: float,
    dispatch: Dispatch | None = None,
) -> list[Segment]:
    """The MoE MLP of one block on one rank: "moe_route", "experts", "moe_combine" and, with
    shared experts, "shared_experts"; the block's final residual ends the last of them.

    tokens_local (tr): the rank's tokens, b x s/cp, divided by tp with sequence parallelism
    (Megatron-Core requires sequence parallelism for MoE with tp > 1: "When using MoE and tensor
    parallelism, sequence parallelism must be used"; without it every tp rank routes all
    b x s/cp tokens). The dispatch all-to-all sends each of them once per chosen expert:
    tokens_local x top-k x h x e bytes per rank (nccl-tests' whole send buffer); the etp
    all-gather's output is etp times that. With load imbalance both the busiest rank's expert
    GEMMs and the collectives are its (busiest_share x the mean): a collective ends when the
    rank receiving the most has it.
    Backward mirrors each collective: the gradient of an all-to-all is an all-to-all of the
    same size, of an all-gather a reduce-scatter, and the reverse.
    """
    moe = arch.moe
    assert moe is not None
    check_expert_parallel(moe, ep, etp, load_imbalance)
    h, k, n_e = arch.hidden_size, moe.experts_per_token, moe.num_experts
    tl = tr
    route = [
        _norm("mlp_norm", tr, h, e),
        # Router GEMM tokens x h x num_experts (replicated weight, router.py gating).
        _matmul("router", tl, n_e, h, e),
        # Score function and top-k in fp32: read the logits, write the fp32 probabilities
        # and the bool routing map, both [tokens, num_experts] (TopKRouter.routing).
        _mem("router_topk", "softmax", tl * n_e, tl * n_e * (e + 4 + 1)),
        # Permutation 1: copy each token once per chosen expert (moe_utils.permute).
        _mem("moe_permute", "copy", tl * k * h, (tl * h + tl * k * h) * e),
    ]
    local, m = expert_tokens(moe, tl, ep, etp, load_imbalance)
    f_e = moe.expert_ffn_hidden_size // etp
    # Permutation 2 regroups the chunks received from the ep x etp ranks by local expert
    # (sort_chunks_by_idxs, only with several local experts); undone before the combine.
    sort = local > 1 and ep * etp > 1
    sort_op = [_mem("moe_sort", "copy", local * m * h, 2 * local * m * h * e)] if sort else []
    unsort = [_mem("moe_unsort", "copy", local * m * h, 2 * local * m * h * e)] if sort else []
    experts = sort_op + ffn_ops("expert", m, f_e, h, e, arch.gated, batch=local) + unsort
    # Unpermute: the weighted sum of each token's top-k expert outputs (fp32 probabilities).
    combine = [
        _mem("moe_unpermute", "residual", tl * k * h, (tl * k * h + tl * h) * e + tl * k * 4)
    ]
    residual = _residual("mlp_residual", tr, h, e, dropout)

    busiest = busiest_share(moe, load_imbalance)
    disp = math.ceil(tl * k * h * e * busiest)
    there, back = dispatch_comms(moe, tl, h, e, ep, dispatch, busiest)
    # Backward mirrors each direction in 16 bits: the combine's gradient takes the dispatch's
    # hops (the reverse of the combine's), the dispatch's gradient the combine's.
    back_grad = dispatch_comms(
        moe, tl, h, e, ep, dispatch and replace(dispatch, fp8=False), busiest
    )[0]
    gather = (Comm("all_gather", "etp", etp * disp),) if etp > 1 else ()
    scatter = (Comm("reduce_scatter", "etp", etp * disp),) if etp > 1 else ()
    segments = [
        Segment(
            name="moe_route",
            ops=tuple(route),
            after=there + gather,
            bwd_before=scatter + back,
        ),
        Segment(
            name="experts",
            ops=tuple(experts),
            after=scatter + back,
            bwd_before=back_grad + gather,
        ),
    ]
    if not moe.shared_experts:
        return segments + [Segment(name="moe_combine", ops=tuple(combine + [residual]))]
    # Shared experts: one dense MLP of shared_experts x their width, tensor-parallel like the
    # attention (Megatron-Core MoE README: "The parallelism patterns of the shared experts
    # follow the settings of the dense part ... replicated in EP ranks"; SharedExpertMLP),
    # run on the MoE input after the combine and added to its output.
    f_s = moe.shared_experts * (moe.shared_expert_ffn_hidden_size or moe.expert_ffn_hidden_size)
    shared = ffn_ops("shared", t, f_s // tp, h, e, arch.gated)
    shared += [_mem("shared_add", "residual", tr * h, 3 * tr * h * e), residual]
    return segments + [
        Segment(name="moe_combine", ops=tuple(combine)),
        tp_segment("shared_experts", shared, t * h * e, tp, sp),
    ]
