"""Step and training metrics, computed once: MFU, HFU, tokens/s, and time, GPU-hours, PF-days
and cost to train. The report formats these; it computes nothing.

Conventions:
- model FLOPs per token: 6N + 12 L h s (PaLM / Megatron / llm-foundry MFU), attention
  counted in full (never halved for causal masking);
- hardware FLOPs: model FLOPs plus the forward FLOPs recomputed under activation
  checkpointing, counted the same way (PaLM App. B), so HFU >= MFU;
- both against the GPU's dense peak for the GEMM datatype of the precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.execution.layout import model_layout
from simulator.execution.step import StepResult
from simulator.model.flops import (
    arch_recompute_flops_per_token,
    recompute_flops_per_token,
    spec_flops_per_token,
)
from simulator.spec.specs import Scenario

# 1 PF-day = 1e15 FLOP/s for a day (Brown et al. 2020, GPT-3 Table D.1 convention).
PF_DAY_FLOPS = 1e15 * 86400
# Chinchilla (Hoffmann et al. 2022): compute-optimal training uses about 20 tokens per parameter.
TOKENS_PER_PARAM = 20
SECONDS_PER_DAY = 86400

FLOPS_CONVENTION = (
    "model FLOPs = 6N + 12 L h s per token (PaLM / Megatron, llm-foundry MFU; attention counted in full); "
    "hardware FLOPs add the forward FLOPs recomputed under activation checkpointing (PaLM App. B), so "
    "HFU >= MFU; both against the GPU's dense peak for the GEMM datatype of the precision"
)


def model_flops_per_token(scenario: Scenario) -> float:
    m = scenario.model
    return spec_flops_per_token(
        m.params, m.num_layers, m.hidden_size, scenario.training.seq_len, m.arch
    )


def hardware_flops_per_token(scenario: Scenario) -> float:
    t, shape = scenario.training, scenario.model.shape
    if scenario.model.arch is not None:
        return model_flops_per_token(scenario) + arch_recompute_flops_per_token(
            scenario.model.arch, t.seq_len, t.activation_checkpointing
        )
    blocks = sum(b.params for b in model_layout(scenario.model).blocks)
    attn_layers = shape.num_layers + 2 * shape.decoder_layers
    return model_flops_per_token(scenario) + recompute_flops_per_token(
        blocks, attn_layers, shape.q_dim, t.seq_len, t.activation_checkpointing
    )


@dataclass(frozen=True, kw_only=True)
class StepMetrics:
    time_s: float
    compute_s: float
    comm_s: float
    exposed_comm_s: float
    mfu: float
    hfu: float
    model_tflops_per_gpu: float
    hardware_tflops_per_gpu: float
    tokens_per_step: int
    tokens_per_s: float
    tokens_per_s_per_gpu: float

    @property
    def comm_overhead_pct(self) -> float:
        return 100 * self.exposed_comm_s / self.time_s


def step_metrics(scenario: Scenario, step: StepResult) -> StepMetrics:
    n, tokens = scenario.num_gpus, scenario.tokens_per_step
    model = model_flops_per_token(scenario) * tokens / n / step.time_s
    hardware = hardware_flops_per_token(scenario) * tokens / n / step.time_s
    tokens_per_s = tokens / step.time_s
    return StepMetrics(
        time_s=step.time_s,
        compute_s=step.compute_s,
        comm_s=step.comm_s,
        exposed_comm_s=step.exposed_comm_s,
        mfu=model / step.peak_flops,
        hfu=hardware / step.peak_flops,
        model_tflops_per_gpu=model / 1e12,
        hardware_tflops_per_gpu=hardware / 1e12,
        tokens_per_step=tokens,
        tokens_per_s=tokens_per_s,
        tokens_per_s_per_gpu=tokens_per_s / n,
    )


@dataclass(frozen=True, kw_only=True)
class TrainingMetrics:
    tokens: float
    flops: float
    pf_days: float
    days: float
    gpu_hours: float
    cost_usd: float | None


def training_metrics(scenario: Scenario, step: StepMetrics) -> TrainingMetrics:
    """Time and compute to train on `training.tokens` (default 20 tokens per parameter)."""
    tokens = scenario.training.tokens or TOKENS_PER_PARAM * scenario.model.params
    flops = model_flops_per_token(scenario) * tokens
    days = tokens / step.tokens_per_s / SECONDS_PER_DAY
    gpu_hours = days * 24 * scenario.num_gpus
    price = scenario.cluster.price_per_gpu_hour
    return TrainingMetrics(
        tokens=tokens,
        flops=flops,
        pf_days=flops / PF_DAY_FLOPS,
        days=days,
        gpu_hours=gpu_hours,
        cost_usd=gpu_hours * price if price is not None else None,
    )
