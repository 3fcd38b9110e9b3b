"""Tensor-parallel communication overlapped with the GEMMs beside it: Transformer Engine's
userbuffers (Megatron-LM --tp-comm-overlap, NeMo's tp_comm_overlap; scenario key
training.parallelism.tp_comm_overlap).

With sequence parallelism each sub-layer (attention, MLP) has an all-gather before its first
GEMMs and a reduce-scatter after its last one, and the reverse in backward (model/ops_common.py
tp_in / tp_out). Without the overlap they run between kernels, exposed (execution/strategies/
block_run.py folds them into the compute task at their standalone time). With it, TE splits the
collective and the GEMM beside it into chunks and runs them at once. Its default configuration
(transformer_engine/pytorch/module/base.py `initialize_ub`, `get_default_config`; NeMo's
per-model tables in nemo/collections/llm/recipes/tp_overlap_configs/userbuffers.py tune the SM
counts around the same methods):

- ring exchange, for an all-gather feeding a GEMM (qkv_fprop, fc1_fprop in forward; proj_dgrad,
  fc2_dgrad in backward): tp steps; each computes the GEMM on the chunk at hand while the next
  chunk moves to the ring neighbour over the copy engines (`use_ce`, one SM): the GEMM's
  g / tp per step against the all-gather's c / (tp - 1), so
      T = g / tp + (tp - 1) max(g / tp, c / (tp - 1)).
- pipeline, for a GEMM feeding a reduce-scatter (proj_fprop, fc2_fprop): the GEMM in
  `PIPELINE_SPLITS` chunks on the SMs the communication leaves (`set_sm_margin`: S - m of S), each
  chunk's reduce-scatter on m SMs while the next chunk computes: with g' = g S / (S - m),
      T = g' / n + (n - 1) max(g' / n, c / n) + c / n.
- bulk, for the reduce-scatter of a sub-layer's input gradient beside its weight-gradient GEMMs
  (qkv_wgrad, fc1_wgrad): both at once, the collective on m SMs and the GEMM slowed to
  (S - m) / S of its rate while it runs (no margin set):
      T = max(c, g + c m / S).
  Where the sub-layer has no weight gradient (a frozen base under LoRA) nothing hides it: the
  reduce-scatter beside the input-gradient GEMMs is TE's separate `ub_overlap_rs_dgrad`, off by
  default (and off in MLPerf's Llama 2 70B LoRA configs: MC_TP_OVERLAP_RS_DGRAD=False).

What is exposed is T - g: the GEMM's own time is already counted; the rest, the collective's
unhidden chunks and the GEMM's slowdown by the SMs it holds, is what the overlap leaves. With
nothing to hide behind (g = 0) every method gives c. Not modelled: the backward's second
all-gather of a sequence-parallel input for the weight gradient (TE's qkv_dgrad / fc1_dgrad
bulk all-gather), which the model omits with or without the overlap; HBM contention.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.model.ops_common import Op
from simulator.system.compute import ComputeModel

RING, PIPELINE, BULK = "ring_exchange", "pipeline", "bulk"
# TE's defaults for the pipeline and bulk methods (get_default_config): "num_sm": 16 (ring
# exchange: 1, on the copy engines), pipeline "num_splits": 4.
PIPELINE_SMS = 16
PIPELINE_SPLITS = 4
BULK_SMS = 16


@dataclass(frozen=True, kw_only=True)
class OverlapGemms:
    """The GEMM time beside each of a sub-layer's four tensor-parallel points, seconds (the
    method TE overlaps each by: `points`)."""

    fwd_before_s: float  # the first GEMMs, after the all-gather (qkv / fc1 fprop): ring
    fwd_after_s: float  # the last GEMMs, before the reduce-scatter (proj / fc2 fprop): pipeline
    bwd_before_s: float  # the first input-gradient GEMMs (proj / fc2 dgrad): ring
    bwd_after_s: float  # the last weight-gradient GEMMs (qkv / fc1 wgrad; 0 if frozen): bulk


def points(near: OverlapGemms, forward: bool) -> tuple[tuple[str, float], tuple[str, float]]:
    """A sub-layer's (before, after) tensor-parallel points in one direction, each as (method,
    the GEMM seconds beside it) (module doc)."""
    if forward:
        return (RING, near.fwd_before_s), (PIPELINE, near.fwd_after_s)
    return (RING, near.bwd_before_s), (BULK, near.bwd_after_s)


def tensor_parallel(comms) -> bool:
    """True where every collective of a point is tensor-parallel: the ones TE overlaps."""
    return bool(comms) and all(c.dim == "tp" for c in comms)


def _gemm(op: Op) -> bool:
    return op.kind == "matmul" and op.gemm is not None


def _leading(ops: list[Op]) -> list[Op]:
    """The GEMMs from the first one up to the first op that is not a GEMM."""
    run: list[Op] = []
    for op in ops:
        if _gemm(op):
            run.append(op)
        elif run:
            break
    return run


def overlap_gemms(cm: ComputeModel, fwd: list[Op], bwd: list[Op]) -> OverlapGemms:
    """A sub-layer's GEMMs beside its tensor-parallel points: `fwd` its forward ops, `bwd` their
    backward (model/ops.py backward_ops: reversed, each GEMM as .dgrad then .wgrad)."""
    first_bwd = _leading(bwd)
    last_bwd = _leading(list(reversed(bwd)))
    return OverlapGemms(
        fwd_before_s=cm.ops_time_s(_leading(fwd)),
        fwd_after_s=cm.ops_time_s(_leading(list(reversed(fwd)))),
        bwd_before_s=cm.ops_time_s([op for op in first_bwd if op.name.endswith(".dgrad")]),
        bwd_after_s=cm.ops_time_s([op for op in last_bwd if op.name.endswith(".wgrad")]),
    )


def overlapped_s(method: str, comm_s: float, gemm_s: float, tp: int, sm_count: int) -> float:
    """T: the collective (standalone comm_s) and the GEMM beside it (gemm_s) run together by
    `method` on a GPU of sm_count SMs (module doc)."""
    c, g = comm_s, gemm_s
    if method == RING:
        steps = max(tp - 1, 1)
        return g / tp + steps * max(g / tp, c / steps)
    if method == PIPELINE:
        n = PIPELINE_SPLITS
        chunk = g / n * sm_count / (sm_count - PIPELINE_SMS)
        return chunk + (n - 1) * max(chunk, c / n) + c / n
    if method == BULK:
        return max(c, g + c * BULK_SMS / sm_count)
    raise ValueError(f"unknown overlap method {method!r}")


def exposed_s(method: str, comm_s: float, gemm_s: float, tp: int, sm_count: int) -> float:
    """What the overlap leaves of the collective: T - g (module doc)."""
    return overlapped_s(method, comm_s, gemm_s, tp, sm_count) - gemm_s
