"""Analytic per-GPU memory model with an OOM verdict.

Convention (stated in every report): the ZeRO paper's accounting (Rajbhandari et al. 2020,
Sec 3.1 and Table 1). With mixed precision and Adam each parameter costs 2 bytes (16-bit
weights) + 2 bytes (16-bit gradients) + K = 12 bytes of optimizer state (fp32 master
weights, momentum and variance). Per GPU, with data-parallel degree N:
    DDP     (2 + 2 + K) P
    ZeRO-1  (2 + 2) P + K P / N
    ZeRO-2  2 P + (2 + K) P / N
    ZeRO-3  (2 + 2 + K) P / N
Hybrid shard (HSDP / MiCS) is ZeRO-3 with N = shard_group_size.

Where frameworks differ:
- PyTorch AMP + DDP keeps fp32 weights and fp32 gradients (4 + 4 + 8 = 16 bytes/param):
  the same total as the ZeRO convention, split differently (params 4, grads 4, optimizer 8).
- DeepSpeed's estimator (`estimate_zero2_model_states_mem_needs`) charges ZeRO-2 with
  4 P + 16 P / N (full 16-bit gradients kept during reduction) and ZeRO-3 with
  4 x largest_layer_params + 18 P / N; here those transient buffers are shown separately
  under `buffers` (reduce/all-gather buckets, live unsharded units) rather than folded in.
- PyTorch DDP (gradient_as_bucket_view=False, the default) holds a second copy of all
  gradients in its communication buckets; that copy is counted under `buffers`.
Shards are ceil(P / N) elements per rank (the framework pads the flat buffer to N equal parts).

Activations and buffers are taken at the step's peak, found analytically among the moments
where it can occur (the start of backward, with every activation and the logits live, and
the backward of each block, with its recompute working set and all-gathered units); the
event timeline of the step engine reproduces the same peak from alloc/free events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulator.execution import layout
from simulator.scenario.load import Scenario

# Bytes per parameter: (weights, gradients, fp32 master copy), and the activation element size.
# Mixed precision keeps an fp32 master copy (Micikevicius et al. 2018, "Mixed Precision
# Training", Sec 3.1); pure bf16 keeps none; fp8-mixed (Transformer Engine) keeps 16-bit weights
# + fp32 master and casts to fp8 per GEMM, so its memory is that of bf16-mixed.
PRECISION_BYTES = {
    "fp32": (4, 4, 0, 4),
    "fp16-mixed": (2, 2, 4, 2),
    "bf16-mixed": (2, 2, 4, 2),
    "bf16": (2, 2, 0, 2),
    "fp8-mixed": (2, 2, 4, 2),
}

# Optimizer state: (number of per-parameter states, bytes per state at full precision).
# Adam/AdamW: momentum + variance (Kingma & Ba 2015). SGD with momentum: one buffer.
# 8-bit Adam (Dettmers et al. 2022, bitsandbytes): both states at 1 byte, plus one fp32
# absmax per 2048-element block (block-wise quantization), 8/2048 bytes per parameter.
ADAM_8BIT_BLOCK = 2048


def optimizer_state_bytes_per_param(optimizer: str, precision: str, hidden_size: int) -> float:
    """K of the ZeRO paper: optimizer-state bytes per parameter, including the fp32 master copy."""
    _, _, master, _ = PRECISION_BYTES[precision]
    # Pure-16-bit training keeps optimizer states in 16 bits as well (e.g. bf16 AdamW).
    state = 2 if precision == "bf16" else 4
    if optimizer in ("adam", "adamw"):
        return master + 2 * state
    if optimizer == "sgd":
        return master
    if optimizer == "sgd-momentum":
        return master + state
    if optimizer == "adam-8bit":
        return master + 2 * 1 + 2 * 4 / ADAM_8BIT_BLOCK
    if optimizer == "adafactor":
        # Adafactor (Shazeer & Stern 2018) with beta1 = 0 keeps a factored second moment: one
        # row and one column vector per r x c matrix, (r + c) states; for square h x h matrices
        # that is 2 / h states per parameter.
        return master + state * 2 / hidden_size
    raise ValueError(f"unknown optimizer {optimizer!r}")


# DeepSpeed ZeRO-1/2 defaults: reduce_bucket_size = allgather_bucket_size = 5e8 elements
# (DeepSpeed config docs, "zero_optimization").
DEEPSPEED_BUCKET_ELEMENTS = 500_000_000


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU bytes by component, the verdict and how to make it fit."""

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

    @property
    def model_states_bytes(self) -> int:
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> int:
        return self.model_states_bytes + self.activations_bytes + self.buffers_bytes + self.overhead_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.total_bytes

    @property
    def components(self) -> dict[str, int]:
        return {"params": self.params_bytes, "grads": self.grads_bytes, "optimizer": self.optimizer_bytes,
                "activations": self.activations_bytes, "buffers": self.buffers_bytes,
                "overhead": self.overhead_bytes}

    @property
    def static_bytes(self) -> int:
        """Held from the start to the end of the step: model states, fixed buffers, overhead."""
        return self.model_states_bytes + self.static_buffers_bytes + self.overhead_bytes

    @property
    def dominant(self) -> str:
        comps = self.components
        return max(comps, key=comps.get)


