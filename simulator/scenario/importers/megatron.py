"""A Megatron-LM argument list -> model.architecture and training (framework megatron).

Read from a file of `--flag value` lines (an arguments file, or a launch script whose argument
arrays put one flag per line, as Megatron-LM's examples/*.sh do) or from one string. Only lines
that start with `--` are read; a value that is a shell variable (`$X`) cannot be read. Flag
names, defaults and rules follow megatron/training/arguments.py: hidden and attention dropout
default to 0.1, the vocabulary comes from the tokenizer padded to a multiple of
--make-vocab-size-divisible-by (128) x tp, sequence parallelism is switched off at tp 1, the
MoE FFN width defaults to --ffn-hidden-size, and without --bf16 / --fp16 training is in fp32.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from simulator.scenario.importers.base import Partial

ARCH, TR, PAR = "model.architecture", "training", "training.parallelism"

# flag -> (scenario key, converter); values as Megatron reads them.
_DIRECT: dict[str, tuple[str, Any]] = {
    "num-layers": (f"{ARCH}.num_layers", int),
    "hidden-size": (f"{ARCH}.hidden_size", int),
    "ffn-hidden-size": (f"{ARCH}.ffn_hidden_size", int),
    "num-attention-heads": (f"{ARCH}.num_heads", int),
    "kv-channels": (f"{ARCH}.head_dim", int),
    "max-position-embeddings": (f"{ARCH}.max_position_embeddings", int),
    "seq-length": (f"{TR}.seq_len", int),
    "micro-batch-size": (f"{TR}.micro_batch_size", int),
    "global-batch-size": (f"{TR}.global_batch_size", int),
    "tensor-model-parallel-size": (f"{PAR}.tp", int),
    "pipeline-model-parallel-size": (f"{PAR}.pp", int),
    "context-parallel-size": (f"{PAR}.cp", int),
    "expert-model-parallel-size": (f"{PAR}.ep", int),
    "expert-tensor-parallel-size": (f"{PAR}.etp", int),
    "virtual-pipeline-model-parallel-size": (f"{PAR}.pipeline.virtual_stages", int),
    "num-experts": (f"{ARCH}.moe.num_experts", int),
    "moe-router-topk": (f"{ARCH}.moe.experts_per_token", int),
    "moe-ffn-hidden-size": (f"{ARCH}.moe.expert_ffn_hidden_size", int),
    "moe-shared-expert-intermediate-size": (f"{ARCH}.moe.shared_expert_ffn_hidden_size", int),
    "moe-expert-capacity-factor": (f"{ARCH}.moe.capacity_factor", float),
    "moe-router-num-groups": (f"{ARCH}.moe.router_groups", int),
    "moe-router-group-topk": (f"{ARCH}.moe.router_group_topk", int),
    "moe-token-dispatcher-type": (f"{TR}.moe.dispatcher", str),
    "q-lora-rank": (f"{ARCH}.attention.q_lora_rank", int),
    "kv-lora-rank": (f"{ARCH}.attention.kv_lora_rank", int),
    "qk-head-dim": (f"{ARCH}.head_dim", int),
    "qk-pos-emb-head-dim": (f"{ARCH}.attention.rope_head_dim", int),
    "v-head-dim": (f"{ARCH}.attention.v_head_dim", int),
    "mtp-num-layers": (f"{ARCH}.mtp_layers", int),
    "vocab-size": (f"{ARCH}.vocab_size", int),
    "ddp-bucket-size": (f"{TR}.megatron.bucket_size", int),
}
# switches (no value) -> (scenario key, value)
_SWITCHES: dict[str, tuple[str, Any]] = {
    "swiglu": (f"{ARCH}.ffn", "swiglu"),
    "untie-embeddings-and-output-weights": (f"{ARCH}.tied_embeddings", False),
    "disable-bias-linear": (f"{ARCH}.bias", False),
    "add-qkv-bias": (f"{ARCH}.qkv_bias", True),
    "qk-layernorm": (f"{ARCH}.qk_norm", True),
    "sequence-parallel": (f"{PAR}.sequence_parallel", True),
    "tp-comm-overlap": (f"{PAR}.tp_comm_overlap", True),
    "overlap-grad-reduce": (f"{TR}.megatron.overlap_grad_reduce", True),
    "overlap-param-gather": (f"{TR}.megatron.overlap_param_gather", True),
    "accumulate-allreduce-grads-in-fp32": (f"{TR}.megatron.grad_reduce_in_fp32", True),
    "moe-router-enable-expert-bias": (f"{ARCH}.moe.router_bias", True),
    "multi-latent-attention": (f"{ARCH}.attention.kind", "mla"),
    "bf16": (f"{TR}.precision", "bf16-mixed"),
    "fp16": (f"{TR}.precision", "fp16-mixed"),
    "use-flash-attn": (f"{TR}.flash_attention", True),
}
# Read together with other flags below.
_READ = (
    "group-query-attention",
    "num-query-groups",
    "normalization",
    "position-embedding-type",
    "no-position-embedding",
    "tokenizer-type",
    "make-vocab-size-divisible-by",
    "use-distributed-optimizer",
    "recompute-activations",
    "recompute-granularity",
    "recompute-method",
    "recompute-num-layers",
    "num-layers-per-virtual-pipeline-stage",
    "moe-layer-freq",
    "fp8-format",
    "hidden-dropout",
    "attention-dropout",
    "clip-grad",
    "optimizer",
    "attention-backend",
)
_IGNORED_PREFIXES = {
    ("lr", "min-lr", "lr-", "weight-decay", "adam-", "init-method", "seed"): (
        "optimisation hyper-parameters"
    ),
    ("train-iters", "train-samples", "eval-", "log-", "save", "load", "no-load", "wandb"): (
        "run length, evaluation, logging and checkpoint files"
    ),
    ("data-", "split", "mock-data", "tokenizer-model", "vocab-file", "merge-file"): "data files",
    ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port"): (
        "torchrun's launch flags: the GPUs come from --topology / --num-hosts / --num-gpus"
    ),
    ("tensorboard", "timing-log", "profile"): "logging",
    ("use-mcore-models", "transformer-impl", "no-masked-softmax-fusion", "no-bias-"): (
        "kernel and implementation choices with the same shapes"
    ),
    ("rotary-", "rope-"): "rotary frequencies: no parameters",
    ("moe-router-load-balancing-type", "moe-aux-loss-coeff", "moe-z-loss", "moe-grouped-gemm"): (
        "routing losses and kernel grouping"
    ),
    ("moe-router-score-function", "moe-router-topk-scaling-factor", "moe-router-dtype"): (
        "router numerics"
    ),
    ("fp8-amax", "fp8-margin", "fp8-recipe", "attention-softmax-in-fp32"): "numerics",
    ("distributed-backend", "distributed-timeout", "ckpt-", "exit-", "manual-gc"): "runtime",
}
# Megatron-LM tokenizers' vocabularies (megatron/training/tokenizer): GPT-2 BPE 50,257; the
# Llama 2 SentencePiece model 32,000.
_TOKENIZER_VOCAB = {"GPT2BPETokenizer": 50257, "Llama2Tokenizer": 32000}


def is_megatron(text: str) -> bool:
    flags = {f for f, _ in parse(text)}
    return bool(flags & {"num-layers", "hidden-size", "tensor-model-parallel-size"})


def parse(text: str) -> list[tuple[str, str | None]]:
    """(flag without dashes, value or None) for every flag on a line that starts with `--`."""
    pairs: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        if not line.strip().startswith("--"):
            continue
        try:
            words = shlex.split(line.replace("\\\n", " "), comments=True)
        except ValueError:
            words = line.split()
        words = [w for w in words if w != "\\"]
        for i, word in enumerate(words):
            if not word.startswith("--"):
                continue
            flag, eq, inline = word[2:].partition("=")
            nxt = words[i + 1] if i + 1 < len(words) else None
            value = (
                inline if eq else (nxt if nxt is not None and not nxt.startswith("--") else None)
            )
            pairs.append((flag, value))
    return pairs


def import_megatron(text: str, source: str) -> Partial:
    p = Partial(source, "Megatron-LM arguments")
    args = dict(parse(text))
    p.assignments += [(f"{TR}.framework", "megatron", "")]
    for flag, value in args.items():
        key = f"--{flag}"
        if value is not None and "$" in value:
            if flag in _DIRECT or flag in _READ:
                p.refuse(key, value, "a shell variable: give the value itself")
            else:
                p.ignore(key, value, "a shell variable" + _why_ignored(flag, ""))
            continue
        if flag in _DIRECT:
            target, convert = _DIRECT[flag]
            try:
                p.map(key, value, target, convert(value))
            except (TypeError, ValueError):
                p.refuse(key, value, f"expected a {convert.__name__}")
        elif flag in _SWITCHES:
            target, scenario_value = _SWITCHES[flag]
            p.map(key, None, target, scenario_value)
        elif flag not in _READ:
            why = _why_ignored(flag, "")
            if why:
                p.ignore(key, value, why.removeprefix(": "))
            else:
                p.unknown(key, value, [f"--{f}" for f in (*_DIRECT, *_SWITCHES, *_READ)])
    _model(args, p)
    _training(args, p)
    recorded = {e.key for e in p.entries}
    for flag, value in args.items():
        if f"--{flag}" not in recorded:
            p.ignore(f"--{flag}", value, "read with the flags it qualifies; no effect here")
    return p


def _why_ignored(flag: str, default: str) -> str:
    for prefixes, why in _IGNORED_PREFIXES.items():
        if flag.startswith(prefixes):
            return f": {why}"
    return default


def _model(args: dict[str, str | None], p: Partial) -> None:
    heads = args.get("num-attention-heads")
    if "group-query-attention" in args:
        groups = args.get("num-query-groups") or "1"
        p.note("--group-query-attention", None, f"{ARCH}.num_kv_heads")
        p.map("--num-query-groups", groups, f"{ARCH}.num_kv_heads", int(groups))
    elif "num-query-groups" in args:
        p.ignore("--num-query-groups", args["num-query-groups"], "without --group-query-attention")
    elif heads is not None and "multi-latent-attention" not in args:
        p.assignments.append((f"{ARCH}.num_kv_heads", int(heads), "num-attention-heads"))
    norm = args.get("normalization", "LayerNorm")
    if "normalization" in args:
        names = {"LayerNorm": "layernorm", "RMSNorm": "rmsnorm"}
        if norm in names:
            p.map("--normalization", norm, f"{ARCH}.norm", names[str(norm)])
        else:
            p.refuse("--normalization", norm, "LayerNorm or RMSNorm")
    position = args.get("position-embedding-type", "learned_absolute")
    kinds = {"rope": "rotary", "learned_absolute": "learned"}
    if "position-embedding-type" in args and position not in kinds:
        p.refuse("--position-embedding-type", position, "rope or learned_absolute")
    else:
        target = kinds.get(str(position), "learned")
        if "position-embedding-type" in args:
            p.map("--position-embedding-type", position, f"{ARCH}.position_embedding", target)
        else:
            p.assignments.append((f"{ARCH}.position_embedding", target, "default"))
    if "no-position-embedding" in args:
        p.note("--no-position-embedding", None, f"{ARCH}.position_embedding", "no learned table")
    if "swiglu" not in args:
        p.assignments.append((f"{ARCH}.ffn", "gelu", "default"))
    for key, default in (("tied_embeddings", True), ("bias", True)):
        p.assignments.append((f"{ARCH}.{key}", default, "default"))
    if "num-experts" in args and "moe-ffn-hidden-size" not in args and "ffn-hidden-size" in args:
        width = int(args["ffn-hidden-size"] or 0)
        p.assignments.append((f"{ARCH}.moe.expert_ffn_hidden_size", width, "ffn-hidden-size"))
    freq = args.get("moe-layer-freq")
    if freq is not None:
        if freq.isdigit():
            p.map("--moe-layer-freq", freq, f"{ARCH}.moe.layer_frequency", int(freq))
        else:
            p.refuse("--moe-layer-freq", freq, "a per-layer pattern is not modelled")
    _vocab(args, p)
    dropout = [args.get(k) for k in ("hidden-dropout", "attention-dropout")]
    on = any(float(v) > 0 if v is not None else True for v in dropout)
    for key in ("hidden-dropout", "attention-dropout"):
        if key in args:
            p.map(f"--{key}", args[key], f"{TR}.dropout", on, "Megatron's default rate is 0.1")
    if not any(k in args for k in ("hidden-dropout", "attention-dropout")):
        p.assignments.append((f"{TR}.dropout", True, "default: Megatron's dropout 0.1"))


def _vocab(args: dict[str, str | None], p: Partial) -> None:
    tokenizer = args.get("tokenizer-type")
    if "vocab-size" in args:
        if tokenizer is not None:
            p.ignore("--tokenizer-type", tokenizer, "--vocab-size gives the vocabulary")
        return
    if tokenizer is None:
        return
    if tokenizer not in _TOKENIZER_VOCAB:
        p.ignore("--tokenizer-type", tokenizer, "its vocabulary is not known: give --vocab-size")
        return
    multiple = int(args.get("make-vocab-size-divisible-by") or 128)
    multiple *= int(args.get("tensor-model-parallel-size") or 1)
    padded = math.ceil(_TOKENIZER_VOCAB[tokenizer] / multiple) * multiple
    why = f"{_TOKENIZER_VOCAB[tokenizer]:,} tokens padded to a multiple of {multiple}"
    p.map("--tokenizer-type", tokenizer, f"{ARCH}.vocab_size", padded, why)
    if "make-vocab-size-divisible-by" in args:
        p.note("--make-vocab-size-divisible-by", args["make-vocab-size-divisible-by"], "")


def _training(args: dict[str, str | None], p: Partial) -> None:
    if "clip-grad" in args:  # the max norm (default 1.0); 0 does not clip
        try:
            clip = float(args["clip-grad"] or "")
        except ValueError:
            p.refuse("--clip-grad", args["clip-grad"], "expected a number (the max norm)")
        else:
            p.map("--clip-grad", args["clip-grad"], f"{TR}.gradient_clipping", clip > 0)
    distributed = "use-distributed-optimizer" in args
    p.assignments.append((f"{TR}.strategy", "zero1" if distributed else "ddp", ""))
    if distributed:
        p.note("--use-distributed-optimizer", None, f"{TR}.strategy", "zero1")
    tp = int(args.get("tensor-model-parallel-size") or 1)
    if "sequence-parallel" in args and tp == 1:
        p.entries.pop(next(i for i, e in enumerate(p.entries) if e.key == "--sequence-parallel"))
        p.assignments = [a for a in p.assignments if a[2] != "--sequence-parallel"]
        p.ignore("--sequence-parallel", None, "Megatron switches it off at tensor parallelism 1")
    if "fp8-format" in args:
        p.map("--fp8-format", args["fp8-format"], f"{TR}.precision", "fp8-mixed")
    elif "bf16" not in args and "fp16" not in args:
        p.assignments.append((f"{TR}.precision", "fp32", "--bf16 / --fp16 absent: fp32"))
    optimizer = args.get("optimizer", "adam")
    if "optimizer" in args:
        names = {"adam": "adamw", "sgd": "sgd-momentum"}
        if optimizer in names:
            p.map("--optimizer", optimizer, f"{TR}.optimizer", names[str(optimizer)])
        else:
            p.refuse("--optimizer", optimizer, "adam or sgd")
    else:
        p.assignments.append((f"{TR}.optimizer", "adamw", "default: Megatron's adam is AdamW"))
    _attention_backend(args, p)
    _recompute(args, p)
    per_chunk = args.get("num-layers-per-virtual-pipeline-stage")
    if per_chunk is not None:
        layers, pp = (
            int(args.get("num-layers") or 0),
            int(args.get("pipeline-model-parallel-size") or 1),
        )
        chunks = layers // (pp * int(per_chunk)) if int(per_chunk) else 0
        p.map(
            "--num-layers-per-virtual-pipeline-stage",
            per_chunk,
            f"{PAR}.pipeline.virtual_stages",
            chunks,
            "num-layers / (pp x this)",
        )
    if per_chunk is not None or "virtual-pipeline-model-parallel-size" in args:
        p.assignments.append((f"{PAR}.pipeline.schedule", "interleaved-1f1b", "virtual stages"))


def _attention_backend(args: dict[str, str | None], p: Partial) -> None:
    """--attention-backend (Megatron-Core's AttnBackend): fused is Transformer Engine's cuDNN
    FusedAttention, flash its FlashAttention backend, unfused and local the unfused attention;
    auto leaves Transformer Engine's choice (cuDNN on Hopper), the scenario's default."""
    if "attention-backend" not in args:
        return
    backend = args["attention-backend"]
    kernels = {"fused": "cudnn", "flash": "flash-attention-2"}
    if backend in kernels:
        why = "FlashAttention-3 only where flash-attn 3 is installed" if backend == "flash" else ""
        p.map("--attention-backend", backend, f"{TR}.attention_kernel", kernels[str(backend)], why)
    elif backend in ("unfused", "local"):
        p.map("--attention-backend", backend, f"{TR}.flash_attention", False, "unfused attention")
    elif backend == "auto":
        p.ignore("--attention-backend", backend, "Transformer Engine's choice, the default")
    else:
        p.refuse("--attention-backend", backend, "flash, fused, unfused, local or auto")


def _recompute(args: dict[str, str | None], p: Partial) -> None:
    granularity = args.get("recompute-granularity")
    if "recompute-activations" in args:
        p.map("--recompute-activations", None, f"{TR}.activation_checkpointing", "selective")
    if granularity == "selective":
        p.map("--recompute-granularity", granularity, f"{TR}.activation_checkpointing", "selective")
    elif granularity == "full":
        method, count = args.get("recompute-method"), args.get("recompute-num-layers")
        layers = int(args.get("num-layers") or 0)
        pp = int(args.get("pipeline-model-parallel-size") or 1)
        whole = (
            method == "uniform"
            and count in (None, "1")
            or (method == "block" and count is not None and int(count) >= layers // pp)
        )
        if whole:
            p.map("--recompute-granularity", granularity, f"{TR}.activation_checkpointing", "full")
            for key in ("recompute-method", "recompute-num-layers"):
                if key in args:
                    p.note(f"--{key}", args[key], f"{TR}.activation_checkpointing", "every layer")
        else:
            p.refuse(
                "--recompute-granularity",
                f"full ({method}, {count} layers)",
                "full recomputation of only some layers is not modelled",
            )
    elif granularity is not None:
        p.refuse("--recompute-granularity", granularity, "full or selective")
