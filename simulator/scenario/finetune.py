"""`training.finetune` against the model and the layout: what LoRA / QLoRA is modelled with
(simulator/model/lora.py)."""

from __future__ import annotations

from simulator.core.errors import Problem, did_you_mean
from simulator.model import lora
from simulator.model.spec import ModelSpec
from simulator.spec.specs import TrainingSpec

_FT = "training.finetune"


def check_finetune(model: ModelSpec, t: TrainingSpec, problems: list[Problem]) -> None:
    """The finetune section against the model and the layout: method and storage agree, the
    targets are Linear modules of the model's blocks, the rank fits each, and the run is one
    that the memory model and the schedule cover (dense decoder, one pipeline rank, tensor
    parallelism with a 16-bit base only, PyTorch DDP / ZeRO / FSDP, no offload)."""
    f = t.finetune
    if not f.adapters:
        given = [
            k
            for k, v in (
                ("base_weights", f.base_weights != "bf16"),
                ("double_quant", f.double_quant),
                ("paged_optimizer", f.paged_optimizer),
            )
            if v
        ]
        for k in given:
            problems.append(
                Problem(
                    f"{_FT}.{k}",
                    "applies to method lora / qlora only: full fine-tuning trains a 16-bit copy "
                    "of every parameter",
                    "set method: qlora (or lora), or remove the key",
                )
            )
        return
    if f.method == "qlora" and f.base_weights == "bf16":
        problems.append(
            Problem(
                f"{_FT}.base_weights",
                "qlora keeps the frozen base quantized: base_weights nf4 or int8",
                "use base_weights: nf4 (QLoRA's), or method: lora for a bf16 base",
            )
        )
    if f.method == "lora" and f.base_weights != "bf16":
        problems.append(
            Problem(
                f"{_FT}.base_weights",
                f"lora trains adapters on a 16-bit base; a {f.base_weights} base is qlora",
                "use method: qlora",
            )
        )
    if f.double_quant and f.base_weights != "nf4":
        problems.append(
            Problem(
                f"{_FT}.double_quant",
                "Double Quantization quantizes the constants of 4-bit (nf4) weights only "
                "(bnb_4bit_use_double_quant)",
                "use base_weights: nf4, or remove double_quant",
            )
        )
    arch = model.arch
    unsupported = []
    if arch is None or model.shape_estimated:
        unsupported.append("a bare parameter count (LoRA needs the modules' shapes)")
    elif arch.kind != "decoder":
        unsupported.append(f"a {arch.kind} model")
    elif arch.moe is not None:
        unsupported.append("an MoE model")
    elif arch.mla:
        unsupported.append("MLA attention")
    par = t.parallel
    if par.pp > 1:
        unsupported.append("pp > 1")
    if t.framework.name != "pytorch-fsdp":
        unsupported.append(f"framework {t.framework.name}")
    if t.offload.optimizer or t.offload.params:
        unsupported.append("CPU offload")
    if unsupported:
        problems.append(
            Problem(
                f"{_FT}.method",
                f"{f.method} is modelled for dense decoder models with data, tensor and context "
                f"parallelism (ddp, zero1, zero2, zero3 / FSDP, hsdp; framework pytorch-fsdp), "
                f"not with " + ", ".join(unsupported),
                "give the model as a preset or architecture, and drop pipeline parallelism",
            )
        )
        return
    if par.tp > 1 and f.base_weights != "bf16":
        problems.append(
            Problem(
                f"{_FT}.base_weights",
                f"a {f.base_weights} base is modelled on one tensor-parallel rank only: "
                "bitsandbytes' quantized Linear layers have no tensor-parallel form",
                "use tp: 1 (data parallelism or FSDP), or method: lora with a 16-bit base",
            )
        )
    assert arch is not None
    linears = lora.block_linears(arch)
    names = f.target_modules
    if names != lora.ALL_LINEAR:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name not in linears:
                problems.append(
                    Problem(
                        f"{_FT}.target_modules.{i}",
                        f"{model.name} has no Linear {name!r} in its blocks",
                        did_you_mean(name, [*linears, lora.ALL_LINEAR]),
                    )
                )
            elif name in seen:
                problems.append(Problem(f"{_FT}.target_modules.{i}", f"{name!r} is listed twice"))
            seen.add(name)
        if not names:
            problems.append(
                Problem(f"{_FT}.target_modules", "no module is targeted", "e.g. [q_proj, v_proj]")
            )
    for name in lora.targets(arch, names):
        out, inp = linears[name]
        if f.rank > min(out, inp):
            problems.append(
                Problem(
                    f"{_FT}.rank",
                    f"rank {f.rank} exceeds {name}'s smaller dimension {min(out, inp)} "
                    f"({out} x {inp}): the update B A would be no longer low-rank",
                    f"use rank <= {min(out, inp)}",
                )
            )
            break
