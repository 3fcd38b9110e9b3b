"""Resolving a shape-checked scenario: the cluster (topology, GPU, stragglers, degraded links),
a custom architecture, batch arithmetic, and the checks that need several sections at once
(datatypes the GPU has, algorithms that apply to the step's groups, position limits)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.model.architecture import Architecture, Attention, MoE
from simulator.model.spec import ModelSpec
from simulator.scenario.algorithm_check import check_algorithm, check_dispatch_placement
from simulator.scenario.finetune import check_finetune
from simulator.scenario.parallel import check_model, check_placement
from simulator.scenario.power import gpu_power, power_cap
from simulator.scenario.recompute import check_recompute_modules
from simulator.scenario.schema import ArchitectureModel, TrainingSection
from simulator.scenario.schema_cluster import ClusterSection, CustomGPU
from simulator.scenario.schema_types import MAX_ACCUM
from simulator.spec.specs import ClusterSpec, DegradedLink, PowerSpec, Straggler, TrainingSpec
from simulator.system import hardware
from simulator.system.comm.calibration import NCCL_CALIBRATION, Calibration
from simulator.system.hardware.attention_table import kernels_of
from simulator.system.hardware.power import DEFAULT_PUE
from simulator.system.topology.loader import (
    TopologyInfos,
    load_topology,
    topology_info,
    topology_path,
)

# A custom GPU's fields that fall back to assumed values, and what is assumed (said in the report).
GPU_DEFAULTS = {
    "sm_count": "108 SMs (A100's)",
    "arch": "ampere (NCCL's A100 tables)",
    "pcie_bandwidth": "32 GB/s (PCIe Gen4 x16)",
    "cuda_context": "1 GiB",
    "efficiency.gemm": "A100's GEMM efficiency",
    "efficiency.memory": "A100's STREAM efficiency",
    "efficiency.attention": "A100's FlashAttention-2 efficiency",
    "efficiency.end_to_end": "A100's fitted end-to-end factor",
    "efficiency.kernel_launch": "4 us per kernel",
    "efficiency.gemm_table": "no per-shape table: tile and wave quantization",
    "efficiency.attention_table": "no attention table: efficiency.attention for every call",
}


def architecture(a: ArchitectureModel) -> Architecture:
    fields = a.model_dump(exclude={"moe", "attention"})
    if fields["ffn_hidden_size"] is None:
        fields["ffn_hidden_size"] = 4 * fields["hidden_size"]
    moe = MoE(**a.moe.model_dump()) if a.moe is not None else None
    attention = None
    if a.attention is not None:
        given = a.attention.model_dump(exclude_none=True)
        attention = Attention(**given)
    return Architecture(**fields, moe=moe, attention=attention)


def custom_gpu(
    g: CustomGPU, problems: list[Problem]
) -> tuple[hardware.GPU | None, tuple[str, ...]]:
    """A user's GPU, and which of its fields took assumed defaults."""
    key = g.name.strip().lower()
    if key in hardware.GPU_CATALOG or key in hardware.GPU_ALIASES:
        problems.append(
            Problem(
                "cluster.gpu.name",
                f"{g.name!r} is the name of a catalog GPU",
                "give your GPU another name, or use the catalog's by name",
            )
        )
        return None, ()
    base, e = hardware.A100_EFFICIENCY, g.efficiency
    eff = hardware.Efficiency(
        gemm=e.gemm or base.gemm,
        memory=e.memory or base.memory,
        attention=e.attention or base.attention,
        kernel_launch_s=e.kernel_launch if e.kernel_launch is not None else base.kernel_launch_s,
        end_to_end=e.end_to_end or base.end_to_end,
        gemm_table=e.gemm_table or "",
        attention_table=e.attention_table or "",
        source=f"user-defined ({g.source})"
        + ("; A100 figures where not given" if None in e.model_dump().values() else ""),
    )
    given = {
        "sm_count": g.sm_count,
        "arch": g.arch,
        "pcie_bandwidth": g.pcie_bandwidth,
        "cuda_context": g.cuda_context,
        **{f"efficiency.{k}": v for k, v in e.model_dump().items()},
    }
    assumed = tuple(f"{k}: {GPU_DEFAULTS[k]}" for k, v in given.items() if v is None)
    gpu = hardware.GPU(
        name=g.name,
        memory_bytes=g.memory,
        peak_flops=dict(g.peak_flops),
        hbm_bw_bytes_per_s=g.hbm_bandwidth,
        source=g.source,
        cuda_context_bytes=g.cuda_context
        if g.cuda_context is not None
        else hardware.DEFAULT_CUDA_CONTEXT_BYTES,
        pcie_bw_bytes_per_s=g.pcie_bandwidth or 32 * hardware.GBps,
        sm_count=g.sm_count or 108,
        arch=g.arch or "ampere",
        efficiency=eff,
        description="user-defined",
        power=gpu_power(g.power, None, "cluster.gpu.power", problems) if g.power else None,
    )
    return gpu, assumed


