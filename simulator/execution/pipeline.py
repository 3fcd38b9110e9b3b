"""Pipeline schedules: the order in which one stage runs the forward and backward passes of its
model chunks over the micro-batches of a step (Narayanan et al. 2021, Sec 2.2).

A pass is (forward?, micro-batch, model chunk). Model chunk g of pp x v chunks lives on stage
g % pp as its virtual chunk g // pp (Megatron's interleaved assignment); with v = 1 chunk g is
stage g. Bubbles are not a formula here: they come out of the engine running these orders
with the point-to-point dependencies between stages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from simulator.spec.specs import Scenario


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


def one_f_one_b(stage: int, pp: int, m: int, extra_warmup: int = 0) -> list[Pass]:
    """1F1B / PipeDream-Flush (Narayanan et al. 2021, Sec 2.2.1; Megatron
    forward_backward_pipelining_without_interleaving): pp - stage - 1 warm-up forwards, then one
    forward and one backward alternately, then the remaining backwards. `extra_warmup` more
    forwards first (combined 1F1B: each steady forward then pairs with an earlier micro-batch's
    backward, see COMBINED)."""
    warmup = min(pp - stage - 1 + extra_warmup, m)
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


# Combined 1F1B (Megatron-Core --overlap-moe-expert-parallel-comm, training.moe.overlap 1f1b;
# DeepSeek-V3's DualPipe pairs chunks the same way, arXiv 2412.19437 Sec 3.2.1): in the steady
# state a forward pass and the next backward pass, of another micro-batch, run as one merged
# pass whose expert all-to-alls hide behind the other's kernels. With plain 1F1B the last
# stage's forward and backward would be of the same micro-batch, so one more warm-up forward
# (one more micro-batch's activations in flight) makes the pairs.
COMBINED_EXTRA_WARMUP = 1


def passes(
    schedule: str, stage: int, pp: int, m: int, v: int = 1, combined: bool = False
) -> list[Pass]:
    """One stage's passes in the order its compute stream runs them (`combined`: the combined
    1F1B order, see COMBINED_EXTRA_WARMUP)."""
    if schedule == "gpipe":
        return gpipe(stage, pp, m)
    if schedule == "1f1b":
        return one_f_one_b(stage, pp, m, COMBINED_EXTRA_WARMUP if combined else 0)
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


def merged(p: Pass, q: Pass | None) -> bool:
    """Whether a combined schedule runs forward `p` and the backward `q` after it as one pass:
    of different micro-batches only (a backward needs its own forward done)."""
    return q is not None and p.forward and not q.forward and p.micro_batch != q.micro_batch


def stage_order(scenario: Scenario, stage: int) -> tuple[Pass, ...]:
    """The stage's passes in order: grad_accum_steps micro-batches per step through each of its
    chunks, forward and backward, in the pipeline schedule's order (combined 1F1B where MoE
    training overlaps its all-to-alls that way). The schedule and the memory model share it."""
    t = scenario.training
    par = t.parallel
    return tuple(
        passes(
            par.pipeline.schedule,
            stage,
            par.pp,
            t.grad_accum_steps,
            par.pipeline.virtual_stages,
            combined=t.moe.overlap == "1f1b",
        )
    )
