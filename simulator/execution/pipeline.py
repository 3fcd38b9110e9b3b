"""Pipeline schedules: the order in which one stage runs the forward and backward passes of its
model chunks over the micro-batches of a step (Narayanan et al. 2021, Sec 2.2).

A pass is (forward?, micro-batch, model chunk). Model chunk g of pp x v chunks lives on stage
g % pp as its virtual chunk g // pp (Megatron's interleaved assignment); with v = 1 chunk g is
stage g. Bubbles are not a formula here: they come out of the engine running these orders
with the point-to-point dependencies between stages.
"""

from __future__ import annotations

from typing import NamedTuple


class Pass(NamedTuple):
    """One pass of a schedule (a named tuple: a step of 100k GPUs' stages makes millions)."""

    forward: bool
    micro_batch: int
    chunk: int  # global model chunk g (0 .. pp*v - 1)

    @property
    def kind(self) -> str:
        return "forward" if self.forward else "backward"


def stage_of_chunk(chunk: int, pp: int) -> int:
    return chunk % pp


def stage_chunks(stage: int, pp: int, v: int) -> list[int]:
    """The global model chunks a stage holds, in virtual order."""
    return [k * pp + stage for k in range(v)]


def gpipe(stage: int, pp: int, m: int) -> list[Pass]:
    """GPipe (Huang et al. 2019): every forward, then every backward."""
    return [Pass(forward=True, micro_batch=j, chunk=stage) for j in range(m)] + [
        Pass(forward=False, micro_batch=j, chunk=stage) for j in range(m)
    ]


def one_f_one_b(stage: int, pp: int, m: int) -> list[Pass]:
    """1F1B / PipeDream-Flush (Narayanan et al. 2021, Sec 2.2.1; Megatron
    forward_backward_pipelining_without_interleaving): pp - stage - 1 warm-up forwards, then one
    forward and one backward alternately, then the remaining backwards."""
    warmup = min(pp - stage - 1, m)
    order = [Pass(forward=True, micro_batch=j, chunk=stage) for j in range(warmup)]
    for j in range(m - warmup):
        order.append(Pass(forward=True, micro_batch=warmup + j, chunk=stage))
        order.append(Pass(forward=False, micro_batch=j, chunk=stage))
    order += [Pass(forward=False, micro_batch=j, chunk=stage) for j in range(m - warmup, m)]
    return order


def interleaved(stage: int, pp: int, m: int, v: int) -> list[Pass]:
    """Interleaved 1F1B (Narayanan et al. 2021, Sec 2.2.2; Megatron
    forward_backward_pipelining_with_interleaving): virtual micro-batches run in groups of pp
    per model chunk; (pp - stage - 1) x 2 + (v - 1) x pp warm-up forwards (Megatron's count),
    then 1F1B over the virtual micro-batches. Needs m to be a multiple of pp."""
    total = m * v

    def forward(k: int) -> Pass:
        virtual = (k % (pp * v)) // pp
        return Pass(
            forward=True, micro_batch=(k // (pp * v)) * pp + k % pp, chunk=virtual * pp + stage
        )

    def backward(k: int) -> Pass:
        virtual = v - 1 - (k % (pp * v)) // pp
        return Pass(
            forward=False, micro_batch=(k // (pp * v)) * pp + k % pp, chunk=virtual * pp + stage
        )

    warmup = min((pp - stage - 1) * 2 + (v - 1) * pp, total)
    order = [forward(k) for k in range(warmup)]
    for k in range(total - warmup):
        order += [forward(warmup + k), backward(k)]
    order += [backward(k) for k in range(total - warmup, total)]
    return order


SCHEDULES = ("gpipe", "1f1b", "interleaved-1f1b")


def passes(schedule: str, stage: int, pp: int, m: int, v: int = 1) -> list[Pass]:
    """One stage's passes in the order its compute stream runs them."""
    if schedule == "gpipe":
        return gpipe(stage, pp, m)
    if schedule == "1f1b":
        return one_f_one_b(stage, pp, m)
    if schedule == "interleaved-1f1b":
        return interleaved(stage, pp, m, v)
    raise ValueError(f"unknown pipeline schedule {schedule!r}")


def last_backward(order: list[Pass]) -> dict[int, int]:
    """For each chunk, the index in `order` of its last backward pass (where gradients of a
    chunk are final and data-parallel reduction of the last micro-batch happens)."""
    out: dict[int, int] = {}
    for i, p in enumerate(order):
        if not p.forward:
            out[p.chunk] = i
    return out