def _gpu(
    value, default: str, problems: list[Problem]
) -> tuple[hardware.GPU | None, tuple[str, ...]]:
    if isinstance(value, CustomGPU):
        return custom_gpu(value, problems)
    name = value or default
    try:
        return hardware.get_gpu(name), ()
    except KeyError:
        problems.append(
            Problem(
                "cluster.gpu",
                f"unknown GPU {name!r}",
                did_you_mean(name, [*hardware.gpu_names(), *hardware.GPU_ALIASES]),
            )
        )
        return None, ()


def cluster(
    c: ClusterSection,
    problems: list[Problem],
    base_dir: str | Path | None,
    infos: TopologyInfos | None = None,
) -> ClusterSpec | None:
    """The cluster section's spec (`infos`: a session's topology files already read)."""
    try:
        path = topology_path(c.topology, base_dir)
        info = infos.get(path, c.num_hosts) if infos else topology_info(path, c.num_hosts)
    except UserError as exc:
        # A problem inside the topology file names that file; a bad name is this field's, and
        # so is a host count the scenario gave (even when the loader names the file).
        for p in exc.sourced():
            if p.source and not (p.path == "num_hosts" and c.num_hosts is not None):
                problems.append(p)
            else:
                field = "cluster.num_hosts" if p.path == "num_hosts" else "cluster.topology"
                problems.append(Problem(field, p.message, p.hint))
        return None
    gpu, assumed = _gpu(c.gpu, info.gpu, problems)
    num_gpus = c.num_gpus or info.num_gpus
    if num_gpus > info.num_gpus:
        problems.append(
            Problem(
                "cluster.num_gpus",
                f"{num_gpus} GPUs requested but {info.num_hosts} host(s) of "
                f"{c.topology} have {info.num_gpus}",
                f"raise cluster.num_hosts to {math.ceil(num_gpus / info.gpus_per_host)}",
            )
        )
        return None
    stragglers = _stragglers(c, num_gpus, problems)
    links = _degraded_links(c, str(path), info.num_hosts, problems)
    if gpu is not None and c.power.gpu is not None:
        gpu = dataclasses.replace(
            gpu, power=gpu_power(c.power.gpu, gpu.power, "cluster.power.gpu", problems)
        )
    if gpu is None:
        return None
    cap = power_cap(c.power_cap, gpu, problems)
    return ClusterSpec(
        topology_name=c.topology,
        topology_ref=str(path),
        gpu=gpu,
        gpu_defaults=assumed,
        num_hosts=info.num_hosts,
        gpus_per_host=info.gpus_per_host,
        num_gpus=num_gpus,
        price_per_gpu_hour=c.price_per_gpu_hour,
        stragglers=stragglers,
        degraded_links=links,
        power=PowerSpec(
            host_w=c.power.host,
            pue=c.power.pue if c.power.pue is not None else DEFAULT_PUE,
            electricity_usd_per_kwh=c.power.electricity_usd_per_kwh,
            grid_kg_co2_per_kwh=c.power.grid_kg_co2_per_kwh,
        ),
        power_cap_w=cap,
    )


