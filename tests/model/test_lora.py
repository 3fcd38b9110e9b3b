"""LoRA adapter counts and quantized base bytes (simulator/model/lora.py, precision.py), by hand."""

from simulator.model import lora
from simulator.model.precision import quantization_constant_bits, quantized_weight_bytes
from simulator.model.presets import get_preset


def test_llama2_7b_qlora_r64_adapter_count_by_hand():
    # QLoRA's setting: r = 64 on all 7 Linears of each of the 32 blocks; A: r x in, B: out x r.
    r, h, f, layers = 64, 4096, 11008, 32
    qkvo = 4 * r * (h + h)  # 2,097,152
    gate_up = 2 * r * (h + f)  # 1,933,312
    down = r * (f + h)  # 966,656
    assert (qkvo, gate_up, down) == (2_097_152, 1_933_312, 966_656)
    assert (qkvo + gate_up + down) * layers == 159_907_840
    arch = get_preset("llama2-7b")
    assert lora.adapter_params(arch, 64, "all-linear") * layers == 159_907_840
    assert lora.adapter_params(arch, 8, ("q_proj", "v_proj")) == 2 * 8 * (h + h)


def test_quantized_bytes_by_hand():
    # nf4: 0.5 B/param + one fp32 absmax per 64 (0.5 bits); double quantization: one 8-bit
    # absmax per 64 and one fp32 per 256 blocks (QLoRA Sec 3: 0.127 bits per parameter).
    rows, cols = 4096, 4096
    n = rows * cols
    assert quantized_weight_bytes("nf4", rows, cols, False) == n // 2 + 4 * (n // 64)
    assert quantized_weight_bytes("nf4", rows, cols, True) == n // 2 + n // 64 + 4 * (
        n // 64 // 256
    )
    assert round(quantization_constant_bits("nf4", True), 3) == 0.127
    assert quantization_constant_bits("nf4", False) == 0.5
    # LLM.int8(): int8 weight + an fp32 absmax per output row (bitsandbytes Int8Params.SCB).
    assert quantized_weight_bytes("int8", rows, cols, False) == n + 4 * rows
    assert quantized_weight_bytes("bf16", rows, cols, False) == 2 * n


def test_llama2_7b_frozen_block_at_nf4_double_quant():
    arch = get_preset("llama2-7b")
    h, f = 4096, 11008
    linears = 4 * h * h + 3 * h * f  # 202,375,168 weights, quantized
    norms = 2 * h  # RMSNorm weights stay 16-bit
    block = linears + norms
    blocks64 = 4 * (h * h // 64) + 3 * (h * f // 64)
    want = linears // 2 + blocks64 + 4 * (4 * (h * h // 64 // 256) + 3 * (h * f // 64 // 256))
    assert lora.frozen_block_bytes(arch, block, "nf4", True) == want + 2 * norms
    # ~0.516 bytes per quantized weight: 4 bits + 0.127 bits.
    assert abs(want / linears - (4 + 0.127) / 8) < 1e-3


def test_tensor_parallel_shapes_and_adapter_split_by_hand():
    """Under tp each Linear is split as Megatron splits it (q, k, v, gate, up: the output;
    o, down: the input) and each adapter as NeMo's ParallelLinearAdapter splits it: A r/tp x
    in (column-parallel base) or r x in/tp (row-parallel), B out/tp x r."""
    arch = get_preset("llama2-7b")
    h, f = 4096, 11008
    two = lora.block_linears(arch, tp=2)
    assert two["q_proj"] == (h // 2, h) and two["gate_proj"] == (f // 2, h)
    assert two["o_proj"] == (h, h // 2) and two["down_proj"] == (h, f // 2)
    assert lora.adapter_shapes("q_proj", h, h, 16, 2) == ((8, h), (h // 2, 16))
    assert lora.adapter_shapes("o_proj", h, h, 16, 2) == ((16, h // 2), (h // 2, 16))
    # Llama 2 70B (h 8192, 8 KV heads of 128: k and v are 1024 wide), r 16 on q, k, v, o, tp 4:
    # q 4 x 8192 + 2048 x 16, k and v 4 x 8192 + 256 x 16 each, o 16 x 2048 + 2048 x 16.
    big = get_preset("llama2-70b")
    per_rank = (32_768 + 32_768) + 2 * (32_768 + 4_096) + (32_768 + 32_768)
    targets = ("q_proj", "k_proj", "v_proj", "o_proj")
    assert lora.adapter_params(big, 16, targets, tp=4) == per_rank == 204_800
    # the whole adapter is r x (in + out) per Linear: 16 x (16,384 + 2 x 9,216 + 16,384)
    assert lora.adapter_params(big, 16, targets) == 4 * per_rank == 819_200
