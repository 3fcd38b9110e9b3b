"""Results -> the JSON contract and a readable text report. No computation of model values here."""

from __future__ import annotations

import json
from typing import Any

from simulator.execution.memory import MemoryBreakdown, PRECISION_BYTES, fit_suggestions
from simulator.scenario.load import Scenario
from simulator.core.units import fmt_bytes

CONVENTION = ("ZeRO paper accounting (Rajbhandari et al. 2020): mixed-precision Adam = 2 (weights) + 2 "
              "(gradients) + 12 (fp32 master, momentum, variance) bytes per parameter; GB = 1e9 bytes")


def memory_section(scenario: Scenario, mem: MemoryBreakdown) -> dict[str, Any]:
    params = scenario.model.params
    # The rule of thumb "1B parameters = 4 GB at 32-bit" and its training multiple.
    weights_fp32 = 4 * params
    weights_native = PRECISION_BYTES[scenario.training.precision][0] * params
    whole_job = mem.total_bytes * scenario.cluster.num_gpus
    return {
        "per_gpu": {
            "params_bytes": mem.params_bytes,
            "grads_bytes": mem.grads_bytes,
            "optimizer_bytes": mem.optimizer_bytes,
            "activations_bytes": mem.activations_bytes,
            "buffers_bytes": mem.buffers_bytes,
            "overhead_bytes": mem.overhead_bytes,
            "total_bytes": mem.total_bytes,
        },
        "model_states_bytes": mem.model_states_bytes,
        "capacity_bytes": mem.capacity_bytes,
        "fits": mem.fits,
        "headroom_bytes": mem.headroom_bytes,
        "dominant": mem.dominant,
        "analytic_peak_moment": mem.peak_op,
        "cpu_per_host_bytes": mem.cpu_per_host_bytes,
        "shard_degree": mem.shard_degree,
        "optimizer_bytes_per_param": mem.optimizer_bytes_per_param,
        "weights_fp32_bytes": weights_fp32,
        "weights_bytes": weights_native,
        "training_bytes_per_param": whole_job / params,
        "training_to_fp32_weights_ratio": whole_job / weights_fp32,
        "suggestions": fit_suggestions(scenario) if not mem.fits else [],
        "notes": list(mem.notes),
        "convention": CONVENTION,
    }


