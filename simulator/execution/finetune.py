"""LoRA / QLoRA fine-tuning (training.finetune) in the memory model and the schedule.

Memory (per GPU; the adapter math in simulator/model/lora.py):
- The frozen base has no gradients and no optimizer states (Hu et al. 2021, Sec 4.2: "we do
  not need to calculate the gradients or maintain the optimizer states for most parameters").
  Its Linear weights are stored as base_weights (model/precision.py quantized_weight_bytes:
  bf16 2 B; LLM.int8() 1 B + an fp32 absmax per row; nf4 0.5 B + an fp32 absmax per 64, or
  with Double Quantization 0.127 bits per parameter, QLoRA Sec 3); norms, biases, embeddings
  and the output head stay 16-bit.
- The adapters are the trainable parameters: 16-bit weights and gradients and the optimizer
  states of the precision (K bytes per parameter, the ZeRO accounting of execution/memory.py),
  sharded by the data-parallel strategy like any trainable parameters: ZeRO-1 shards their
  optimizer states, ZeRO-2 also their gradients, ZeRO-3 / FSDP all of them. (PEFT keeps
  adapters in fp32 under autocast: 4 + 4 + 8 bytes, the same 16 bytes per parameter.)
- ZeRO-3 / FSDP shards every parameter, the frozen base too (FSDP-QLoRA, Answer.AI 2024: the
  packed 4-bit weights are flattened as bnb_4bit_quant_storage); the quantization constants
  live in each weight's QuantState, not a parameter, so every rank keeps them whole. ZeRO-1/2
  and DDP replicate the base. Under FSDP the blocks' gathered base (the current block and the
  prefetched one; every block without reshard_after_forward) and the unsharded root are
  counted as buffers held through forward and backward.
- Dequantization buffer: bitsandbytes dequantizes a quantized weight to 16 bits for each
  GEMM (forward, and again for the backward's dgrad) and frees it after; the largest Linear's
  16-bit copy is counted as a buffer held through forward and backward.
- Activations: each targeted Linear keeps its r-wide intermediate x A (b x s x r x 2 B) for
  B's weight gradient; the adapter's input is the base GEMM's, already counted. The base's
  activations are counted as for full training (a conservative bound: autograd saves a frozen
  GEMM's input only where another op needs it). LoRA dropout is PEFT's default, 0 (none).
- Paged optimizer (QLoRA Sec 3, paged AdamW): its states move to CPU memory only when the GPU
  runs out, so the steady-state peak is unchanged; it is modelled as no change, and said so.

Time (the schedule):
- Backward skips the frozen GEMMs' weight gradients and keeps their input gradients (model/
  ops.py backward_ops frozen); the frozen embedding has no backward.
- Each targeted Linear adds x A (t x r x in) and (x A) B (t x out x r) GEMMs with their
  backward, and PEFT's scale-and-add (read the base output and the update, write the sum).
- A quantized base adds one dequantization kernel per Linear per forward and again per
  backward: memory-bound, reading the stored bytes and writing 2 bytes per parameter, timed on
  the compute model's memory-bound path.
- Data-parallel gradient communication and the optimizer step cover the adapters only (the
  schedule's units carry their trainable parameters); FSDP still all-gathers the frozen base,
  at its storage bytes (strategies/finetune_fsdp.py).

Tensor and context parallelism (a 16-bit base, method lora): the base's GEMMs, activations and
tensor-parallel collectives are those of training; each adapter is split like its base Linear
(model/lora.py adapter_shapes: NeMo's ParallelLinearAdapter), so a rank holds and computes 1/tp
of it, on the b x s/cp tokens the base GEMM sees (sequence-parallel inputs are gathered before a
column-parallel GEMM). The adapters' own collectives (the gather or all-reduce of the t x r
intermediate, and under sequence parallelism the exchange of a row-parallel adapter's update)
are not modelled: they move t x r and t x out / tp elements per Linear against the base's
t x h.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from simulator.execution import layout
from simulator.model import lora
from simulator.model.architecture import Architecture
from simulator.model.ops_common import Op, Segment, _matmul, _mem
from simulator.model.precision import quantized_weight_bytes
from simulator.spec.specs import FinetuneSpec, Scenario

if TYPE_CHECKING:  # strategies import this module (strategies/common.py)
    from simulator.execution.strategies.base import StateBytes, Strategy

# The frozen GEMMs and lookups of a dense decoder (model/ops_attention.py, ops_moe.py, ops.py).
FROZEN_OPS = frozenset(
    ("qkv_proj", "attn_out_proj", "mlp_gate", "mlp_up", "mlp_down", "logits", "embedding")
)
# The op whose GEMM each Linear's weight runs in (q, k and v are one fused GEMM).
LINEAR_OP = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "o_proj": "attn_out_proj",
    "gate_proj": "mlp_gate",
    "up_proj": "mlp_up",
    "down_proj": "mlp_down",
}


def active(s: Scenario) -> bool:
    """LoRA adapters on a frozen base (method lora or qlora)."""
    return s.training.finetune.adapters


def _arch(lay: layout.Layout) -> Architecture:
    return lay.arch


def block_adapters(s: Scenario, lay: layout.Layout) -> int:
    """One block's adapter parameters on one tensor-parallel rank."""
    f = s.training.finetune
    return lora.adapter_params(_arch(lay), f.rank, f.target_modules, s.training.parallel.tp)


