"""The building blocks of a layer's operator graph: kernels (`Op`), the collectives a parallel
dimension inserts (`Comm`) and the sub-layers that carry both (`Segment`), pure functions.

* Bytes are ints; `e` / `dtype_bytes` is the element size of activations (2 for bf16/fp16).
* `simulator.model.ops` re-exports everything here; the layer builders live there and in
  `ops_attention` / `ops_moe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from simulator.model.architecture import STACKS, _check_int

# Rough FLOPs per element of the memory-bound ops; excluded from model FLOPs, as in the
# llm-foundry benchmarking README ("All FLOP calculations exclude ... normalization,
# activation, and residuals"). Only their bytes matter for timing. "copy" (the MoE token
# permutations: an index gather / scatter) does no arithmetic.
_EW_FLOPS = {
    "norm": 5.0,
    "softmax": 5.0,
    "dropout": 1.0,
    "residual": 1.0,
    "act": 8.0,
    "ce": 5.0,
    "rope": 3.0,  # two products and a sum per element (model/kernels.py)
    "copy": 0.0,
}

COMM_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "ring_exchange")
# ep_node / ep_local: the expert-parallel group's ranks across hosts (one per host, same local
# index) and within a host, for a dispatcher that forwards over NVLink (ops_moe.Dispatch);
# ep_etp: the expert tensor- and expert-parallel ranks together (Megatron-Core's tp_ep group,
# the allgather dispatcher's).
COMM_DIMS = ("tp", "cp", "ep", "etp", "ep_node", "ep_local", "ep_etp")


class AttnShape(NamedTuple):
    """A fused attention kernel call's shape, as attention benchmarks vary it: queries and keys
    per head, causal masking, and whether it is the backward kernel."""

    s_q: int
    s_kv: int
    causal: bool
    backward: bool = False


@dataclass(frozen=True)
class Op:
    """One forward (or backward) kernel of a layer.

    kind "matmul": gemm = (m, n, k), flops = 2*m*n*k*batch (batch = b*heads for attention, the
    local experts for a grouped expert GEMM). kind "attention": one fused flash-attention
    kernel, `attn` its shape. kind "memory": element-wise / norm / softmax / reduction /
    permutation ops, whose time is bytes_moved (reads + writes) over bandwidth.
    backward_bytes: a memory op's backward bytes where they are not twice its forward's (the
    loss, model/kernels.py).
    """

    name: str
    kind: str
    flops: float
    bytes_moved: int
    gemm: tuple[int, int, int] | None = None
    batch: int = 1
    backward_bytes: int | None = None
    attn: AttnShape | None = None


@dataclass(frozen=True)
class Comm:
    """One collective a parallel dimension inserts into a block, on one rank.

    op: all_reduce | all_gather | reduce_scatter | all_to_all | ring_exchange.
    dim: the mesh dimension whose group runs it: tp | cp | ep | etp.
    size_bytes, nccl-tests convention (nccl-tests doc/PERFORMANCE.md): all_gather's output,
    reduce_scatter's input, all_reduce's buffer, all_to_all's whole send buffer per rank;
    ring_exchange: one step's block (each rank sends one block to its ring successor and
    receives one from its predecessor, `steps` times).
    overlapped: runs beside the segment's compute (ring attention) instead of between kernels.
    with_previous: runs at the same time as the collective before it (the two hops of a
    pipelined dispatch, ops_moe.Dispatch); the next kernels wait for both.
    algorithm: the collective algorithm that runs it ("" the step's: NCCL's choice or
    training.collective_algorithm); "deepep" for the deepep dispatcher's hops.
    """

    op: str
    dim: str
    size_bytes: int
    steps: int = 1
    overlapped: bool = False
    with_previous: bool = False
    algorithm: str = ""

    def __post_init__(self) -> None:
        if self.op not in COMM_OPS:
            raise ValueError(f"op: {self.op!r} is not one of {COMM_OPS}")
        if self.dim not in COMM_DIMS:
            raise ValueError(f"dim: {self.dim!r} is not one of {COMM_DIMS}")
        _check_int("size_bytes", self.size_bytes, minimum=0)
        _check_int("steps", self.steps, minimum=1)


Comms = tuple[Comm, ...]


@dataclass(frozen=True, kw_only=True)
class Segment:
    """A part of a block between communication points: the attention (or cross-attention)
    sub-layer, the MLP, or a part of them (MoE routing, experts, ...).

    before / after: the forward collectives issued before / after the segment's ops (Megatron's
    f/g operators of tensor parallelism sit at a sub-layer's two ends). bwd_before /
    bwd_after: the backward's, issued before / after the segment's backward ops; the backward
    visits segments in reverse order. A collective with `overlapped` runs beside the segment's
    compute instead (ring attention's K/V exchange).
    userbuffers: whether Transformer Engine's userbuffers may overlap its tensor-parallel
    collectives (training.parallelism.tp_comm_overlap); Megatron-Core turns them off in the
    shared experts it runs beside the expert dispatch (shared_experts.py: ub_overlap_* False).
    """

    name: str
    ops: tuple[Op, ...]
    before: Comms = ()
    after: Comms = ()
    bwd_before: Comms = ()
    bwd_after: Comms = ()
    userbuffers: bool = True


def _matmul(name: str, m: int, n: int, k: int, e: int, batch: int = 1) -> Op:
    # C[m,n] = A[m,k] @ B[k,n]: 2*m*n*k FLOPs; reads A and B, writes C.
    return Op(
        name,
        "matmul",
        2.0 * m * n * k * batch,
        (m * k + k * n + m * n) * e * batch,
        (m, n, k),
        batch,
    )


def _mem(name: str, kind: str, elements: int, bytes_moved: int) -> Op:
    return Op(name, "memory", _EW_FLOPS[kind] * elements, bytes_moved)


def _residual(name: str, t: int, h: int, e: int, dropout: bool) -> Op:
    # dropout(x) + residual: read two t x h tensors, write one, plus a 1-byte mask.
    return _mem(name, "residual", t * h, 3 * t * h * e + (t * h if dropout else 0))


def _norm(name: str, t: int, h: int, e: int) -> Op:
    # A LayerNorm / RMSNorm reads its t x h input and writes its output.
    return _mem(name, "norm", t * h, 2 * t * h * e)


def tp_in(size: int, tp: int, sp: bool) -> tuple[Comms, Comms]:
    """The (forward before, backward after) collectives at the input of a column-parallel
    sub-layer (Megatron's f operator, Shoeybi et al. 2019 Sec 3: identity forward, all-reduce
    of the input gradient backward; with sequence parallelism, Korthikanti et al. 2022 Sec
    4.2.2: all-gather forward, reduce-scatter backward). tp == 1: none."""
    if tp == 1:
        return (), ()
    if sp:
        return (Comm("all_gather", "tp", size),), (Comm("reduce_scatter", "tp", size),)
    return (), (Comm("all_reduce", "tp", size),)


def tp_out(size: int, tp: int, sp: bool) -> tuple[Comms, Comms]:
    """The (forward after, backward before) collectives at the output of a row-parallel
    sub-layer (the g operator: all-reduce forward, identity backward; with sequence
    parallelism reduce-scatter forward, all-gather backward). tp == 1: none."""
    if tp == 1:
        return (), ()
    if sp:
        return (Comm("reduce_scatter", "tp", size),), (Comm("all_gather", "tp", size),)
    return (Comm("all_reduce", "tp", size),), ()


def tp_segment(name: str, ops: list[Op], size: int, tp: int, sp: bool) -> Segment:
    """A whole tensor-parallel sub-layer: f at its input, g at its output, `size` bytes each."""
    before, bwd_after = tp_in(size, tp, sp)
    after, bwd_before = tp_out(size, tp, sp)
    return Segment(
        name=name,
        ops=tuple(ops),
        before=before,
        after=after,
        bwd_before=bwd_before,
        bwd_after=bwd_after,
    )


def _check_ops_args(seq_len: int, micro_batch: int, stack: str, dtype_bytes: int) -> None:
    _check_int("seq_len", seq_len, minimum=1)
    _check_int("micro_batch", micro_batch, minimum=1)
    _check_int("dtype_bytes", dtype_bytes, minimum=1)
    if stack not in STACKS:
        raise ValueError(f"stack: {stack!r} is not one of {STACKS}")


def local_seq(seq_len: int, cp: int) -> int:
    """The sequence one context-parallel rank holds: seq_len / cp. Megatron-Core splits the
    sequence into 2 x cp chunks (rank r keeps chunks r and 2cp-1-r, to balance causal work),
    so seq_len must divide by 2 x cp (get_batch_on_this_cp_rank views the sequence as 2 x cp
    equal chunks; Transformer Engine context_parallel.py asserts "Sequence length per GPU needs
    to be divisible by 2!"); cp == 1 takes any length."""
    _check_int("cp", cp, minimum=1)
    if cp > 1 and seq_len % (2 * cp):
        raise ValueError(f"seq_len: {seq_len} is not divisible by 2 x cp = {2 * cp}")
    return seq_len // cp
