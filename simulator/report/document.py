"""Results -> the JSON contract (`clustersim run --json`). Formatting only: every value comes
from the memory model, the step, execution/metrics and execution/energy."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from simulator.execution.breakdown import StepBreakdown
from simulator.execution.frameworks.megatron import grad_buffer_bytes
from simulator.execution.memory import MemoryBreakdown
from simulator.execution.metrics import FLOPS_CONVENTION, StepMetrics, TrainingMetrics
from simulator.execution.step import StepResult, attention_kernel
from simulator.report.energy import energy_section
from simulator.report.goodput import goodput_section
from simulator.spec.specs import Scenario

CONVENTION = (
    "ZeRO paper accounting (Rajbhandari et al. 2020): mixed-precision Adam = 2 (weights) + 2 "
    "(gradients) + 12 (fp32 master, momentum, variance) bytes per parameter; GB = 1e9 bytes"
)


def _parallelism(s: Scenario) -> dict[str, Any]:
    par = s.training.parallel
    return {
        "tp": par.tp,
        "pp": par.pp,
        "dp": par.dp,
        "sequence_parallel": par.sequence_parallel,
        "tp_comm_overlap": par.tp_comm_overlap,
        "cp": par.cp,
        "cp_comm": par.cp_comm,
        "ep": par.ep,
        "etp": par.etp,
        "edp": par.edp,
        "schedule": par.pipeline.schedule,
        "virtual_stages": par.pipeline.virtual_stages,
        "microbatches": s.training.grad_accum_steps,
        "order": list(par.order),
    }


def memory_section(
    scenario: Scenario,
    mem: MemoryBreakdown,
    suggestions: Sequence[str],
    stages: list[MemoryBreakdown],
) -> dict[str, Any]:
    params = scenario.model.params
    # The rule of thumb "1B parameters = 4 GB at 32-bit" and its training multiple.
    weights_fp32 = 4 * params
    whole_job = mem.total_bytes * scenario.num_gpus
    return {
        "per_gpu": {f"{k}_bytes": v for k, v in mem.components.items()}
        | {"total_bytes": mem.total_bytes},
        "model_states_bytes": mem.model_states_bytes,
        "capacity_bytes": mem.capacity_bytes,
        "fits": mem.fits,
        "headroom_bytes": mem.headroom_bytes,
        "dominant": mem.dominant,
        "analytic_peak_moment": mem.peak_op,
        "cpu_per_host_bytes": mem.cpu_per_host_bytes,
        "shard_degree": mem.shard_degree,
        "stage": mem.stage,
        "stages": mem.stages,
        "stage_total_bytes": [m.total_bytes for m in stages],
        "optimizer_bytes_per_param": mem.optimizer_bytes_per_param,
        "weights_fp32_bytes": weights_fp32,
        "weights_bytes": scenario.training.precision.weight_bytes * params,
        "training_bytes_per_param": whole_job / params,
        "training_to_fp32_weights_ratio": whole_job / weights_fp32,
        "suggestions": list(suggestions),
        "notes": list(mem.notes),
        "convention": CONVENTION,
    }


def _framework_options(t) -> dict[str, Any]:
    """The chosen framework's options as simulated (its defaults filled in)."""
    fw = t.framework
    section = {"deepspeed": fw.deepspeed, "pytorch-fsdp2": fw.fsdp2, "megatron": fw.megatron}.get(
        fw.name
    )
    if section is None:  # PyTorch FSDP / DDP
        return {
            **asdict(t.sharding),
            "bucket_size_bytes": t.bucket_size_bytes,
            "gradient_as_bucket_view": t.gradient_as_bucket_view,
        }
    out = asdict(section)
    if fw.name == "deepspeed":  # the per-stage default resolved
        out["overlap_comm"] = fw.deepspeed.overlap(
            int(t.strategy[-1]) if t.strategy[-1].isdigit() else 0
        )
    elif fw.name == "megatron":
        out["bucket_size"] = fw.megatron.bucket_params(t.parallel.dp)  # None: one bucket
        out["grad_reduce_in_fp32"] = grad_buffer_bytes(t) == 4
    return out