def shard_degree(scenario: Scenario) -> int:
    """How many ranks share one copy of the sharded states."""
    if scenario.strategy == "ddp":
        return 1
    if scenario.strategy == "hsdp":
        return min(scenario.training.shard_group_size, scenario.cluster.num_gpus)
    return scenario.cluster.num_gpus


def model_state_bytes(params: int, strategy: str, n: int, bytes_per: tuple[int, int, float]) -> tuple[int, int, int]:
    """(params, grads, optimizer) bytes per GPU: the ZeRO paper's Table 1 formulas."""
    pb, gb, k = bytes_per
    shard = math.ceil(params / n)
    if strategy == "ddp":
        return params * pb, params * gb, int(math.ceil(params * k))
    if strategy == "zero1":
        return params * pb, params * gb, int(math.ceil(shard * k))
    if strategy == "zero2":
        return params * pb, shard * gb, int(math.ceil(shard * k))
    if strategy in ("zero3", "hsdp"):
        return shard * pb, shard * gb, int(math.ceil(shard * k))
    raise ValueError(f"unknown strategy {strategy!r}")


def memory_breakdown(scenario: Scenario) -> MemoryBreakdown:
    """Peak per-GPU memory of one training step, by component (analytic)."""
    t, m = scenario.training, scenario.model
    pb, gb, _, act_b = PRECISION_BYTES[t.precision]
    k = optimizer_state_bytes_per_param(t.optimizer, t.precision, m.hidden_size)
    n = shard_degree(scenario)
    params_b, grads_b, opt_b = model_state_bytes(m.params, scenario.strategy, n, (pb, gb, k))
    notes = []
    cpu_per_gpu = 0
    shard = math.ceil(m.params / n)
    if t.offload.optimizer == "cpu":
        # ZeRO-Offload (Ren et al. 2021, Sec 4.1): fp32 master weights and optimizer states
        # live in CPU memory, and 16-bit gradients are copied there for the CPU Adam step.
        cpu_per_gpu += opt_b + shard * gb
        opt_b = 0
        notes.append("optimizer states offloaded to CPU (ZeRO-Offload)")
    if t.offload.params == "cpu":
        # ZeRO-Infinity / FSDP CPUOffload: parameter shards live in CPU memory.
        cpu_per_gpu += params_b
        params_b = 0
        notes.append("parameter shards offloaded to CPU")
    peak = peak_moment(scenario, pb, gb, act_b)
    acts, buffers = peak.activations_bytes, peak.buffers_bytes
    tensors = params_b + grads_b + opt_b + acts + buffers
    context = t.framework_overhead if t.framework_overhead is not None else scenario.cluster.gpu.cuda_context_bytes
    overhead = context + int(round(t.allocator_reserve * tensors))
    gpus_on_host = min(scenario.cluster.gpus_per_host, scenario.cluster.num_gpus)
    if m.shape_estimated:
        notes.append(f"shape estimated from the parameter count: {m.num_layers} layers, hidden "
                     f"{m.hidden_size}; embeddings and logits not counted in activations")
    return MemoryBreakdown(
        params_bytes=params_b, grads_bytes=grads_b, optimizer_bytes=opt_b, activations_bytes=acts,
        buffers_bytes=buffers, overhead_bytes=overhead, capacity_bytes=scenario.cluster.gpu.memory_bytes,
        cpu_per_host_bytes=cpu_per_gpu * gpus_on_host, shard_degree=n, optimizer_bytes_per_param=k,
        static_buffers_bytes=peak.static_buffers_bytes, peak_op=peak.label, notes=tuple(notes),
    )


@dataclass(frozen=True)
class Moment:
    """A candidate for the step's memory peak: live activations and buffers at one point."""

    label: str
    activations_bytes: int
    buffers_bytes: int      # static buffers included
    static_buffers_bytes: int

    @property
    def bytes(self) -> int:
        return self.activations_bytes + self.buffers_bytes


