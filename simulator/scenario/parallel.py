"""Resolving and validating `training.parallelism`: the degrees divide what they split (GPUs,
heads, KV heads, the FFN width, the vocabulary, the layers, the experts), the pipeline
schedule's rules hold, and the tensor-parallel group stays inside an NVLink domain unless
asked otherwise. Context and expert parallelism's own checks are in moe.py."""

from __future__ import annotations

from simulator.core.errors import Problem
from simulator.model.spec import ModelSpec
from simulator.scenario.moe import (
    check_context,
    check_experts,
    check_parallel_support,
    has_dense_layers,
)
from simulator.scenario.schema import ParallelismSection
from simulator.spec.specs import (
    DEFAULT_ORDER,
    ClusterSpec,
    ParallelSpec,
    PipelineSpec,
    TrainingSpec,
)

P = "training.parallelism"


def _divisors(n: int, cap: int | None = None) -> list[int]:
    return [d for d in range(1, (cap or n) + 1) if n % d == 0]


def _near(n: int, cap: int | None = None) -> str:
    shown = _divisors(n, cap)
    return "valid values: " + ", ".join(map(str, shown[:16])) + (", ..." if len(shown) > 16 else "")


def _order(p: ParallelismSection, problems: list[Problem]) -> tuple[str, ...] | None:
    """The mesh order, innermost first: tp, dp, pp each once, cp at most once (where not
    placed, right after tp when cp > 1: Megatron-Core's tp-cp-ep-dp-pp)."""
    order: tuple[str, ...] = tuple(p.order) if p.order else DEFAULT_ORDER
    if sorted(d for d in order if d != "cp") != sorted(DEFAULT_ORDER) or order.count("cp") > 1:
        problems.append(
            Problem(
                f"{P}.order",
                f"expected each of tp, dp, pp once (and cp at most once), got {list(order)}",
                "e.g. [tp, cp, dp, pp] (innermost first)",
            )
        )
        return None
    if p.cp > 1 and "cp" not in order:
        at = order.index("tp") + 1
        order = (*order[:at], "cp", *order[at:])
    return order


def parallel_spec(
    p: ParallelismSection, num_gpus: int, problems: list[Problem]
) -> ParallelSpec | None:
    """The layout, with dp = GPUs / (tp x cp x pp); None (and problems) if the degrees do not
    divide."""
    order = _order(p, problems)
    if order is None:
        return None
    model_parallel = p.tp * p.cp * p.pp
    if num_gpus % model_parallel:
        # Megatron-LM arguments.py validate_args: "world size is not divisible by total_model_size".
        problems.append(
            Problem(
                P,
                f"tp x cp x pp = {p.tp} x {p.cp} x {p.pp} = {model_parallel} does not divide "
                f"{num_gpus} GPUs",
                f"tp x cp x pp must divide the GPU count; {_near(num_gpus, 512)}",
            )
        )
        return None
    dp = num_gpus // model_parallel
    if not _experts_fit(p, dp, problems):
        return None
    pipe = p.pipeline
    if p.sequence_parallel and p.tp == 1:
        problems.append(
            Problem(
                f"{P}.sequence_parallel",
                "sequence parallelism splits along the tensor-parallel group, so it needs tp > 1",
                "set tp, or sequence_parallel: false",
            )
        )
    if p.tp_comm_overlap and not (p.sequence_parallel and p.tp > 1):
        # Megatron-LM arguments.py: "Tensor parallel communication/GEMM overlap can happen only
        # when sequence parallelism is enabled"
        problems.append(
            Problem(
                f"{P}.tp_comm_overlap",
                "the overlap hides sequence parallelism's all-gathers and reduce-scatters, so it "
                "needs tp > 1 and sequence_parallel: true",
                "set tp and sequence_parallel: true, or tp_comm_overlap: false",
            )
        )
    if pipe.virtual_stages > 1 and pipe.schedule != "interleaved-1f1b":
        problems.append(
            Problem(
                f"{P}.pipeline.virtual_stages",
                f"{pipe.virtual_stages} virtual stages need schedule: interleaved-1f1b",
                "or virtual_stages: 1",
            )
        )
    if pipe.schedule == "interleaved-1f1b" and p.pp == 1:
        problems.append(Problem(f"{P}.pipeline.schedule", "the interleaved schedule needs pp > 1"))
    return ParallelSpec(
        tp=p.tp,
        pp=p.pp,
        dp=dp,
        cp=p.cp,
        ep=p.ep,
        etp=p.etp,
        cp_comm=p.cp_comm,
        sequence_parallel=p.sequence_parallel,
        tp_comm_overlap=p.tp_comm_overlap,
        pipeline=PipelineSpec(
            schedule=pipe.schedule,
            virtual_stages=pipe.virtual_stages,
            layers_per_stage=tuple(pipe.layers_per_stage or ()),
        ),
        order=order,
        tp_across_nvlink_domains=p.tp_across_nvlink_domains,
    )