def build_report(
    scenario: Scenario,
    mem: MemoryBreakdown,
    suggestions: Sequence[str] = (),
    step: StepResult | None = None,
    metrics: StepMetrics | None = None,
    training: TrainingMetrics | None = None,
    goodput: Any = None,
    stages: list[MemoryBreakdown] | None = None,
    breakdown: StepBreakdown | None = None,
) -> dict[str, Any]:
    t, c = scenario.training, scenario.cluster
    report: dict[str, Any] = {
        "name": scenario.name,
        "model": {
            "name": scenario.model.name,
            "params": scenario.model.params,
            "num_layers": scenario.model.num_layers,
            "hidden_size": scenario.model.hidden_size,
            "shape_estimated": scenario.model.shape_estimated,
            "preset_defaults": dict(scenario.model.preset_defaults),
            "active_params": scenario.model.active_params,
        },
        "training": {
            "strategy": t.strategy,
            "framework": t.framework.name,
            "framework_options": _framework_options(t),
            "precision": t.precision.name,
            "optimizer": t.optimizer,
            "micro_batch_size": t.micro_batch_size,
            "seq_len": t.seq_len,
            "grad_accum_steps": t.grad_accum_steps,
            "global_batch_size": scenario.global_batch_size,
            "activation_checkpointing": t.activation_checkpointing,
            "parallelism": _parallelism(scenario),
            "flash_attention": t.flash_attention,
            "gradient_clipping": t.gradient_clipping,
            "kernels": t.kernels,
            "attention_kernel": attention_kernel(scenario) if t.flash_attention else None,
        },
        "cluster": {
            "topology": c.topology_name,
            "gpu": c.gpu.name,
            "num_hosts": c.num_hosts,
            "gpus_per_host": c.gpus_per_host,
            "num_gpus": c.num_gpus,
            "gpu_assumed_defaults": list(c.gpu_defaults),
            "stragglers": [{"rank": s.rank, "slowdown": s.slowdown} for s in c.stragglers],
            "degraded_links": [asdict(d) for d in c.degraded_links],
        },
        "memory": memory_section(scenario, mem, suggestions, stages or [mem]),
        "warnings": list(scenario.warnings),
    }
    if c.power_cap_w is not None:  # absent without a cap (reports stay as they were)
        report["cluster"]["power_cap_w"] = c.power_cap_w
    if (
        not scenario.calibration.is_default
    ):  # absent with the built-in constants (reports stay as they were)
        cal = scenario.calibration
        report["calibration"] = {
            "profile": cal.source,
            "sha256": cal.sha256,
            "constants": dict(cal.values),
        }
    if step is not None and metrics is not None:
        merge(report, step_sections(step, metrics, training, breakdown))
        peak_bytes, peak_time, peak_op = step.timeline_peak
        report["memory"] |= {
            "timeline_peak_bytes": peak_bytes,
            "peak_time_s": peak_time,
            "peak_op": peak_op,
        }
        report["warnings"] += _timeline_warnings(peak_bytes, mem)
    if goodput is not None:  # studies.goodput.GoodputResult
        report["training"]["goodput"] = goodput_section(goodput)
    if step is not None and metrics is not None:
        energy = energy_section(
            scenario, step, metrics, training, report["training"].get("goodput"), breakdown
        )
        if energy is not None:
            report["energy"] = energy
    return report


def _timeline_warnings(peak_bytes: int, mem: MemoryBreakdown) -> list[str]:
    """The verdict is the analytic peak, which holds one reduce-scatter in flight per pass; when
    communication is slower than compute, a simulated step can queue more (as FSDP does)."""
    if peak_bytes <= mem.total_bytes:
        return []
    over = (
        f" and above the {mem.capacity_bytes / 1e9:.1f} GB capacity: the run may not fit"
        if peak_bytes > mem.capacity_bytes >= mem.total_bytes
        else ""
    )
    return [
        (
            f"the simulated step's allocations peak at {peak_bytes / 1e9:.2f} GB, above the analytic verdict's "
            f"{mem.total_bytes / 1e9:.2f} GB{over}: gradients wait in reduce-scatters queued behind slower "
            "communication longer than the analytic walk assumes"
        )
    ]


def step_sections(
    step: StepResult,
    m: StepMetrics,
    tr: TrainingMetrics | None,
    breakdown: StepBreakdown | None = None,
) -> dict[str, Any]:
    """The step (with its breakdown by op class, where given), collectives and training sections."""
    out: dict[str, Any] = {
        "step": {
            "time_s": m.time_s,
            "compute_s": m.compute_s,
            "comm_s": m.comm_s,
            "exposed_comm_s": m.exposed_comm_s,
            "comm_overhead_pct": m.comm_overhead_pct,
            "mfu": m.mfu,
            "hfu": m.hfu,
            "tflops_per_gpu": m.model_tflops_per_gpu,
            "hardware_tflops_per_gpu": m.hardware_tflops_per_gpu,
            "tokens_per_step": m.tokens_per_step,
            "tokens_per_s": m.tokens_per_s,
            "tokens_per_s_per_gpu": m.tokens_per_s_per_gpu,
            "rank_classes": [{"name": c.name, "ranks": c.ranks} for c in step.classes],
            "flops_convention": FLOPS_CONVENTION,
        },
        "collectives": list(step.collectives),
    }
    if breakdown is not None:
        out["step"]["breakdown"] = breakdown_section(breakdown)
    if tr is not None:
        out["training"] = {
            "tokens": tr.tokens,
            "flops": tr.flops,
            "pf_days": tr.pf_days,
            "days": tr.days,
            "gpu_hours": tr.gpu_hours,
        }
        if tr.cost_usd is not None:
            out["training"]["cost_usd"] = tr.cost_usd
    return out


def breakdown_section(b: StepBreakdown) -> dict[str, Any]:
    """One GPU's step by op class (execution/breakdown.py): seconds per row, kernel sources."""
    return {key: seconds for key, _label, seconds in b.rows()} | {
        "stage": b.stage,
        "other_clamped_s": b.other_clamped_s,
        "optimizer_offloaded": not b.optimizer_on_gpu,
        "sources": dict(b.sources),
    }


def merge(report: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Sections of `extra` merged into the report (nested mappings updated, not replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(report.get(key), dict):
            report[key].update(value)
        else:
            report[key] = value
    return report


def to_json(report: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, so the same scenario gives the same bytes."""
    return json.dumps(report, indent=2, sort_keys=True)
