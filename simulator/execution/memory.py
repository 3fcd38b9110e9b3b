"""Analytic per-GPU memory model with an OOM verdict.

Convention (stated in every report): the ZeRO paper's accounting (Rajbhandari et al. 2020,
Sec 3.1 and Table 1). With mixed precision and Adam each parameter costs 2 bytes (16-bit
weights) + 2 bytes (16-bit gradients) + K = 12 bytes of optimizer state (fp32 master
weights, momentum and variance). Per GPU, with data-parallel degree N:
    DDP     (2 + 2 + K) P
    ZeRO-1  (2 + 2) P + K P / N
    ZeRO-2  2 P + (2 + K) P / N
    ZeRO-3  (2 + 2 + K) P / N
Hybrid shard (HSDP / MiCS) is ZeRO-3 with N = shard_group_size. Each strategy object
(execution/strategies) states its own sharding, buffers and peak-time buffers.

Where frameworks differ:
- PyTorch AMP + DDP keeps fp32 weights and fp32 gradients (4 + 4 + 8 = 16 bytes/param):
  the same total as the ZeRO convention, split differently (params 4, grads 4, optimizer 8).
- DeepSpeed's estimator (`estimate_zero2_model_states_mem_needs`) charges ZeRO-2 with
  4 P + 16 P / N (full 16-bit gradients kept during reduction) and ZeRO-3 with
  4 x largest_layer_params + 18 P / N; here those transient buffers are shown separately
  under `buffers` (reduce/all-gather buckets, live unsharded units) rather than folded in.
- PyTorch DDP (gradient_as_bucket_view=False, the default) holds a second copy of all
  gradients in its communication buckets; that copy is counted under `buffers`.

Activations and buffers are taken at the step's peak, found analytically among the moments
where it can occur (the start of backward, with every activation and the logits live, and
the backward of each block, with its recompute working set and all-gathered units); the
event timeline of the step engine reproduces the same peak from alloc/free events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulator.execution import finetune, layout
from simulator.execution.frameworks import strategy_for
from simulator.execution.memory_peak import peak_moment
from simulator.model.precision import optimizer_state_bytes_per_param
from simulator.spec.specs import Scenario


@dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Per-GPU bytes by component at the analytic peak, the verdict's inputs."""

    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    buffers_bytes: int
    overhead_bytes: int
    capacity_bytes: int
    cpu_per_host_bytes: int
    shard_degree: int
    optimizer_bytes_per_param: float
    static_buffers_bytes: int = 0  # the part of buffers_bytes held for the whole step
    peak_op: str = ""
    notes: tuple[str, ...] = field(default=())
    stage: int = 0  # the pipeline stage this breakdown is of
    stages: int = 1

    @property
    def model_states_bytes(self) -> int:
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> int:
        return (
            self.model_states_bytes
            + self.activations_bytes
            + self.buffers_bytes
            + self.overhead_bytes
        )

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.total_bytes

    @property
    def components(self) -> dict[str, int]:
        return {
            "params": self.params_bytes,
            "grads": self.grads_bytes,
            "optimizer": self.optimizer_bytes,
            "activations": self.activations_bytes,
            "buffers": self.buffers_bytes,
            "overhead": self.overhead_bytes,
        }

    @property
    def static_bytes(self) -> int:
        """Held from the start to the end of the step: model states, fixed buffers, overhead."""
        return self.model_states_bytes + self.static_buffers_bytes + self.overhead_bytes

    @property
    def dominant(self) -> str:
        comps = self.components
        return max(comps, key=comps.__getitem__)


def memory_breakdown(scenario: Scenario) -> MemoryBreakdown:
    """Peak per-GPU memory of one training step, by component (analytic): the pipeline stage
    that needs the most (every stage's are in `stage_memory`)."""
    return max(stage_memory(scenario), key=lambda m: (m.total_bytes, -m.stage))


def stage_memory(scenario: Scenario) -> list[MemoryBreakdown]:
    """Each pipeline stage's peak per-GPU memory."""
    return [
        _stage_breakdown(scenario, lay)
        for lay in layout.model_layouts(scenario.model, scenario.training.parallel)
    ]


def _stage_breakdown(scenario: Scenario, lay: layout.Layout) -> MemoryBreakdown:
    t, m = scenario.training, scenario.model
    strategy = strategy_for(t)
    gb = t.precision.grad_bytes
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, m.hidden_size)
    n = strategy.shard_degree(scenario)
    stage = lay.stage
    notes = []
    if finetune.active(scenario):
        # LoRA / QLoRA (execution/finetune.py): trainable adapters, a frozen (quantized) base.
        states = finetune.states(scenario, lay, k, strategy)
        notes += _finetune_notes(scenario)
    else:
        states = strategy.states(scenario, lay, k)
    params_b, grads_b, opt_b = states.params, states.grads, states.optimizer
    cpu_per_gpu = 0
    if t.offload.optimizer:
        # ZeRO-Offload (Ren et al. 2021, Sec 4.1): fp32 master weights and optimizer states
        # live in CPU memory, and 16-bit gradients are copied there for the CPU Adam step.
        cpu_per_gpu += opt_b + math.ceil(lay.params / n) * gb
        opt_b = 0
        notes.append("optimizer states offloaded to CPU (ZeRO-Offload)")
    if t.offload.params:
        # ZeRO-Infinity / FSDP CPUOffload: parameter shards live in CPU memory.
        cpu_per_gpu += params_b
        params_b = 0
        notes.append("parameter shards offloaded to CPU")
    peak = peak_moment(scenario, stage, lay)
    tensors = params_b + grads_b + opt_b + peak.activations_bytes + peak.buffers_bytes
    context = t.framework_overhead_bytes
    if context is None:
        context = scenario.cluster.gpu.cuda_context_bytes
    overhead = context + round(t.allocator_reserve * tensors)
    gpus_on_host = min(scenario.cluster.gpus_per_host, scenario.cluster.num_gpus)
    if m.shape_estimated:
        notes.append(
            f"shape estimated from the parameter count: {m.num_layers} layers, hidden "
            f"{m.hidden_size}; embeddings and logits not counted in activations"
        )
    return MemoryBreakdown(
        params_bytes=params_b,
        grads_bytes=grads_b,
        optimizer_bytes=opt_b,
        activations_bytes=peak.activations_bytes,
        buffers_bytes=peak.buffers_bytes,
        overhead_bytes=overhead,
        capacity_bytes=scenario.cluster.gpu.memory_bytes,
        cpu_per_host_bytes=cpu_per_gpu * gpus_on_host,
        shard_degree=n,
        optimizer_bytes_per_param=k,
        static_buffers_bytes=peak.static_buffers_bytes,
        peak_op=peak.label,
        notes=tuple(notes),
        stage=stage,
        stages=t.parallel.pp,
    )


def _finetune_notes(scenario: Scenario) -> list[str]:
    f = scenario.training.finetune
    base = f.base_weights + (" with double quantization" if f.double_quant else "")
    notes = [
        f"{f.method}: rank-{f.rank} adapters (alpha {f.alpha:g}) on "
        + ("every Linear" if f.target_modules == "all-linear" else ", ".join(f.target_modules))
        + f"; frozen base stored as {base}, without gradients or optimizer states"
    ]
    if f.paged_optimizer:
        notes.append(
            "paged optimizer: pages states to CPU only under memory pressure; the "
            "steady-state peak is unchanged (QLoRA, Dettmers et al. 2023, Sec 3)"
        )
    return notes
