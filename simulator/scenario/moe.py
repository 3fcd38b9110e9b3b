"""Checks of context and expert parallelism and of mixture-of-experts training against the model
and the framework: the degrees divide what they split, Megatron-Core's own rules hold, and the
chosen framework's strategy models cp and folded experts at all.

Sources: Megatron-LM megatron/training/arguments.py (validate_args),
megatron/core/model_parallel_config.py and megatron/core/transformer/transformer_config.py
(__post_init__), megatron/core/parallel_state.py (initialize_model_parallel).
"""

from __future__ import annotations

from simulator.core.errors import Problem
from simulator.execution.frameworks import FRAMEWORKS, strategy_for
from simulator.model.architecture import MoE, is_moe_layer
from simulator.model.spec import ModelSpec
from simulator.scenario.schema import ArchitectureModel
from simulator.spec.specs import TrainingSpec

P = "training.parallelism"


def _near(n: int, cap: int = 64) -> str:
    shown = [d for d in range(1, min(n, cap) + 1) if n % d == 0]
    return "valid values: " + ", ".join(map(str, shown))


def moe_of(model: ModelSpec) -> MoE | None:
    return model.arch.moe if model.arch is not None else None


def training_moe_problems(given: bool, model: ModelSpec) -> list[Problem]:
    """training.moe written for a model without MoE layers would change nothing."""
    if not given or moe_of(model) is not None:
        return []
    return [
        Problem(
            "training.moe",
            f"applies to mixture-of-experts models; {model.name} has no MoE layers",
            "remove training.moe, or give model.architecture.moe",
        )
    ]


def check_parallel_support(model: ModelSpec, t: TrainingSpec, problems: list[Problem]) -> None:
    """cp > 1 needs a strategy that models context parallelism; ep or etp > 1, or an MoE model
    whose experts fold over tp x cp > 1 ranks, one that models expert parallelism."""
    par, strategy = t.parallel, strategy_for(t)
    moe = moe_of(model)
    needs = []
    if par.cp > 1 and not strategy.context_parallel:
        needs.append((f"{P}.cp", f"context parallelism (cp {par.cp})", "context_parallel"))
    if not strategy.expert_parallel:
        if par.ep > 1 or par.etp > 1:
            what = f"expert parallelism (ep {par.ep}, etp {par.etp})"
            needs.append((f"{P}.ep" if par.ep > 1 else f"{P}.etp", what, "expert_parallel"))
        elif moe is not None and par.tp * par.cp > 1:
            what = f"MoE layers folded over tp x cp = {par.tp * par.cp} ranks"
            needs.append((f"{P}.tp" if par.tp > 1 else f"{P}.cp", what, "expert_parallel"))
    for path, what, flag in needs:
        offer = []
        for fw in FRAMEWORKS.values():
            names = [name for name, s in fw.strategies.items() if getattr(s, flag)]
            if names:
                offer.append(f"framework: {fw.name} with strategy {' or '.join(names)}")
        problems.append(
            Problem(
                path,
                f"framework {t.framework.name} with strategy {t.strategy} does not model {what}",
                "use " + "; or ".join(offer) if offer else "no framework models it yet",
            )
        )


def check_context(model: ModelSpec, t: TrainingSpec, problems: list[Problem]) -> None:
    """All-to-all context parallelism (DeepSpeed-Ulysses; Megatron's cp_comm_type a2a) scatters
    each tensor-parallel rank's heads over the cp ranks."""
    par, arch = t.parallel, model.shape
    if par.cp == 1 or par.cp_comm != "all-to-all":
        return
    split = par.tp * par.cp
    mla = arch.attention is not None and arch.attention.kind == "mla"
    heads = [("attention heads", arch.num_heads)]
    if not mla:  # MLA's K and V have a head per query head
        heads.append(("KV heads", arch.kv_heads))
    for what, n in heads:
        if n % split:
            problems.append(
                Problem(
                    f"{P}.cp_comm",
                    f"all-to-all splits the {n} {what} of {model.name} over tp x cp = "
                    f"{par.tp} x {par.cp} = {split} ranks, which does not divide them",
                    f"use cp_comm: ring or all-gather, or tp x cp among: {_near(n)}",
                )
            )