def _stragglers(c: ClusterSection, num_gpus: int, problems: list[Problem]) -> tuple[Straggler, ...]:
    seen: set[int] = set()
    for i, st in enumerate(c.stragglers):
        if st.rank >= num_gpus:
            problems.append(
                Problem(
                    f"cluster.stragglers.{i}.rank",
                    f"rank {st.rank} does not exist",
                    f"ranks are 0..{num_gpus - 1}",
                )
            )
        elif st.rank in seen:
            problems.append(
                Problem(f"cluster.stragglers.{i}.rank", f"rank {st.rank} is listed twice")
            )
        seen.add(st.rank)
    return tuple(Straggler(rank=st.rank, slowdown=st.slowdown) for st in c.stragglers)


def _degraded_links(
    c: ClusterSection, path: str, num_hosts: int, problems: list[Problem]
) -> tuple[DegradedLink, ...]:
    if not c.degraded_links:
        return ()
    topo = load_topology(path, num_hosts=num_hosts)  # vertex names are only known once built
    vertices, edges = {v for v, _, _ in topo.vertices}, set(topo.edges)
    for i, link in enumerate(c.degraded_links):
        for end in ("source", "target"):
            name = getattr(link, end)
            if name not in vertices:
                problems.append(
                    Problem(
                        f"cluster.degraded_links.{i}.{end}",
                        f"no vertex {name!r} in the topology",
                        did_you_mean(name, sorted(vertices)) + "; `clustersim topology show "
                        f"{c.topology} --vertices` lists them",
                    )
                )
        if (
            link.source in vertices
            and link.target in vertices
            and (link.source, link.target) not in edges
        ):
            problems.append(
                Problem(f"cluster.degraded_links.{i}", f"no link {link.source} -> {link.target}")
            )
    return tuple(
        DegradedLink(
            source=d.source,
            target=d.target,
            bandwidth_factor=d.bandwidth_factor,
            both_directions=d.both_directions,
        )
        for d in c.degraded_links
    )