def _tokens(s: Scenario) -> int:
    """Tokens of one micro-batch a rank's GEMMs see: b x s / cp (sequence-parallel inputs are
    gathered before the column-parallel GEMMs)."""
    t = s.training
    return t.micro_batch_size * (t.seq_len // t.parallel.cp)


def trainable_layout(s: Scenario, lay: layout.Layout) -> layout.Layout:
    """The stage's layout with only its trainable parameters: each block's adapters; the
    embedding and head are frozen. What the strategies' gradient buffers and the schedule see."""
    per_block = block_adapters(s, lay)
    chunks = tuple(
        dataclasses.replace(
            c, blocks=tuple(dataclasses.replace(b, params=per_block) for b in c.blocks)
        )
        for c in lay.chunks
    )
    return dataclasses.replace(lay, chunks=chunks, embedding_params=0, head_params=0)


def frozen_bytes(s: Scenario, lay: layout.Layout) -> tuple[int, int]:
    """The stage's frozen base: (bytes FSDP shards, bytes every rank keeps whole)."""
    f = s.training.finetune
    sharded = replicated = 0
    for b in lay.blocks:
        a, r = lora.sharded_frozen_block_bytes(_arch(lay), b.params, f.base_weights, f.double_quant)
        sharded, replicated = sharded + a, replicated + r
    return sharded + 2 * lay.root_params, replicated


def _sharded_base(strategy: Strategy, s: Scenario) -> bool:
    return strategy.zero_stage >= 3 and strategy.shard_degree(s) > 1


def states(s: Scenario, lay: layout.Layout, k: float, strategy: Strategy) -> StateBytes:
    """The rank's model states: the adapters' (sharded as the strategy shards trainable
    parameters) plus the frozen base (sharded by ZeRO-3 / FSDP only)."""
    p = s.training.precision
    n = strategy.shard_degree(s)
    trained = strategy.state_bytes(
        trainable_layout(s, lay).params, n, p.weight_bytes, p.grad_bytes, k
    )
    sharded, replicated = frozen_bytes(s, lay)
    base = (math.ceil(sharded / n) if _sharded_base(strategy, s) else sharded) + replicated
    return dataclasses.replace(trained, params=trained.params + base)


def dequant_buffer_bytes(s: Scenario, lay: layout.Layout) -> int:
    """The largest Linear weight dequantized to 16 bits while its GEMM runs (quantized base)."""
    if s.training.finetune.base_weights == "bf16" or not lay.blocks:
        return 0
    return 2 * lora.largest_linear(_arch(lay))


def extra_static_bytes(s: Scenario, lay: layout.Layout, strategy: Strategy) -> int:
    """Buffers of fine-tuning held through forward and backward: the dequantization buffer and,
    under a sharded ZeRO-3 / FSDP, the gathered frozen base (the root unit unsharded, and the
    blocks gathered at once: this one and the prefetched one, or all of them without
    reshard_after_forward)."""
    extra = dequant_buffer_bytes(s, lay)
    if not _sharded_base(strategy, s) or not lay.blocks:
        return extra
    f, z, n = s.training.finetune, s.training.sharding, strategy.shard_degree(s)
    per_block = max(
        math.ceil(
            lora.sharded_frozen_block_bytes(_arch(lay), b.params, f.base_weights, f.double_quant)[0]
            / n
        )
        * n
        for b in lay.blocks
    )
    at_once = (
        len(lay.blocks)
        if not z.reshard_after_forward
        else min(len(lay.blocks), 2 if z.backward_prefetch else 1)
    )
    return extra + 2 * lay.root_params + at_once * per_block


def activations(s: Scenario, lay: layout.Layout) -> layout.Activations:
    """The stage's activations with each block's adapter intermediates (b x s/cp x r per
    targeted Linear, whole on every tensor-parallel rank: gathered or all-reduced): kept
    through forward, or recomputed in the block's backward under full checkpointing."""
    acts = layout.stage_activations(s, lay)
    t, f = s.training, s.training.finetune
    extra = (
        _tokens(s)
        * f.rank
        * t.precision.activation_bytes
        * lora.adapter_width(_arch(lay), f.target_modules)
    )
    if t.activation_checkpointing == "full":
        return dataclasses.replace(acts, working=tuple(w + extra for w in acts.working))
    return dataclasses.replace(acts, blocks=tuple(b + extra for b in acts.blocks))


# ---- the kernels


def dequant_op(name: str, out: int, inp: int, f: FinetuneSpec) -> Op:
    """Dequantize one (out x in) weight to 16 bits: read its stored bytes, write 2 per element
    (memory-bound; one lookup-and-scale per element)."""
    stored = quantized_weight_bytes(f.base_weights, out, inp, f.double_quant)
    return Op(f"{name}.dequant", "memory", float(out * inp), stored + 2 * out * inp)


def adapter_ops(
    name: str, t: int, out: int, inp: int, r: int, e: int, tp: int = 1, sp: bool = False
) -> list[Op]:
    """PEFT's LoRA Linear update on one of tp ranks, (out x inp) the full Linear: x A (t x r x
    in), (x A) B (t x out x r), each split as lora.adapter_shapes splits A and B, then scale and
    add to the rank's base output (two element-wise kernels: read and write it; read 2, write
    1): t x out/tp, or a row-parallel Linear's reduced output (t/tp x out under sequence
    parallelism, t x out without)."""
    (a_rows, a_cols), (b_rows, b_cols) = lora.adapter_shapes(name, out, inp, r, tp)
    if name in lora.ROW_PARALLEL:
        added = (t // tp if sp else t) * out
    else:
        added = t * b_rows
    return [
        _matmul(f"{name}.lora_A", t, a_rows, a_cols, e),
        _matmul(f"{name}.lora_B", t, b_rows, b_cols, e),
        _mem(f"{name}.lora_add", "residual", 2 * added, 5 * added * e),
    ]


def segments(s: Scenario, arch: Architecture, segs: list[Segment]) -> list[Segment]:
    """A dense block's segments with LoRA: each quantized Linear's dequantization before its
    GEMM, each targeted Linear's adapter GEMMs after it."""
    t, f = s.training, s.training.finetune
    tokens, e = _tokens(s), t.precision.activation_bytes
    par = t.parallel
    shapes = lora.block_linears(arch)
    targeted = set(lora.targets(arch, f.target_modules))
    by_op: dict[str, list[str]] = {}
    for name in shapes:
        by_op.setdefault(LINEAR_OP[name], []).append(name)
    out = []
    for g in segs:
        ops: list[Op] = []
        for op in g.ops:
            names = by_op.get(op.name, [])
            if f.base_weights != "bf16":
                ops += [dequant_op(n, *shapes[n], f) for n in names]
            ops.append(op)
            for n in names:
                if n in targeted:
                    ops += adapter_ops(
                        n, tokens, *shapes[n], f.rank, e, par.tp, par.sequence_parallel
                    )
        out.append(dataclasses.replace(g, ops=tuple(ops)))
    return out


def rerun_ops(segs: list[Segment]) -> frozenset[str]:
    """The dequantization kernels, which run again in the backward (for the dgrad)."""
    return frozenset(op.name for g in segs for op in g.ops if op.name.endswith(".dequant"))