def check_experts(model: ModelSpec, t: TrainingSpec, problems: list[Problem]) -> None:
    """ep and etp against the model's experts, and training.moe against the layout."""
    par, moe = t.parallel, moe_of(model)
    if moe is None:
        for key in ("ep", "etp"):
            if getattr(par, key) > 1:
                problems.append(
                    Problem(
                        f"{P}.{key}",
                        f"{key} {getattr(par, key)} splits experts, but {model.name} has no "
                        "mixture-of-experts layers",
                        f"use {key}: 1, or a model with model.architecture.moe",
                    )
                )
        return
    if moe.num_experts % par.ep:
        # arguments.py: "Number of experts should be a multiple of expert model parallel_size."
        problems.append(
            Problem(
                f"{P}.ep",
                f"ep {par.ep} does not divide the {moe.num_experts} experts of {model.name}",
                _near(moe.num_experts),
            )
        )
    if moe.expert_ffn_hidden_size % par.etp:
        problems.append(
            Problem(
                f"{P}.etp",
                f"etp {par.etp} does not divide the expert FFN width "
                f"{moe.expert_ffn_hidden_size} of {model.name}",
                _near(moe.expert_ffn_hidden_size),
            )
        )
    shared = moe.shared_experts * (moe.shared_expert_ffn_hidden_size or moe.expert_ffn_hidden_size)
    if shared and shared % par.tp:
        # Megatron-Core's SharedExpertMLP is one tensor-parallel MLP of all shared experts' width.
        problems.append(
            Problem(
                f"{P}.tp",
                f"tp {par.tp} does not divide the shared experts' FFN width {shared} "
                f"of {model.name}",
                _near(shared),
            )
        )
    if par.ep > 1 and par.tp > 1 and not par.sequence_parallel:
        # model_parallel_config.py: "When using expert parallelism and tensor parallelism,
        # sequence parallelism must be used" (a ValueError until 2025-08, a warning since).
        problems.append(
            Problem(
                f"{P}.sequence_parallel",
                "Megatron-Core needs sequence parallelism with expert and tensor parallelism "
                f"(ep {par.ep}, tp {par.tp})",
                "set sequence_parallel: true",
            )
        )
    edp = par.edp
    if par.pp > 1 and par.order[-1] != "pp" and edp != par.dp:
        # parallel_state.initialize_model_parallel: "When not using pp-last rank ordering, the
        # data parallel size of the attention and moe layers must be the same".
        problems.append(
            Problem(
                f"{P}.order",
                f"with pp not outermost ({list(par.order)}), Megatron-Core needs the expert "
                f"data-parallel size ({edp} = tp x cp x dp / (ep x etp)) to equal dp ({par.dp})",
                "put pp last, or make ep x etp = tp x cp",
            )
        )
    _check_moe_training(model, moe, t, problems)


def _check_moe_training(
    model: ModelSpec, moe: MoE, t: TrainingSpec, problems: list[Problem]
) -> None:
    m, par = t.moe, t.parallel
    # Every dispatcher (model/moe_dispatch.py) and overlap (execution/strategies/block_run.py)
    # of the schema is simulated; what Megatron-Core refuses to combine is refused below.
    worst = moe.num_experts / moe.experts_per_token
    if m.load_imbalance > worst:
        problems.append(
            Problem(
                "training.moe.load_imbalance",
                f"{m.load_imbalance:g} is beyond the most one expert can get: every token "
                f"(num_experts / experts_per_token = {worst:g} x the mean)",
                f"use 1.0 (balanced) to {worst:g}",
            )
        )
    if m.overlap == "shared-expert" and not moe.shared_experts:
        problems.append(
            Problem(
                "training.moe.overlap",
                f"shared-expert overlap hides dispatch behind the shared experts, and "
                f"{model.name} has none",
                "use overlap: none or 1f1b",
            )
        )
    if m.overlap != "none" and m.dispatcher == "allgather":
        # transformer_config.py: both overlaps are "supported with alltoall/flex token dispatcher".
        problems.append(
            Problem(
                "training.moe.overlap",
                f"{m.overlap} overlap works with the alltoall or deepep dispatcher only",
                "use dispatcher: alltoall or deepep, or overlap: none",
            )
        )
    if m.overlap == "1f1b":
        # transformer_config.py (overlap_moe_expert_parallel_comm): expert parallelism, virtual
        # pipeline stages when pp > 1, no full recomputation.
        needs = []
        if par.ep == 1:
            needs.append("expert parallelism (ep > 1)")
        if par.pp > 1 and par.pipeline.virtual_stages == 1:
            needs.append("with pp > 1, the interleaved schedule (virtual_stages > 1)")
        if t.activation_checkpointing == "full":
            needs.append("no full activation checkpointing")
        if needs:
            problems.append(
                Problem(
                    "training.moe.overlap",
                    "1f1b overlap (Megatron-Core overlap_moe_expert_parallel_comm) needs "
                    + "; ".join(needs),
                    "use overlap: none, or change the layout",
                )
            )


def has_dense_layers(model: ModelSpec) -> bool:
    """Whether some block keeps the dense MLP (its FFN width is then split by tp)."""
    arch = model.arch
    if arch is None or arch.moe is None:
        return True
    return any(not is_moe_layer(arch, i) for i in range(arch.num_layers))


def architecture_problems(a: ArchitectureModel) -> list[Problem]:
    """A custom architecture's MoE and attention fields against the rest of its shape."""
    problems = []
    where = "model.architecture"
    if a.moe is not None and a.moe.first_dense_layers >= a.num_layers:
        problems.append(
            Problem(
                f"{where}.moe.first_dense_layers",
                f"{a.moe.first_dense_layers} dense layers leave none of the {a.num_layers} "
                "layers an MoE layer",
                f"use at most {a.num_layers - 1}, or remove model.architecture.moe",
            )
        )
    kind = a.attention.kind if a.attention is not None else None
    kv = a.num_kv_heads
    if kind in ("mha", "mla") and kv is not None and kv != a.num_heads:
        problems.append(
            Problem(
                f"{where}.attention.kind",
                f"{kind} has a K and V head per query head, but num_kv_heads is {kv} "
                f"(num_heads {a.num_heads})",
                f"use kind: gqa, or num_kv_heads: {a.num_heads}",
            )
        )
    if kind == "gqa" and (kv is None or kv == a.num_heads):
        problems.append(
            Problem(
                f"{where}.attention.kind",
                "gqa shares K and V heads between query heads: give num_kv_heads below num_heads",
                "set num_kv_heads, or use kind: mha",
            )
        )
    return problems
