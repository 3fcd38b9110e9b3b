"""Attention kernels timed by kernel, sequence length, masking and pass from the published H100
figures (hardware/attention_table.py), worked by hand from the figures' values; the default
kernel per framework and GPU; kernels a GPU has no figures for are refused."""

from __future__ import annotations

import typing

import pytest

from simulator.core.errors import UserError
from simulator.execution.step import attention_kernel, compute_model
from simulator.model.ops import backward_ops
from simulator.model.ops_attention import Widths, core_ops
from simulator.model.ops_common import AttnShape, Op
from simulator.scenario.load import scenario_from_dict
from simulator.scenario.schema import TrainingSection
from simulator.spec.specs import ATTENTION_KERNELS
from simulator.system.compute import ComputeModel
from simulator.system.hardware import get_gpu
from simulator.system.hardware.attention_table import H100_SXM_FA3_PAPER as TABLE
from simulator.system.knobs import with_gpu

H100 = get_gpu("h100-sxm-80gb")
PEAK = 989.4  # H100 SXM5 dense bf16 TFLOP/s


def test_the_kernels_are_the_schemas():
    # One list of kernel names: the scenario key's choices, the table's kernels.
    field = TrainingSection.model_fields["attention_kernel"].annotation
    assert set(typing.get_args(typing.get_args(field)[0])) == set(ATTENTION_KERNELS)
    assert set(TABLE.kernels) == set(ATTENTION_KERNELS)


def test_published_points_by_hand():
    # FlashAttention-3 paper Fig. 5-6, head dim 128, 2k tokens, non-causal: FlashAttention-2
    # forward 362, backward 291 TFLOP/s; cuDNN forward 617, backward 465.
    assert TABLE.efficiency("flash-attention-2", AttnShape(2048, 2048, False)) == pytest.approx(
        362 / PEAK
    )
    assert TABLE.efficiency(
        "flash-attention-2", AttnShape(2048, 2048, False, backward=True)
    ) == pytest.approx(291 / PEAK)
    assert TABLE.efficiency("cudnn", AttnShape(2048, 2048, False)) == pytest.approx(617 / PEAK)


def test_causal_takes_the_published_forward_ratio_for_both_passes():
    # cuDNN at 4k: forward 609 non-causal, 518 causal; backward 499 non-causal, so 499 x 518/609.
    assert TABLE.efficiency("cudnn", AttnShape(4096, 4096, True)) == pytest.approx(518 / PEAK)
    assert TABLE.efficiency("cudnn", AttnShape(4096, 4096, True, backward=True)) == pytest.approx(
        499 * 518 / 609 / PEAK
    )


def test_between_lengths_linear_in_log2_and_held_at_the_ends():
    # sqrt(1024 x 2048) = 2^10.5: halfway between FlashAttention-2's 350 (1k) and 362 (2k).
    assert TABLE.efficiency("flash-attention-2", AttnShape(1024, 2048, False)) == pytest.approx(
        356 / PEAK
    )
    # Below 512 and above 16k the end values hold: FlashAttention-3 forward 467 and 648.
    assert TABLE.efficiency("flash-attention-3", AttnShape(128, 128, False)) == pytest.approx(
        467 / PEAK
    )
    assert TABLE.efficiency("flash-attention-3", AttnShape(8192, 131072, False)) == pytest.approx(
        648 / PEAK
    )


def _core(s: int, causal: bool) -> list[Op]:
    w = Widths(32, 128, 128, 4096, 4096, 4096, 4096)  # 32 heads of 128
    return core_ops("", 1, s, s, w, 2, True, False, causal)


def test_attention_op_time_from_the_table_by_hand():
    (op,) = _core(4096, causal=True)
    assert op.attn == AttnShape(4096, 4096, True)
    cm = ComputeModel(gpu=H100, gemm_dtype="bf16", attention_dtype="bf16", attention_kernel="cudnn")
    eff = H100.efficiency
    # 4 x s^2 x d x heads forward FLOPs, halved by the causal mask; 518 TFLOP/s (cuDNN, 4k causal).
    flops = 4 * 4096 * 4096 * 128 * 32 / 2
    flop_s = flops / (PEAK * 1e12 * 518 / PEAK)
    mem_s = op.bytes_moved / (H100.hbm_bw_bytes_per_s * eff.memory)
    assert flop_s > mem_s
    assert cm.op_time_s(op) == pytest.approx((eff.kernel_launch_s + flop_s) / eff.end_to_end)


