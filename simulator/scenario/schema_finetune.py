"""The scenario section training.finetune: full fine-tuning, LoRA or QLoRA (FinetuneSpec in
simulator/spec/specs.py, the adapter math in simulator/model/lora.py). Field names follow
Hugging Face PEFT's LoraConfig (r, lora_alpha, target_modules) and transformers'
BitsAndBytesConfig (load_in_4bit / bnb_4bit_quant_type nf4, load_in_8bit,
bnb_4bit_use_double_quant)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from simulator.model.lora import ALL_LINEAR
from simulator.scenario.schema_types import MAX_WIDTH, Strict, _lower
from simulator.spec.specs import FinetuneSpec

MethodName = Annotated[Literal["full", "lora", "qlora"], BeforeValidator(_lower)]
BaseWeightsName = Annotated[Literal["bf16", "int8", "nf4"], BeforeValidator(_lower)]


class FinetuneSection(Strict):
    """What is trained: every parameter (full), or low-rank adapters on a frozen base."""

    method: MethodName = Field(
        "full",
        description="full: every parameter trained; lora: LoRA adapters (Hu et al. 2021) on a "
        "frozen 16-bit base; qlora: on a frozen quantized base (Dettmers et al. 2023)",
    )
    rank: Annotated[int, Field(ge=1, le=MAX_WIDTH, strict=True)] = Field(
        16, description="LoRA rank r (PEFT's r); at most the smaller dimension of each target"
    )
    alpha: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="lora_alpha (default 2 x rank): scales the update, costs nothing",
    )
    target_modules: tuple[str, ...] | Literal["all-linear"] = Field(
        ALL_LINEAR,
        description="Linear modules given adapters, by PEFT name (q_proj, k_proj, v_proj, o_proj, "
        "gate_proj, up_proj, down_proj); all-linear: every Linear of the blocks",
    )
    base_weights: BaseWeightsName | None = Field(
        None,
        description="storage of the frozen base's Linear weights: bf16, int8 (LLM.int8()) or "
        "nf4 (4-bit NormalFloat); default bf16, nf4 for qlora",
    )
    paged_optimizer: bool = Field(
        False,
        description="QLoRA's paged AdamW: states page to CPU only under memory pressure; the "
        "steady-state peak is unchanged",
    )
    double_quant: bool = Field(
        False,
        description="QLoRA's Double Quantization of the nf4 constants: 0.127 instead of 0.5 "
        "bits per parameter (bnb_4bit_use_double_quant)",
    )


def finetune_spec(f: FinetuneSection | None) -> FinetuneSpec:
    """The section as a spec (checked against the model in scenario/finetune.py)."""
    if f is None:
        return FinetuneSpec()
    return FinetuneSpec(
        method=f.method,
        rank=f.rank,
        alpha=f.alpha if f.alpha is not None else 2.0 * f.rank,
        target_modules=f.target_modules,
        base_weights=f.base_weights or ("nf4" if f.method == "qlora" else "bf16"),
        paged_optimizer=f.paged_optimizer,
        double_quant=f.double_quant,
    )