def _experts_fit(p: ParallelismSection, dp: int, problems: list[Problem]) -> bool:
    """The expert layers' etp x ep x edp folds over the tp x cp x dp ranks of each stage
    (Megatron-Core parallel_state.initialize_model_parallel: the world size must be divisible
    by etp x ep x pp)."""
    dense = p.tp * p.cp * dp
    if dense % (p.ep * p.etp):
        problems.append(
            Problem(
                f"{P}.ep",
                f"ep x etp = {p.ep} x {p.etp} = {p.ep * p.etp} does not divide the tp x cp x dp "
                f"= {dense} ranks of a pipeline stage the experts are folded over",
                f"ep x etp must divide {dense}; {_near(dense, 512)}",
            )
        )
        return False
    return True


def microbatches(
    p: ParallelismSection, grad_accum: int | None, problems: list[Problem]
) -> int | None:
    """pipeline.microbatches and grad_accum_steps are one number: either, or both equal."""
    m = p.pipeline.microbatches
    if m is not None and grad_accum is not None and m != grad_accum:
        problems.append(
            Problem(
                f"{P}.pipeline.microbatches",
                f"{m} micro-batches but grad_accum_steps is {grad_accum}: they are the same number",
                "give one of them",
            )
        )
    return m if m is not None else grad_accum


def check_model(model: ModelSpec, t: TrainingSpec, problems: list[Problem]) -> None:
    """The degrees against the model's shape."""
    par, arch = t.parallel, model.shape
    tp = par.tp
    check_parallel_support(model, t, problems)
    check_context(model, t, problems)
    check_experts(model, t, problems)
    if tp > 1:
        widths = [("attention heads", arch.num_heads), ("KV heads", arch.kv_heads)]
        if has_dense_layers(model):  # an MoE model's experts are checked against etp
            widths.append(("FFN width", arch.ffn_hidden_size))
        for what, n in widths:
            if n % tp:
                problems.append(
                    Problem(
                        f"{P}.tp",
                        f"tp {tp} does not divide the {n} {what} of {model.name}",
                        _near(n, 64),
                    )
                )
        if model.arch is not None and arch.vocab_size % tp:
            padded = -(-arch.vocab_size // (128 * tp)) * 128 * tp
            problems.append(
                Problem(
                    f"{P}.tp",
                    f"tp {tp} does not divide the vocabulary of {arch.vocab_size}",
                    f"Megatron pads it to a multiple of 128 x tp: set model.vocab_size: {padded}",
                )
            )
    _check_layers(model, par, problems)
    pipe, m = par.pipeline, t.grad_accum_steps
    if pipe.schedule == "interleaved-1f1b" and par.pp > 1 and m % par.pp:
        problems.append(
            Problem(
                f"{P}.pipeline.microbatches",
                f"the interleaved schedule needs the micro-batches "
                f"({m}) to be a multiple of pp ({par.pp}) (Narayanan et al. 2021, Sec 2.2.2)",
                f"use {max(par.pp, m - m % par.pp)} or {m + par.pp - m % par.pp}",
            )
        )


def _check_layers(model: ModelSpec, par: ParallelSpec, problems: list[Problem]) -> None:
    chunks = par.pp * par.pipeline.virtual_stages
    layers = model.num_layers
    if par.pp > 1 and model.kind == "encoder-decoder":
        problems.append(
            Problem(
                f"{P}.pp",
                "pipeline parallelism of encoder-decoder models is not modelled",
                "use pp: 1 (tensor and data parallelism apply)",
            )
        )
        return
    split = par.pipeline.layers_per_stage
    if split:
        if len(split) != chunks or sum(split) != layers:
            problems.append(
                Problem(
                    f"{P}.pipeline.layers_per_stage",
                    f"expected {chunks} entries (pp x "
                    f"virtual_stages) summing to {layers} layers, got {len(split)} summing to "
                    f"{sum(split)}",
                )
            )
    elif layers % chunks:
        problems.append(
            Problem(
                f"{P}.pp",
                f"pp x virtual_stages = {chunks} does not divide the {layers} layers "
                f"of {model.name}",
                f"{_near(layers, 64)}; or give pipeline.layers_per_stage",
            )
        )


def check_placement(par: ParallelSpec, c: ClusterSpec, problems: list[Problem]) -> None:
    """The tensor-parallel group must sit inside one NVLink domain (one host here)."""
    if par.tp == 1 or par.tp_across_nvlink_domains:
        return
    inner = 1
    for dim in par.order:
        if dim == "tp":
            break
        inner *= {"dp": par.dp, "pp": par.pp, "cp": par.cp}[dim]
    span = inner * par.tp  # consecutive ranks one tensor-parallel group stretches over
    if span > c.gpus_per_host or c.gpus_per_host % span:
        problems.append(
            Problem(
                f"{P}.tp",
                f"the tensor-parallel group spans {span} consecutive ranks, more than "
                f"the {c.gpus_per_host} GPUs of one NVLink domain (host)",
                f"use tp <= {c.gpus_per_host} innermost, or tp_across_nvlink_domains: true",
            )
        )