def test_the_backward_kernel_is_timed_as_a_backward():
    (op,) = _core(2048, causal=False)
    (bwd,) = backward_ops([op])
    assert bwd.attn == AttnShape(2048, 2048, False, backward=True)
    cm = ComputeModel(gpu=H100, gemm_dtype="bf16", attention_dtype="bf16")
    assert cm.attention_efficiency(bwd) == pytest.approx(291 / PEAK)
    assert cm.attention_efficiency(op) == pytest.approx(362 / PEAK)


def test_a_gpu_without_a_table_keeps_its_single_fraction():
    (op,) = _core(2048, causal=True)
    a100 = get_gpu("a100-80gb")
    cm = ComputeModel(gpu=a100, gemm_dtype="bf16", attention_dtype="bf16")
    assert cm.attention_efficiency(op) == a100.efficiency.attention


def test_a_fitted_attention_fraction_replaces_the_table():
    (op,) = _core(2048, causal=True)
    fitted = with_gpu(H100, {"compute.h100-sxm-80gb.attention": 0.5})
    cm = ComputeModel(gpu=fitted, gemm_dtype="bf16", attention_dtype="bf16")
    assert cm.attention_efficiency(op) == 0.5


def _scenario(framework: str, topology: str, **training) -> dict:
    return {
        "name": "attn",
        "model": {"preset": "llama2-7b"},
        "training": {"framework": framework, "strategy": "zero1", "seq_len": 4096, **training},
        "cluster": {"topology": topology},
    }


@pytest.mark.parametrize(
    "framework, topology, expected",
    [
        ("megatron", "dgx-h100", "cudnn"),  # Transformer Engine's FusedAttention on Hopper
        ("megatron", "dgx-a100", "flash-attention-2"),  # no cuDNN preference before Hopper
        ("pytorch-fsdp", "dgx-h100", "flash-attention-2"),  # SDPA's flash backend
        ("deepspeed", "dgx-h100", "flash-attention-2"),
    ],
)
def test_default_kernel_by_framework_and_gpu(framework, topology, expected):
    s = scenario_from_dict(_scenario(framework, topology))
    assert attention_kernel(s) == expected
    assert compute_model(s).attention_kernel == expected


def test_a_requested_kernel_is_kept():
    s = scenario_from_dict(_scenario("megatron", "dgx-h100", attention_kernel="flash-attention-3"))
    assert attention_kernel(s) == "flash-attention-3"


def test_a_kernel_without_published_figures_for_the_gpu_is_refused():
    with pytest.raises(UserError) as err:
        scenario_from_dict(_scenario("megatron", "dgx-a100", attention_kernel="cudnn"))
    (problem,) = err.value.problems
    assert problem.path == "training.attention_kernel"
    assert "a100" in problem.message and "flash-attention-2" in problem.hint


def test_cudnn_attention_shortens_a_megatron_h100_step():
    fa2 = compute_model(
        scenario_from_dict(_scenario("megatron", "dgx-h100", attention_kernel="flash-attention-2"))
    )
    cudnn = compute_model(scenario_from_dict(_scenario("megatron", "dgx-h100")))
    (op,) = _core(4096, causal=True)
    # cuDNN's causal 4k forward (518) over FlashAttention-2's (319).
    assert fa2.op_time_s(op) / cudnn.op_time_s(op) == pytest.approx(518 / 319, rel=0.01)


def test_the_report_names_the_kernel():
    from simulator.studies.simulate import simulate

    report = simulate(scenario_from_dict(_scenario("megatron", "dgx-h100")), goodput=False)
    assert report["training"]["attention_kernel"] == "cudnn"
    unfused = scenario_from_dict(_scenario("pytorch-fsdp", "dgx-a100", flash_attention=False))
    assert simulate(unfused, goodput=False)["training"]["attention_kernel"] is None


def test_a_kernel_without_flash_attention_is_refused():
    with pytest.raises(UserError) as err:
        scenario_from_dict(
            _scenario("megatron", "dgx-h100", attention_kernel="cudnn", flash_attention=False)
        )
    (problem,) = err.value.problems
    assert problem.path == "training.attention_kernel" and "flash_attention" in problem.message