def build_report(scenario: Scenario, mem: MemoryBreakdown, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    t, c = scenario.training, scenario.cluster
    report: dict[str, Any] = {
        "name": scenario.name,
        "model": {"name": scenario.model.name, "params": scenario.model.params,
                  "num_layers": scenario.model.num_layers, "hidden_size": scenario.model.hidden_size},
        "training": {"strategy": t.strategy, "precision": t.precision, "optimizer": t.optimizer,
                     "micro_batch_size": t.micro_batch_size, "seq_len": t.seq_len,
                     "grad_accum_steps": scenario.grad_accum_steps,
                     "global_batch_size": scenario.global_batch_size,
                     "activation_checkpointing": t.activation_checkpointing,
                     "flash_attention": t.flash_attention},
        "cluster": {"topology": c.topology_name, "gpu": c.gpu.name, "num_hosts": c.num_hosts,
                    "gpus_per_host": c.gpus_per_host, "num_gpus": c.num_gpus},
        "memory": memory_section(scenario, mem),
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(report.get(key), dict):
            report[key].update(value)
        else:
            report[key] = value
    return report


def to_json(report: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, so the same scenario gives the same bytes."""
    return json.dumps(report, indent=2, sort_keys=True)


def _gb(n: float) -> str:
    return f"{n / 1e9:10.2f} GB"


def render_text(report: dict[str, Any]) -> str:
    mem, per = report["memory"], report["memory"]["per_gpu"]
    t, c, m = report["training"], report["cluster"], report["model"]
    lines = [
        f"Scenario: {report['name']}",
        f"  model     {m['name']}: {m['params']:,} parameters ({m['num_layers']} layers, hidden {m['hidden_size']})",
        f"  training  {t['strategy']}, {t['precision']}, {t['optimizer']}, micro-batch {t['micro_batch_size']} x "
        f"seq {t['seq_len']}, accum {t['grad_accum_steps']} (global batch {t['global_batch_size']} seqs), "
        f"checkpointing {t['activation_checkpointing']}",
        f"  cluster   {c['num_gpus']} x {c['gpu']} on {c['num_hosts']} host(s) of topology {c['topology']}",
        "",
        f"Memory per GPU (shard degree {mem['shard_degree']}):",
    ]
    total = per["total_bytes"] or 1
    for key in ("params", "grads", "optimizer", "activations", "buffers", "overhead"):
        value = per[f"{key}_bytes"]
        lines.append(f"  {key:<12}{_gb(value)}  {100 * value / total:5.1f}%  ({fmt_bytes(value, binary=True)})")
    lines += [
        f"  {'-' * 40}",
        f"  {'total':<12}{_gb(per['total_bytes'])}          ({fmt_bytes(per['total_bytes'], binary=True)})",
        f"  {'capacity':<12}{_gb(mem['capacity_bytes'])}          ({fmt_bytes(mem['capacity_bytes'], binary=True)})",
        f"  model states (params + grads + optimizer): {mem['model_states_bytes'] / 1e9:.2f} GB",
        f"  peak during: {mem['analytic_peak_moment']}",
    ]
    if mem["fits"]:
        lines.append(f"  verdict     FITS, headroom {mem['headroom_bytes'] / 1e9:.2f} GB; largest component: "
                     f"{mem['dominant']}")
    else:
        lines.append(f"  verdict     OUT OF MEMORY, short by {-mem['headroom_bytes'] / 1e9:.2f} GB; "
                     f"largest component: {mem['dominant']}")
        lines += [f"    - {s}" for s in mem["suggestions"]]
    if mem["cpu_per_host_bytes"]:
        lines.append(f"  CPU memory per host (offload): {mem['cpu_per_host_bytes'] / 1e9:.2f} GB")
    lines += [
        f"  weights: {mem['weights_fp32_bytes'] / 1e9:.2f} GB at 32-bit (4 bytes/param), "
        f"{mem['weights_bytes'] / 1e9:.2f} GB as trained; training uses {mem['training_bytes_per_param']:.1f} "
        f"bytes/param over the job = {mem['training_to_fp32_weights_ratio']:.1f}x the 32-bit weights",
    ]
    if "peak_op" in mem and "peak_time_s" in mem:
        lines.append(f"  timeline peak at {mem['peak_time_s'] * 1e3:.1f} ms into the step, in: {mem['peak_op']}")
    lines += [f"  note: {n}" for n in mem["notes"]]
    lines.append(f"  convention: {mem['convention']}")
    lines += _step_text(report)
    return "\n".join(lines)


# 1 PF-day = 1e15 FLOP/s for a day (Brown et al. 2020, GPT-3 Table D.1 convention).
PF_DAY_FLOPS = 1e15 * 86400
# Chinchilla (Hoffmann et al. 2022): compute-optimal training uses about 20 tokens per parameter.
TOKENS_PER_PARAM = 20


def step_sections(scenario: Scenario, step) -> dict[str, Any]:
    """The step, collectives and training sections from a simulated step."""
    from simulator.execution.step import model_flops_per_token

    n = scenario.cluster.num_gpus
    tokens_per_s = step.tokens_per_step / step.time_s
    peak_bytes, peak_time, peak_op = step.timeline_peak
    tokens = scenario.training.tokens or TOKENS_PER_PARAM * scenario.model.params
    flops = model_flops_per_token(scenario) * tokens
    days = tokens / tokens_per_s / 86400
    training = {"tokens": tokens, "flops": flops, "pf_days": flops / PF_DAY_FLOPS, "days": days,
                "gpu_hours": days * 24 * n}
    if scenario.cluster.price_per_gpu_hour is not None:
        training["cost_usd"] = training["gpu_hours"] * scenario.cluster.price_per_gpu_hour
    return {
        "step": {
            "time_s": step.time_s,
            "compute_s": step.compute_s,
            "comm_s": step.comm_s,
            "exposed_comm_s": step.exposed_comm_s,
            "comm_overhead_pct": 100 * step.exposed_comm_s / step.time_s,
            "mfu": step.model_flops_per_gpu / step.time_s / step.peak_flops,
            "hfu": step.hardware_flops_per_gpu / step.time_s / step.peak_flops,
            "tflops_per_gpu": step.model_flops_per_gpu / step.time_s / 1e12,
            "hardware_tflops_per_gpu": step.hardware_flops_per_gpu / step.time_s / 1e12,
            "tokens_per_step": step.tokens_per_step,
            "tokens_per_s": tokens_per_s,
            "tokens_per_s_per_gpu": tokens_per_s / n,
            "rank_classes": [{"name": c.name, "ranks": c.ranks} for c in step.classes],
            "flops_convention": "model FLOPs = 6N + 12 L h s per token (PaLM / Megatron, llm-foundry MFU); "
                                "hardware FLOPs are those the kernels execute: recomputation and the "
                                "flash-attention backward's extra QK^T included, the masked half of causal "
                                "attention excluded (so HFU can be below MFU); MFU and HFU are against the GPU's dense peak "
                                "for the GEMM datatype of the precision (bf16, fp16, fp8 or fp32)",
        },
        "memory": {"timeline_peak_bytes": peak_bytes, "peak_time_s": peak_time, "peak_op": peak_op},
        "collectives": list(step.collectives),
        "training": training,
    }


def _step_text(report: dict[str, Any]) -> list[str]:
    st, tr = report.get("step"), report.get("training")
    if not st:
        return []
    lines = [
        "",
        "Step:",
        f"  time        {st['time_s'] * 1e3:10.1f} ms   ({st['tokens_per_step']:,} tokens)",
        f"  compute     {st['compute_s'] * 1e3:10.1f} ms",
        f"  comm        {st['comm_s'] * 1e3:10.1f} ms   exposed {st['exposed_comm_s'] * 1e3:.1f} ms "
        f"({st['comm_overhead_pct']:.1f}% of the step)",
        f"  throughput  {st['tokens_per_s']:,.0f} tokens/s = {st['tokens_per_s_per_gpu']:,.0f} per GPU",
        f"  MFU {100 * st['mfu']:.1f}%  ({st['tflops_per_gpu']:.1f} model TFLOP/s per GPU);  "
        f"HFU {100 * st['hfu']:.1f}%  ({st['hardware_tflops_per_gpu']:.1f} hardware TFLOP/s)",
    ]
    if report.get("collectives"):
        lines.append("  collectives per step:")
        lines.append(f"    {'op':<15}{'group':<8}{'ranks':>6}{'size':>12}{'count':>7}{'each':>11}{'busbw':>12}  algorithm")
        for c in report["collectives"]:
            lines.append(f"    {c['op']:<15}{c['group']:<8}{c['group_size']:>6}{fmt_bytes(c['bytes']):>12}"
                         f"{c['count']:>7}{c['time_s'] * 1e3:>9.2f}ms{c['busbw_GBps']:>8.1f} GB/s  {c['algorithm']}")
    if tr:
        lines += [
            "",
            f"Training on {tr['tokens']:.3g} tokens: {tr['flops']:.3g} FLOPs = {tr['pf_days']:,.1f} PF-days; "
            f"{tr['days']:,.1f} days on these GPUs = {tr['gpu_hours']:,.0f} GPU-hours"
            + (f", ${tr['cost_usd']:,.0f}" if "cost_usd" in tr else ""),
        ]
    return lines
