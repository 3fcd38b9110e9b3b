"""The text report of `clustersim run`: exact key lines of a report dict built by hand with round
numbers, every expected value worked out in the comments."""

from __future__ import annotations

import re

from simulator.report.text import render_text
from simulator.studies.simulate import simulate
from tests.helpers import make_scenario

GB = 10**9
GIB = 2**30
CAPACITY = 80 * GIB  # an A100 80GB: 85,899,345,920 bytes = 85.90 GB
# A 1B-parameter model under DDP: bf16 weights 2 GB, bf16 gradients 2 GB, Adam's fp32 master,
# momentum and variance 12 GB, plus activations, communication buffers and overhead.
COMPONENTS = {
    "params": 2 * GB,
    "grads": 2 * GB,
    "optimizer": 12 * GB,
    "activations": 20 * GB,
    "buffers": 1 * GB,
    "overhead": 3 * GB,
}  # total 40 GB


def _report(components=COMPONENTS, stragglers=(), suggestions=()) -> dict:
    total = sum(components.values())
    return {
        "name": "hand",
        "model": {"name": "m-1b", "params": 10**9, "num_layers": 24, "hidden_size": 2048},
        "training": {
            "strategy": "ddp",
            "precision": "bf16-mixed",
            "optimizer": "adamw",
            "micro_batch_size": 1,
            "seq_len": 2048,
            "grad_accum_steps": 8,
            "global_batch_size": 64,
            "activation_checkpointing": "none",
        },
        "cluster": {
            "topology": "dgx-a100",
            "gpu": "a100-80gb",
            "num_hosts": 1,
            "num_gpus": 8,
            "stragglers": list(stragglers),
            "degraded_links": [],
        },
        "memory": {
            "per_gpu": {f"{k}_bytes": v for k, v in components.items()} | {"total_bytes": total},
            "shard_degree": 1,
            "capacity_bytes": CAPACITY,
            "fits": total <= CAPACITY,
            "headroom_bytes": CAPACITY - total,
            "dominant": max(components, key=components.get),
            "model_states_bytes": 16 * GB,
            "analytic_peak_moment": "backward head (start of backward)",
            "suggestions": list(suggestions),
            "cpu_per_host_bytes": 0,
            "weights_fp32_bytes": 4 * GB,
            "weights_bytes": 2 * GB,
            "training_bytes_per_param": 8 * total / 10**9,
            "training_to_fp32_weights_ratio": 8 * total / (4 * GB),
            "notes": [],
            "convention": "ZeRO",
        },
        # 8 GPUs x 1 sequence x 2,048 tokens x 8 accumulation steps = 131,072 tokens in 1.05 s.
        "step": {
            "time_s": 1.05,
            "tokens_per_step": 131_072,
            "compute_s": 1.0,
            "comm_s": 0.2,
            "exposed_comm_s": 0.05,
            "comm_overhead_pct": 100 * 0.05 / 1.05,
            "tokens_per_s": 131_072 / 1.05,
            "tokens_per_s_per_gpu": 131_072 / 1.05 / 8,
            "mfu": 0.45,
            "hfu": 0.6,
            "tflops_per_gpu": 0.45 * 312,
            "hardware_tflops_per_gpu": 0.6 * 312,
            "flops_convention": "6N",
        },
    }


def _lines(report: dict) -> list[str]:
    return render_text(report).splitlines()


def test_memory_components_in_gb_with_their_share_of_the_total():
    lines = _lines(_report())
    # Shares of 40 GB: 2/40 = 5%, 12/40 = 30%, 20/40 = 50%, 1/40 = 2.5%, 3/40 = 7.5%.
    # Binary sizes: 2e9 / 2^30 = 1.8626 GiB, 12e9 / 2^30 = 11.176 GiB, 20e9 / 2^30 = 18.626 GiB,
    # 1e9 / 2^20 = 953.67 MiB (under 1 GiB), 3e9 / 2^30 = 2.794 GiB, 40e9 / 2^30 = 37.253 GiB.
    expected = [
        "  params            2.00 GB    5.0%  (1.86 GiB)",
        "  grads             2.00 GB    5.0%  (1.86 GiB)",
        "  optimizer        12.00 GB   30.0%  (11.18 GiB)",
        "  activations      20.00 GB   50.0%  (18.63 GiB)",
        "  buffers           1.00 GB    2.5%  (953.67 MiB)",
        "  overhead          3.00 GB    7.5%  (2.79 GiB)",
        "  ----------------------------------------",
        "  total            40.00 GB          (37.25 GiB)",
        "  capacity         85.90 GB          (80.00 GiB)",
    ]
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    rows = [re.match(r"  \w+ +([\d.]+) GB +([\d.]+)%", line) for line in lines[start : start + 6]]
    assert sum(float(m[1]) for m in rows) == 40.0  # the components add up to the total line
    assert sum(float(m[2]) for m in rows) == 100.0