def peak_moment(scenario: Scenario, pb: int, gb: int, act_b: int) -> Moment:
    """The largest of: the start of backward (all activations, the logits included) and the
    backward of each block (activations of the blocks before it, its recompute working set,
    its all-gathered parameters and unsharded gradient, the prefetched next unit)."""
    t = scenario.training
    lay = layout.model_layout(scenario.model)
    acts = layout.activations(lay, t.seq_len, t.micro_batch_size, t.activation_checkpointing,
                              t.flash_attention, act_b)
    static = static_buffer_bytes(scenario, lay, pb, gb)
    sharded = scenario.strategy in ("zero3", "hsdp") and shard_degree(scenario) > 1
    keep_all = sharded and not t.zero3.reshard_after_forward
    prefetch = 1 if (t.zero3.backward_prefetch and sharded) else 0
    blocks = lay.blocks
    # Start of backward (loss and head backward); FSDP prefetches the last block meanwhile.
    if keep_all:
        head = static + sum(b.params for b in blocks) * pb
    else:
        head = static + prefetch * blocks[-1].params * pb
    best = Moment("backward head (start of backward)", acts.after_forward, head, static)
    live = acts.embedding + sum(acts.blocks)
    for i in range(len(blocks) - 1, -1, -1):
        buf = static
        if sharded:
            if keep_all:  # blocks 0..i are still unsharded from forward
                gathered = sum(b.params for b in blocks[:i + 1])
            else:  # this block, and the previous one prefetched
                gathered = blocks[i].params + (prefetch * blocks[i - 1].params if i else 0)
            # This block's full gradient, and the next block's, whose reduce-scatter is in flight
            # (with backward prefetch it surely is; without, it may have finished while this
            # block's all-gather ran, so the analytic peak is then an upper bound).
            pending = blocks[i + 1].params if i + 1 < len(blocks) else 0
            buf += gathered * pb + (blocks[i].params + pending) * gb
        moment = Moment(f"backward {blocks[i].name}", live + acts.working[i], buf, static)
        if moment.bytes > best.bytes:
            best = moment
        live -= acts.blocks[i]
    return best


def static_buffer_bytes(scenario: Scenario, lay: layout.Layout, pb: int, gb: int) -> int:
    """Buffers held for the whole step."""
    t, p = scenario.training, scenario.model.params
    strategy = scenario.strategy
    if shard_degree(scenario) == 1 and strategy != "ddp":
        return 0
    if strategy == "ddp":
        # PyTorch DDP docs: with gradient_as_bucket_view=False the buckets hold a copy of every
        # gradient ("the saved memory size will be equal to the total gradients size").
        return 0 if t.gradient_as_bucket_view or scenario.cluster.num_gpus == 1 else p * gb
    if strategy in ("zero1", "zero2"):
        # DeepSpeed: one reduce bucket (gradients) and one all-gather bucket (updated weights).
        elements = min(p, DEEPSPEED_BUCKET_ELEMENTS)
        return elements * gb + elements * pb
    # ZeRO-3 / FSDP: the root unit stays unsharded through forward and backward, with its
    # full gradient until the final reduce-scatter.
    return lay.root_params * (pb + gb)

MAX_SUGGESTED_GPUS = 65536


def fit_suggestions(scenario: Scenario, limit: int = 4) -> list[str]:
    """Changes that make an OOM scenario fit, each checked with this same model, cheapest first."""
    if memory_breakdown(scenario).fits:
        return []
    found: list[str] = []
    order = ["ddp", "zero1", "zero2", "zero3"]
    current = order.index(scenario.strategy) if scenario.strategy in order else len(order) - 1
    for strategy in order[current + 1:]:
        if memory_breakdown(scenario.with_training(strategy=strategy)).fits:
            found.append(f"fits with strategy: {strategy} on the same {scenario.cluster.num_gpus} GPU(s)")
            break
    if scenario.training.activation_checkpointing != "full":
        for ckpt in ("selective", "full"):
            if ckpt != scenario.training.activation_checkpointing and memory_breakdown(
                    scenario.with_training(activation_checkpointing=ckpt)).fits:
                found.append(f"fits with activation_checkpointing: {ckpt}")
                break
    if scenario.training.micro_batch_size > 1 and memory_breakdown(
            scenario.with_training(micro_batch_size=1)).fits:
        found.append("fits with micro_batch_size: 1 (raise grad_accum_steps to keep the batch)")
    if scenario.strategy != "ddp" and scenario.training.offload.optimizer == "none":
        offloaded = scenario.with_training(offload=scenario.training.offload.model_copy(update={"optimizer": "cpu"}))
        if memory_breakdown(offloaded).fits:
            found.append("fits with offload: {optimizer: cpu} (ZeRO-Offload)")
    sharded = "hsdp" if scenario.strategy == "hsdp" else "zero3"
    t = scenario.training
    variants = [{}, {"activation_checkpointing": "full"}, {"activation_checkpointing": "full", "micro_batch_size": 1}]
    for extra in variants:
        changes = {k: v for k, v in extra.items() if getattr(t, k) != v}
        if extra and not changes:
            continue
        n = minimum_gpus(scenario.with_training(strategy=sharded, **changes))
        if n is not None and n > scenario.cluster.num_gpus:
            also = "".join(f" and {k}: {v}" for k, v in changes.items())
            found.append(f"fits with {sharded}{also} on >= {n} GPUs")
            break
    if not found:
        found.append("does not fit with zero3, full checkpointing or offload at any scale up to "
                     f"{MAX_SUGGESTED_GPUS} GPUs: pick a GPU with more memory or a smaller model")
    return found[:limit]


def minimum_gpus(scenario: Scenario) -> int | None:
    """Smallest GPU count (power of two) on which the scenario fits, or None up to the cap."""
    n = 1
    while n <= MAX_SUGGESTED_GPUS:
        if memory_breakdown(scenario.with_gpus(n)).fits:
            return n
        n *= 2
    return None
