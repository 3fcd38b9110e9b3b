"""The MLP sub-layer of a block as segments: the dense MLP, or a mixture-of-experts (MoE) layer
with the collectives of expert and tensor parallelism, pure functions.

The MoE layer is Megatron-Core's (megatron/core/transformer/moe/): moe_layer.py MoELayer.forward
(router -> dispatch -> experts -> combine, then `output + shared_experts(hidden_states)`),
router.py TopKRouter and experts.py GroupedMLP / TEGroupedMLP (one grouped GEMM per projection
over the rank's local experts); the dispatchers' collectives are model/moe_dispatch.py's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from simulator.model.architecture import Architecture, MoE
from simulator.model.moe_dispatch import (
    Dispatch,
    allgather_segments,
    alltoall_segments,
    busiest_share,
    shared_overlap_segments,
)
from simulator.model.ops_common import Op, Segment, _matmul, _mem, _norm, _residual, tp_segment


def ffn_ops(
    prefix: str, m: int, f: int, h: int, e: int, gated: bool, batch: int = 1, probs: bool = False
) -> list[Op]:
    """Up (and gate) GEMMs, the activation and the down GEMM of an MLP of width f on m tokens;
    `batch` experts of m tokens each as grouped GEMMs. `probs`: the activation also scales each
    token by its routing probability (read, one per token, in the activations' dtype)."""
    weights = batch * m * e if probs else 0
    if gated:
        ops = [
            _matmul(f"{prefix}_gate", m, f, h, e, batch),
            _matmul(f"{prefix}_up", m, f, h, e, batch),
            _mem(f"{prefix}_act", "act", batch * m * f, 3 * batch * m * f * e + weights),
        ]  # read gate, up; write product
    else:
        ops = [
            _matmul(f"{prefix}_up", m, f, h, e, batch),
            _mem(f"{prefix}_act", "act", batch * m * f, 2 * batch * m * f * e + weights),
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
    shared experts, "shared_experts" (with dispatch.shared_overlap: "moe_route", "shared_fc1",
    "experts", "shared_fc2", "moe_combine"); the block's final residual ends the last of them.

    tokens_local (tr): the rank's tokens, b x s/cp, divided by tp with sequence parallelism
    (Megatron-Core requires sequence parallelism for MoE with tp > 1: "When using MoE and tensor
    parallelism, sequence parallelism must be used"; without it every tp rank routes all
    b x s/cp tokens). The dispatch all-to-all sends each of them once per chosen expert:
    tokens_local x top-k x h x e bytes per rank (nccl-tests' whole send buffer); the etp
    all-gather's output is etp times that. With load imbalance both the busiest rank's expert
    GEMMs and the collectives are its (busiest_share x the mean): a collective ends when the
    rank receiving the most has it. The allgather dispatcher's collectives carry every token
    once whatever the routing (moe_dispatch.allgather_segments).
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
    ]
    local, m = expert_tokens(moe, tl, ep, etp, load_imbalance)
    f_e = moe.expert_ffn_hidden_size // etp
    residual = _residual("mlp_residual", tr, h, e, dropout)
    shared = []
    if moe.shared_experts:
        # Shared experts: one dense MLP of shared_experts x their width, tensor-parallel like
        # the attention (Megatron-Core MoE README: "The parallelism patterns of the shared
        # experts follow the settings of the dense part ... replicated in EP ranks";
        # SharedExpertMLP), run on the MoE input and added to the routed experts' output.
        f_s = moe.shared_experts * (moe.shared_expert_ffn_hidden_size or moe.expert_ffn_hidden_size)
        shared = ffn_ops("shared", t, f_s // tp, h, e, arch.gated)
    # The routing probabilities scale the experts' activation output (Megatron-Core >= 0.13,
    # experts.py bias_act_func / weighted_bias_swiglu_impl: "Memory efficient token permutation
    # by moving the probs multiplication from unpermutation to activation function of
    # GroupedMLP", MoE README), so the unpermute only adds each token's expert outputs up.
    experts = ffn_ops("expert", m, f_e, h, e, arch.gated, batch=local, probs=True)
    combine: list[Op] = []
    if dispatch is not None and dispatch.kind == "allgather":
        segments = allgather_segments(
            moe, route, experts, tl=tl, h=h, e=e, n=ep * etp, local=local, m=m
        )
    else:
        if dispatch is not None and dispatch.kind == "deepep" and ep * etp > 1:
            # Megatron-Core's DeepEP manager (token_dispatcher.py _DeepepManager: "Use fused
            # kernel to permute tokens and perform all-to-all communication in single step"):
            # no permute kernel before the dispatch nor unpermute after the combine (DeepEP's
            # kernels copy and reduce the tokens); the received tokens are permuted to the
            # local experts (get_permuted_hidden_states_by_experts) and restored before the
            # combine (get_restored_hidden_states_by_experts), each a gather of their rows.
            pick = _mem("moe_permute", "copy", local * m * h, 2 * local * m * h * e)
            experts = [pick, *experts, replace(pick, name="moe_unpermute")]
        else:
            # Permutation 1: copy each token once per chosen expert (moe_utils.permute).
            route.append(_mem("moe_permute", "copy", tl * k * h, (tl * h + tl * k * h) * e))
            # Permutation 2 regroups the chunks received from the ep x etp ranks by local
            # expert (sort_chunks_by_idxs, only with several local experts); undone before
            # the combine.
            if local > 1 and ep * etp > 1:
                sort = _mem("moe_sort", "copy", local * m * h, 2 * local * m * h * e)
                experts = [sort, *experts, replace(sort, name="moe_unsort")]
            # Unpermute: the sum of each token's top-k expert outputs (already weighted).
            combine = [_mem("moe_unpermute", "residual", tl * k * h, (tl * k * h + tl * h) * e)]
        segments = alltoall_segments(
            moe,
            route,
            experts,
            tl=tl,
            h=h,
            e=e,
            ep=ep,
            etp=etp,
            dispatch=dispatch,
            load=load_imbalance,
        )
    if not shared:
        return segments + [Segment(name="moe_combine", ops=tuple(combine + [residual]))]
    add = _mem("shared_add", "residual", tr * h, 3 * tr * h * e)
    if dispatch is None or not dispatch.shared_overlap:
        return segments + [
            Segment(name="moe_combine", ops=tuple(combine)),
            tp_segment("shared_experts", [*shared, add, residual], t * h * e, tp, sp),
        ]
    return shared_overlap_segments(segments, shared, combine + [add, residual], t * h * e, tp, sp)