def test_verdict_fits_with_its_headroom_and_the_peak_it_uses():
    lines = _lines(_report())
    assert "  analytic peak (the verdict's): backward head (start of backward)" in lines
    # 85.899345920 GB capacity - 40 GB = 45.90 GB free; activations (20 GB) the largest.
    assert "  verdict     FITS, headroom 45.90 GB; largest component: activations" in lines
    assert lines.index(
        "  analytic peak (the verdict's): backward head (start of backward)"
    ) < lines.index("  verdict     FITS, headroom 45.90 GB; largest component: activations")


def test_verdict_out_of_memory_with_the_shortfall_and_suggestions():
    big = COMPONENTS | {"activations": 90 * GB}  # total 2 + 2 + 12 + 90 + 1 + 3 = 110 GB
    lines = _lines(_report(big, suggestions=["use zero3"]))
    # 110 GB - 85.899345920 GB = 24.100654080 GB short.
    at = lines.index(
        "  verdict     OUT OF MEMORY, short by 24.10 GB; largest component: activations"
    )
    assert lines[at + 1] == "    - use zero3"
    assert "  activations      90.00 GB   81.8%  (83.82 GiB)" in lines  # 90/110 = 81.82%, 90e9/2^30


def test_straggler_line():
    lines = _lines(_report(stragglers=[{"rank": 1, "slowdown": 1.2}]))
    assert "  straggler rank 1: every kernel x1.2 slower" in lines
    assert not any("straggler" in line for line in _lines(_report()))


def test_mfu_and_hfu_line():
    lines = _lines(_report())
    # 45% and 60% of the A100's 312 TFLOP/s bf16 peak: 140.4 and 187.2 TFLOP/s.
    assert (
        "  MFU 45.0%  (140.4 model TFLOP/s per GPU);  HFU 60.0%  (187.2 hardware TFLOP/s)" in lines
    )
    # 131,072 tokens / 1.05 s = 124,830 tokens/s; / 8 GPUs = 15,604 (15,603.8).
    assert "  throughput  124,830 tokens/s = 15,604 per GPU" in lines


def test_a_straggler_scenario_names_the_straggler_and_its_class():
    cluster = {"topology": "dgx-a100", "stragglers": [{"rank": 1, "slowdown": 1.2}]}
    lines = _lines(simulate(make_scenario({"preset": "gpt3-125m"}, {"strategy": "zero3"}, cluster)))
    assert "  straggler rank 1: every kernel x1.2 slower" in lines
    # 8 GPUs: rank 1 alone in its class, the other 7 together.
    assert "  rank classes: ranks x7; rank 1 (x1.2 slower) x1" in lines


# 1.05 s split as 600 + 150 + 105 + 42 + 21 + 21 + 50 + 61 ms; two classes share one kernel
# source.
BREAKDOWN = {
    "gemm_s": 0.6,
    "attention_s": 0.15,
    "memory_s": 0.105,
    "optimizer_s": 0.042,
    "overhead_s": 0.021,
    "interference_s": 0.021,
    "exposed_comm_s": 0.05,
    "other_s": 0.061,
    "stage": 0,
    "other_clamped_s": 0.0,
    "optimizer_offloaded": False,
    "sources": {"gemm": "GEMM table", "attention": "paper", "memory": "paper"},
}


def _with_breakdown(**changes) -> dict:
    report = _report()
    report["step"]["breakdown"] = BREAKDOWN | changes
    return report


def test_breakdown_table_with_each_class_share_of_the_step():
    lines = _lines(_with_breakdown())
    # Shares of 1.05 s: 57.14%, 14.29%, 10.0%, 4.0%, 2.0%, 2.0%, 4.76%, 5.81%.
    expected = [
        "  breakdown of one GPU's step:",
        "    class                              time ms    share",
        "    GEMM                                 600.0    57.1%",
        "    attention                            150.0    14.3%",
        "    memory-bound                         105.0    10.0%",
        "    optimizer                             42.0     4.0%",
        "    overhead (kernel launch)              21.0     2.0%",
        "    compute slowed by NCCL's SMs          21.0     2.0%",
        "    exposed communication                 50.0     4.8%",
        "    other (pipeline bubble, waits)        61.0     5.8%",
        "    kernel source (gemm): GEMM table",
        "    kernel source (attention, memory): paper",
    ]
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    assert not any("breakdown" in line for line in _lines(_report()))


def test_breakdown_names_an_offloaded_optimizer_and_a_clamped_rest():
    lines = _lines(_with_breakdown(optimizer_offloaded=True, other_s=0.0, other_clamped_s=0.003))
    assert "    optimizer (CPU step + PCIe)           42.0     4.0%" in lines
    assert (
        "    note: the rows above exceed the step by 3.0 ms (they overlap); other is shown as 0"
        in (lines)
    )


def test_a_simulated_report_prints_its_breakdown():
    lines = _lines(simulate(make_scenario(), goodput=False, interval=False))
    at = lines.index("  breakdown of one GPU's step:")
    rows = [re.match(r"    (.+?) +([\d.]+) +([\d.]+)%$", line) for line in lines[at + 2 : at + 10]]
    assert [m[1] for m in rows if m] == [
        "GEMM",
        "attention",
        "memory-bound",
        "optimizer",
        "overhead (kernel launch)",
        "compute slowed by NCCL's SMs",
        "exposed communication",
        "other (pipeline bubble, waits)",
    ]
