"""Settings a scenario gives that its strategy or layout would ignore.

A knob the chosen strategy does not read would make the report answer another question than
the file asks (a `zero3:` section under zero2 changes nothing; a shard group size under zero3
shards over every GPU anyway), so each is an error naming the field and what to do instead.
Only settings written in the file are checked: a default is never "given".
Framework sections under another framework are checked in framework.py; offload in each
strategy's validate.
"""

from __future__ import annotations

from simulator.core.errors import Problem
from simulator.execution.strategies import ALIASES
from simulator.scenario.schema import ModelSection, TrainingSection

# Strategies that read training.zero3 (PyTorch FSDP's FULL_SHARD / HYBRID_SHARD knobs).
_FSDP = ("zero3", "hsdp")
# Frameworks whose DDP is PyTorch's (bucket_size / gradient_as_bucket_view); deepspeed and
# megatron are refused in framework.py with their own bucket option named.
_TORCH = ("pytorch-fsdp", "pytorch-fsdp2")


def model_problems(m: ModelSection) -> list[Problem]:
    """num_layers / hidden_size shape a bare parameter count; a preset or architecture has its own."""
    source = (
        "preset" if m.preset is not None else "architecture" if m.architecture is not None else None
    )
    if source is None:
        return []
    where = "model.architecture" if source == "architecture" else f"preset {m.preset}"
    return [
        Problem(
            f"model.{key}",
            f"applies with model.params only; the {source} sets it (ignored here)",
            f"remove model.{key}, or change it in {where}"
            if source == "architecture"
            else f"remove model.{key} ({where} has its own), or describe the model as model.architecture",
        )
        for key in ("num_layers", "hidden_size")
        if getattr(m, key) is not None
    ]


def training_problems(t: TrainingSection, strategy: str, framework: str) -> list[Problem]:
    """Knobs of another strategy, and a sequence that sequence or context parallelism cannot
    split."""
    problems = []
    if framework == "pytorch-fsdp" and strategy not in _FSDP:
        problems += [
            Problem(
                f"training.zero3.{key}",
                f"a PyTorch FSDP option (strategy zero3 or hsdp); strategy {strategy} ignores it",
                "remove training.zero3, or use strategy: zero3 or hsdp",
            )
            for key in sorted(t.zero3.model_fields_set)
        ]
    if t.shard_group_size is not None and strategy != "hsdp":
        shards = {"zero3": "zero3 shards over the whole data-parallel group"}.get(
            strategy, f"{strategy} has no shard groups"
        )
        problems.append(
            Problem(
                "training.shard_group_size",
                f"GPUs per shard group of strategy hsdp; {shards}",
                "remove it, or use strategy: hsdp",
            )
        )
    if framework in _TORCH and strategy != "ddp":
        problems += [
            Problem(
                f"training.{key}",
                f"a PyTorch DDP option; strategy {strategy} has no DDP gradient buckets",
                "remove it, or use strategy: ddp",
            )
            for key in ("gradient_as_bucket_view", "ddp_comm_hook")
            if key in t.model_fields_set
        ]
    par = t.parallelism
    if par.cp > 1:
        problems += _context_split(t)
    elif par.sequence_parallel and par.tp > 1 and t.seq_len % par.tp:
        low, high = t.seq_len - t.seq_len % par.tp, t.seq_len + par.tp - t.seq_len % par.tp
        problems.append(
            Problem(
                "training.seq_len",
                f"sequence parallelism splits each sequence over the tp {par.tp} "
                f"ranks; {t.seq_len} tokens is not a multiple of {par.tp}",
                f"use seq_len {low or par.tp} or {high}, or parallelism.sequence_parallel: false",
            )
        )
    return problems


def _context_split(t: TrainingSection) -> list[Problem]:
    """Megatron-Core's load-balanced causal split cuts each sequence into 2 x cp chunks, each cp
    rank taking chunk i and 2 x cp - 1 - i (megatron/core/utils.py get_batch_on_this_cp_rank;
    megatron/training/arguments.py: "seq-length should be a multiple of 2 *
    context-parallel-size"); sequence parallelism then splits a rank's tokens over tp
    (megatron/core/models/multimodal/context_parallel.py pads to tp x cp x 2 with CP + SP)."""
    par = t.parallelism
    sp = par.sequence_parallel and par.tp > 1
    unit = 2 * par.cp * (par.tp if sp else 1)
    if t.seq_len % unit == 0:
        return []
    low, high = t.seq_len - t.seq_len % unit, t.seq_len + unit - t.seq_len % unit
    what = f"2 x cp x tp = 2 x {par.cp} x {par.tp}" if sp else f"2 x cp = 2 x {par.cp}"
    return [
        Problem(
            "training.seq_len",
            f"context parallelism splits each sequence into {what} = {unit} pieces; "
            f"{t.seq_len} tokens is not a multiple of {unit}",
            f"use seq_len {low or unit} or {high}",
        )
    ]


def bucket_problems(
    t: TrainingSection, strategy: str, framework: str, shard_degree: int
) -> list[Problem]:
    """bucket_size is PyTorch DDP's bucket_cap_mb: read by ddp, and by FSDP only when its shard
    group is one rank (then it reduces like DDP). zero1 / zero2 use DeepSpeed's bucket."""
    if framework not in _TORCH or strategy == "ddp" or "bucket_size" not in t.model_fields_set:
        return []
    if strategy in _FSDP and shard_degree == 1:
        return []
    instead = (
        "ZeRO-1/2 buckets are DeepSpeed's: set training.framework: deepspeed and "
        "training.deepspeed.reduce_bucket_size"
        if strategy in ("zero1", "zero2")
        else "FSDP communicates per wrapped block, not in buckets: remove it"
    )
    return [
        Problem(
            "training.bucket_size",
            f"PyTorch DDP's bucket cap; strategy {strategy} ignores it",
            instead,
        )
    ]


def foreign_knobs(strategy: str) -> tuple[str, ...]:
    """The training keys strategy `strategy` (a name or alias) does not read: what `derive` drops
    when it moves a scenario to another strategy (the planner's and sweeps' comparisons)."""
    name = ALIASES.get(strategy.strip().lower(), strategy.strip().lower())
    keys = []
    if name not in _FSDP:
        keys.append("zero3")
    if name != "hsdp":
        keys.append("shard_group_size")
    if name != "ddp":
        keys += ["bucket_size", "gradient_as_bucket_view", "ddp_comm_hook"]
    return tuple(f"training.{k}" for k in keys)