def accumulation(t: TrainingSection, accum: int | None, dp: int, problems: list[Problem]) -> int:
    """Micro-batches per step from grad_accum_steps (or pipeline.microbatches) or global_batch_size;
    the global batch is micro_batch_size x micro-batches x the data-parallel degree."""
    per_step = t.micro_batch_size * dp
    if t.global_batch_size is None:
        return accum or 1
    if accum is not None and accum * per_step != t.global_batch_size:
        problems.append(
            Problem(
                "training.global_batch_size",
                f"{t.global_batch_size} sequences != "
                f"micro_batch_size x micro-batches x data-parallel degree = {accum * per_step}",
                "give either grad_accum_steps or global_batch_size",
            )
        )
    elif t.global_batch_size // per_step > MAX_ACCUM:
        problems.append(_too_many_microbatches(t, per_step))
        return 1
    elif t.global_batch_size % per_step:
        problems.append(
            Problem(
                "training.global_batch_size",
                f"{t.global_batch_size} sequences is not a "
                f"multiple of micro_batch_size x data-parallel degree = {per_step}",
                f"use a multiple of {per_step}",
            )
        )
    return max(1, t.global_batch_size // per_step)


def _too_many_microbatches(t: TrainingSection, per_step: int) -> Problem:
    """global_batch_size / (micro_batch_size x dp) micro-batches, each simulated, beyond MAX_ACCUM;
    a batch that is a multiple of seq_len that large is most likely tokens, not sequences."""
    gbs = t.global_batch_size
    assert gbs is not None  # called only with a global batch
    steps = gbs // per_step
    hint = (
        f"at most {MAX_ACCUM * per_step} sequences here; raise micro_batch_size or the data-parallel "
        "degree"
    )
    if gbs % t.seq_len == 0:
        hint = (
            f"global_batch_size counts sequences, not tokens: {gbs} = {gbs // t.seq_len} x seq_len "
            f"{t.seq_len}; if you meant {gbs} tokens, write global_batch_size: {gbs // t.seq_len}"
        )
    return Problem(
        "training.global_batch_size",
        f"{gbs} sequences / (micro_batch_size {t.micro_batch_size} x "
        f"data-parallel degree {per_step // t.micro_batch_size}) = {steps} micro-batches per step, more "
        f"than the {MAX_ACCUM} clustersim simulates",
        hint,
    )


def check_compat(
    model: ModelSpec,
    t: TrainingSpec,
    c: ClusterSpec,
    problems: list[Problem],
    warnings: list[str],
    comm: Calibration = NCCL_CALIBRATION,
) -> None:
    """Checks across sections: the GPU's datatypes, the forced algorithm, position limits.
    `comm`: the collective calibration the run will use (its per-architecture NVLS figures)."""
    gpu = c.gpu
    for dtype in dict.fromkeys((t.precision.gemm_dtype, t.precision.attention_dtype)):
        if not gpu.supports(dtype):
            have = ", ".join(sorted(gpu.peak_flops))
            problems.append(
                Problem(
                    "training.precision",
                    f"{gpu.name} has no {dtype} units (it has {have})",
                    "pick a precision the GPU supports, e.g. fp16-mixed on V100",
                )
            )
    _check_attention_kernel(t, c, problems)
    check_model(model, t, problems)
    check_finetune(model, t, problems)
    check_recompute_modules(model, t, problems)
    check_placement(t.parallel, c, problems)
    if not problems:  # the groups below assume degrees that divide
        check_algorithm(t, c, comm, problems)
        check_dispatch_placement(t, c, problems)
    _check_positions(model, t, problems, warnings)


def _check_attention_kernel(t: TrainingSpec, c: ClusterSpec, problems: list[Problem]) -> None:
    """A fused attention kernel needs flash attention on; one other than FlashAttention-2 needs
    the GPU's published figures for it."""
    kernel = t.attention_kernel
    if kernel is None:
        return
    if not t.flash_attention:
        problems.append(
            Problem(
                "training.attention_kernel",
                f"{kernel} is a fused attention kernel, but training.flash_attention is false "
                "(the attention runs unfused: its GEMMs and softmax)",
                "set flash_attention: true, or leave attention_kernel out",
            )
        )
        return
    if kernel == "flash-attention-2":
        return
    have = kernels_of(c.gpu.efficiency.attention_table)
    if kernel not in have:
        problems.append(
            Problem(
                "training.attention_kernel",
                f"no published {kernel} figures for {c.gpu.name}"
                + (f" (its table has {', '.join(have)})" if have else ""),
                "use flash-attention-2, or a GPU with an attention table (H100, H800, H200)",
            )
        )


def _check_positions(
    model: ModelSpec, t: TrainingSpec, problems: list[Problem], warnings: list[str]
) -> None:
    arch = model.arch
    if (
        arch is None
        or not arch.max_position_embeddings
        or t.seq_len <= arch.max_position_embeddings
    ):
        return
    limit = arch.max_position_embeddings
    if arch.position_embedding == "learned":
        problems.append(
            Problem(
                "training.seq_len",
                f"{t.seq_len} tokens exceed the {limit} rows of "
                f"{model.name}'s learned position table",
                f"train at <= {limit}, or give model.architecture with a larger "
                "max_position_embeddings (the table grows with it)",
            )
        )
    else:
        warnings.append(
            f"seq_len {t.seq_len} is beyond the {limit} tokens {model.name} was trained at "
            f"({arch.position_embedding} positions extrapolate, but quality is not modelled)"
        )
