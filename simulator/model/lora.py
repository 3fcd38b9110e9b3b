"""LoRA adapters and frozen base weights of a fine-tuned dense block, pure functions.

LoRA (Hu et al. 2021, Sec 4.1): a frozen Linear W (out x in) gains a trainable update B A with
A (r x in) and B (out x r), so each targeted Linear adds r x (in + out) parameters; the output
is W x + (alpha / r) B A x. Target names are Hugging Face PEFT's `target_modules` (the last
component of the module name, e.g. q_proj); "all-linear" (PEFT's shorthand) targets every
Linear of the blocks (never the output head). Shapes are read from the same nn.Module tensors
simulator/model/tensors.py lists, so the adapter count and the parameter count cannot disagree.

QLoRA (Dettmers et al. 2023) stores the frozen base in 4-bit NormalFloat (or LLM.int8()'s int8,
Dettmers et al. 2022); bitsandbytes replaces every Linear of the blocks (transformers keeps only
the output head, `llm_int8_skip_modules`, in 16 bits), whatever the adapters target. Norms,
biases and embeddings stay 16-bit (model/precision.py quantized_weight_bytes for the bytes).

Under tensor parallelism (a 16-bit base only) each adapter is split like its base Linear, as
NeMo's ParallelLinearAdapter does for Megatron-Core (nemo/collections/nlp/modules/common/
megatron/adapters/parallel_adapters.py): for a column-parallel base (q, k, v, gate, up: Megatron's
linear_qkv and linear_fc1) A is a ColumnParallelLinear over r (r/tp x in, its output gathered)
and B a ColumnParallelLinear (out/tp x r); for a row-parallel base (o, down: linear_proj,
linear_fc2) A is a RowParallelLinear (r x in/tp, its output all-reduced) and B a
ColumnParallelLinear (out/tp x r). Each rank holds r x (in + out) / tp of each adapter.
"""

from __future__ import annotations

from typing import Final

from simulator.model.architecture import Architecture
from simulator.model.precision import quantized_weight_bytes
from simulator.model.tensors import block_modules

ALL_LINEAR: Final = "all-linear"
METHODS = ("full", "lora", "qlora")
# Megatron's RowParallelLinear modules (linear_proj, linear_fc2): the input is split over the
# tensor-parallel ranks; every other Linear of a block is column-parallel (the output split).
ROW_PARALLEL: Final = frozenset(("o_proj", "down_proj"))


def block_linears(arch: Architecture, tp: int = 1) -> dict[str, tuple[int, int]]:
    """A dense decoder block's Linear modules by PEFT target name: (out_features, in_features)
    on one of tp tensor-parallel ranks (row-parallel: in / tp, column-parallel: out / tp), in
    forward order."""
    out: dict[str, tuple[int, int]] = {}
    for m in block_modules(arch):
        weight = next((t for t in m.tensors if t.name == f"{m.name}.weight"), None)
        if weight is None or weight.numel <= weight.rows or m.name.endswith("norm"):
            continue  # containers, norms, activations own no Linear weight
        name = m.name.rsplit(".", 1)[-1]
        rows, cols = weight.rows, weight.cols
        out[name] = (rows, cols // tp) if name in ROW_PARALLEL else (rows // tp, cols)
    return out


def adapter_shapes(
    name: str, out: int, inp: int, rank: int, tp: int = 1
) -> tuple[tuple[int, int], tuple[int, int]]:
    """One rank's (A, B) weight shapes, (rows, cols), of the adapter on the (out x inp) Linear
    `name` (full shapes): A r/tp x in or r x in/tp, B out/tp x r (module doc)."""
    if name in ROW_PARALLEL:
        return (rank, inp // tp), (out // tp, rank)
    return (-(-rank // tp), inp), (out // tp, rank)


def targets(arch: Architecture, target_modules: tuple[str, ...] | str) -> tuple[str, ...]:
    """The targeted Linear names, in forward order ("all-linear": every Linear of the block)."""
    names = block_linears(arch)
    if target_modules == ALL_LINEAR:
        return tuple(names)
    return tuple(n for n in names if n in target_modules)


def adapter_params(
    arch: Architecture, rank: int, target_modules: tuple[str, ...] | str, tp: int = 1
) -> int:
    """One block's LoRA parameters on one of tp ranks: r x (in + out) per targeted Linear (A:
    r x in, B: out x r), split over tp as the base Linear is (adapter_shapes)."""
    shapes = block_linears(arch)
    total = 0
    for n in targets(arch, target_modules):
        (ar, ac), (br, bc) = adapter_shapes(n, *shapes[n], rank, tp)
        total += ar * ac + br * bc
    return total


def adapter_width(arch: Architecture, target_modules: tuple[str, ...] | str) -> int:
    """Targeted Linears per block: each keeps one r-wide intermediate (x A) for backward."""
    return len(targets(arch, target_modules))


def linear_weight_params(arch: Architecture) -> int:
    """Elements of one block's Linear weights (what bitsandbytes quantizes)."""
    return sum(o * i for o, i in block_linears(arch).values())


def frozen_block_bytes(
    arch: Architecture, block_params: int, base_weights: str, double_quant: bool
) -> int:
    """Bytes of one block's frozen base: its Linear weights as `base_weights` (constants
    included), everything else (norms, biases) at 2 bytes."""
    linears = block_linears(arch)
    quantized = sum(
        quantized_weight_bytes(base_weights, o, i, double_quant) for o, i in linears.values()
    )
    return quantized + 2 * (block_params - linear_weight_params(arch))


def sharded_frozen_block_bytes(
    arch: Architecture, block_params: int, base_weights: str, double_quant: bool
) -> tuple[int, int]:
    """(bytes FSDP shards, bytes every rank keeps) of a block's frozen base. FSDP-QLoRA
    (Answer.AI, bnb_4bit_quant_storage) flattens the packed weights with the 16-bit norms and
    biases into the FlatParameter; the quantization constants live in each weight's QuantState,
    which is not a parameter, so every rank keeps them whole."""
    total = frozen_block_bytes(arch, block_params, base_weights, double_quant)
    if base_weights == "bf16":
        return total, 0
    linears = block_linears(arch).values()
    packed = sum(o * i if base_weights == "int8" else -(-(o * i) // 2) for o, i in linears)
    packed += 2 * (block_params - linear_weight_params(arch))
    return packed, total - packed


def largest_linear(arch: Architecture) -> int:
    """Elements of the block's largest Linear weight (the dequantization buffer's size)."""
    return max(o * i for o, i in block_linears(arch).values())
