"""training.framework and its option section -> FrameworkSpec, with the checks that an option
belongs to the chosen framework and makes sense for the chosen strategy.

A section of another framework (training.deepspeed under pytorch-fsdp), PyTorch FSDP's
training.zero3 or PyTorch DDP's bucket options under a framework that does not have them, and
a ZeRO-3 knob with a ZeRO-1/2 strategy are errors naming the field and what to use instead.
"""

from __future__ import annotations

import dataclasses

from simulator.core.errors import Problem
from simulator.execution.frameworks import FRAMEWORKS
from simulator.scenario.schema import TrainingSection
from simulator.scenario.schema_framework import FRAMEWORK_SECTIONS
from simulator.spec.specs import (
    DEFAULT_FRAMEWORK,
    DeepSpeedSpec,
    FrameworkSpec,
    Fsdp2Spec,
    MegatronSpec,
)

# PyTorch FSDP's training.zero3 knobs under FSDP2: what FSDP2 does instead.
_FSDP2_INSTEAD = {
    "reshard_after_forward": "FSDP2's is training.fsdp2.reshard_after_forward",
    "backward_prefetch": "FSDP2 removed backward_prefetch: it always prefetches the previous block (BACKWARD_PRE)",
    "limit_all_gathers": "FSDP2 removed limit_all_gathers: its all-gathers wait for the previous copy-out instead",
    "reduce_dtype": "FSDP2's is training.fsdp2.reduce_dtype (MixedPrecisionPolicy)",
    "gradient_sync": "FSDP2's is training.fsdp2.gradient_sync (set_requires_gradient_sync)",
}
_SPECS = {"deepspeed": DeepSpeedSpec, "pytorch-fsdp2": Fsdp2Spec, "megatron": MegatronSpec}
_FIELDS = {field for field, _ in FRAMEWORK_SECTIONS.values()}
_DS_STAGE3 = (
    "stage3_prefetch_bucket_size",
    "stage3_max_live_parameters",
    "stage3_max_reuse_distance",
    "stage3_param_persistence_threshold",
    "sub_group_size",
)
_DS_STAGE12 = ("allgather_bucket_size", "use_multi_rank_bucket_allreduce")


def framework_spec(
    t: TrainingSection, strategy: str, problems: list[Problem], warnings: list[str]
) -> FrameworkSpec:
    """The framework profile with its options (the framework's defaults where not given)."""
    name = t.framework
    present = {field for field, _ in FRAMEWORK_SECTIONS.values() if getattr(t, field) is not None}
    problems += section_problems(
        name, present, set(t.zero3.model_fields_set), set(t.model_fields_set)
    )
    spec = FrameworkSpec(name=name)
    if name in FRAMEWORK_SECTIONS:
        field = FRAMEWORK_SECTIONS[name][0]
        section = getattr(t, field)
        given = {
            k: v for k, v in (section.model_dump() if section else {}).items() if v is not None
        }
        spec = dataclasses.replace(spec, **{field: _SPECS[name](**given)})
        if name == "deepspeed":
            _deepspeed(given, strategy, problems, warnings)
        elif name == "pytorch-fsdp2" and given and strategy == "ddp":
            problems.append(
                Problem(
                    f"training.fsdp2.{min(given)}",
                    "applies to fully_shard (zero3, hsdp), not ddp (PyTorch DDP)",
                    "remove training.fsdp2, or change training.strategy",
                )
            )
        elif name == "megatron":
            _megatron(spec.megatron, strategy, problems)
    return spec


def raw_problems(data) -> list[Problem]:
    """The same section checks on the raw mapping, when the shape check failed elsewhere."""
    t = data.get("training") if isinstance(data, dict) else None
    if not isinstance(t, dict):
        return []
    name = t.get("framework", DEFAULT_FRAMEWORK)
    if not isinstance(name, str) or name.strip().lower() not in FRAMEWORKS:
        return []
    zero3 = t.get("zero3")
    return section_problems(
        name.strip().lower(),
        {k for k in t if k in _FIELDS},
        set(zero3) if isinstance(zero3, dict) else set(),
        set(t),
    )


def section_problems(
    name: str, present: set[str], zero3_keys: set[str], training_keys: set[str]
) -> list[Problem]:
    """Options given for another framework than training.framework."""
    problems = []
    for fw, (field, _) in FRAMEWORK_SECTIONS.items():
        if field in present and fw != name:
            problems.append(
                Problem(
                    f"training.{field}",
                    f"{fw} options, but training.framework is {name}",
                    f"set training.framework: {fw}, or remove training.{field}",
                )
            )
    if name != "pytorch-fsdp":
        for key in sorted(zero3_keys & set(_FSDP2_INSTEAD)):
            hint = (
                _FSDP2_INSTEAD[key]
                if name == "pytorch-fsdp2"
                else f"training.zero3 holds PyTorch FSDP's options; {name}'s are under "
                f"training.{FRAMEWORK_SECTIONS[name][0]}"
            )
            problems.append(
                Problem(
                    f"training.zero3.{key}",
                    f"a PyTorch FSDP option, but training.framework is {name}",
                    hint,
                )
            )
    if name in ("deepspeed", "megatron"):
        own = {
            "deepspeed": "training.deepspeed.reduce_bucket_size",
            "megatron": "training.megatron.bucket_size",
        }
        for key in sorted(
            training_keys & {"bucket_size", "gradient_as_bucket_view", "ddp_comm_hook"}
        ):
            problems.append(
                Problem(
                    f"training.{key}",
                    f"a PyTorch DDP option, but training.framework is {name}",
                    f"{name}'s gradient buckets are {own[name]}",
                )
            )
    return problems


def _deepspeed(given: dict, strategy: str, problems: list[Problem], warnings: list[str]) -> None:
    wrong = _DS_STAGE12 if strategy == "zero3" else _DS_STAGE3
    for key in sorted(set(given) & set(wrong)):
        stage = (
            "ZeRO-3 (strategy zero3)" if key in _DS_STAGE3 else "ZeRO-1/2 (strategy zero1 or zero2)"
        )
        problems.append(
            Problem(
                f"training.deepspeed.{key}",
                f"applies to {stage} only, not {strategy}",
                "remove it, or change training.strategy",
            )
        )
    if "allgather_bucket_size" in given and strategy != "zero3":
        warnings.append(
            "training.deepspeed.allgather_bucket_size has no effect: DeepSpeed gathers the updated "
            "weights with one all_gather_into_tensor per parameter group when torch has it "
            "(deepspeed/runtime/utils.py all_gather_dp_groups), as clustersim models"
        )


def _megatron(m: MegatronSpec, strategy: str, problems: list[Problem]) -> None:
    if m.overlap_param_gather and strategy != "zero1":
        problems.append(
            Problem(
                "training.megatron.overlap_param_gather",
                "needs the distributed optimizer",
                "use strategy: zero1 (Megatron's distributed optimizer)",
            )
        )
    elif m.overlap_param_gather and not m.overlap_grad_reduce:
        problems.append(
            Problem(
                "training.megatron.overlap_param_gather",
                "needs overlap_grad_reduce (Megatron-LM asserts it)",
                "set training.megatron.overlap_grad_reduce: true",
            )
        )
