"""Context and expert parallelism and mixture-of-experts models in scenario files: the keys resolve
into ParallelSpec / MoETrainingSpec / Architecture, and each rule refuses a bad layout at its
field path (Megatron-Core's own checks, cited in simulator/scenario/moe.py and knobs.py)."""

from __future__ import annotations

import copy
import typing
from pathlib import Path

import pytest
import yaml

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.model.architecture import ATTENTION_KINDS
from simulator.scenario import schema_types
from simulator.scenario.load import load_scenario, scenario_from_dict
from simulator.spec.mesh import Mesh, fold
from simulator.spec.specs import CP_COMMS, MOE_DISPATCHERS, MOE_OVERLAPS
from tests.helpers import cluster_of, make_scenario

FIXTURE = Path(__file__).parent / "fixtures" / "moe-tp2-cp2-ep4.yaml"
P = "training.parallelism"


def base() -> dict:
    return yaml.safe_load(FIXTURE.read_text())


def dense() -> dict:
    d = base()
    arch = d["model"]["architecture"]
    del arch["moe"], arch["mtp_layers"]
    del d["training"]["moe"]
    d["training"]["parallelism"] = {"tp": 2, "sequence_parallel": True}
    return d


def edit(d: dict, **changes) -> dict:
    """Dotted paths -> values (None deletes)."""
    d = copy.deepcopy(d)
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = d
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return d


def problems(d: dict) -> list[tuple[str, str]]:
    with pytest.raises(UserError) as exc:
        scenario_from_dict(d)
    return [(p.path, f"{p.message} ({p.hint})") for p in exc.value.problems]


def refused(d: dict, path: str, *fragments: str) -> None:
    found = problems(d)
    at = [text for where, text in found if where == path]
    assert at, found
    assert any(all(f in text for f in fragments) for text in at), at


def test_the_fixture_resolves_every_new_key():
    s = load_scenario(FIXTURE)
    par = s.training.parallel
    assert (par.tp, par.cp, par.dp, par.pp, par.ep, par.etp) == (2, 2, 2, 1, 4, 1)
    assert par.edp == 2 and par.cp_comm == "ring" and par.order == ("tp", "cp", "dp", "pp")
    m = s.training.moe
    assert (m.dispatcher, m.load_imbalance, m.overlap) == ("alltoall", 1.2, "none")
    arch = s.model.arch
    assert arch is not None and arch.moe is not None and arch.attention is not None
    assert (arch.moe.num_experts, arch.moe.experts_per_token, arch.moe.shared_experts) == (8, 2, 1)
    assert arch.moe.capacity_factor is None and arch.moe.first_dense_layers == 1
    assert arch.attention.kind == "gqa" and arch.mtp_layers == 1
    # The same ranks folded for the experts: ep 4 over consecutive ranks (tp-cp-ep-dp-pp).
    mesh = Mesh(dims=tuple((d, getattr(par, d)) for d in par.order))
    experts = fold(mesh, (("etp", par.etp), ("ep", par.ep), ("edp", par.edp)), ("tp", "cp", "dp"))
    g = experts.group("ep")
    assert [g.ranks(i) for i in range(g.count)] == [(0, 1, 2, 3), (4, 5, 6, 7)]


def test_mla_and_defaults():
    d = edit(
        base(),
        model__architecture__attention={"kind": "mla", "kv_lora_rank": 128, "rope_head_dim": 32},
        model__architecture__num_kv_heads=None,
        model__architecture__moe__capacity_factor=1.25,
        model__architecture__qk_norm=True,
        training__moe=None,
    )
    s = scenario_from_dict(d)
    a = s.model.arch
    assert a is not None and a.attention is not None and a.moe is not None
    assert (a.attention.kind, a.attention.kv_lora_rank, a.attention.rope_head_dim) == (
        "mla",
        128,
        32,
    )
    assert a.attention.q_lora_rank is None and a.attention.v_head_dim is None
    assert a.moe.capacity_factor == 1.25 and a.qk_norm
    assert s.training.moe.dispatcher == "alltoall" and s.training.moe.load_imbalance == 1.0


def test_cp_is_placed_right_after_tp_or_where_the_order_says():
    par = scenario_from_dict(edit(base(), training__parallelism__order=["cp", "tp", "dp", "pp"]))
    assert par.training.parallel.order == ("cp", "tp", "dp", "pp")
    d = edit(dense(), training__parallelism__cp=1, training__parallelism__order=["tp", "pp", "dp"])
    assert scenario_from_dict(d).training.parallel.order == ("tp", "pp", "dp")
    refused(
        edit(base(), training__parallelism__order=["tp", "cp", "cp", "dp", "pp"]),
        f"{P}.order",
        "cp at most once",
    )


def test_the_schema_choices_are_the_registries():
    choices = {
        "CpCommName": CP_COMMS,
        "AttentionKindName": ATTENTION_KINDS,
        "DispatcherName": MOE_DISPATCHERS,
        "MoeOverlapName": MOE_OVERLAPS,
    }
    for name, registry in choices.items():
        literal = typing.get_args(getattr(schema_types, name))[0]
        assert typing.get_args(literal) == registry, name


# (changes to the fixture, path, fragments of the message or hint)
RULES = {
    "tp x cp x pp divides the GPUs": (
        {"training__parallelism__cp": 3},
        P,
        ["tp x cp x pp = 2 x 3 x 1 = 6 does not divide 8 GPUs"],
    ),
    "ep x etp divides tp x cp x dp": (
        {"training__parallelism__ep": 8, "training__parallelism__etp": 2},
        f"{P}.ep",
        ["ep x etp = 8 x 2 = 16 does not divide", "= 8 ranks"],
    ),
    "ep divides the experts": (
        {"model__architecture__moe__num_experts": 6},
        f"{P}.ep",
        ["ep 4 does not divide the 6 experts", "valid values: 1, 2, 3, 6"],
    ),
    "etp divides the expert FFN": (
        {
            "model__architecture__moe__expert_ffn_hidden_size": 382,
            "training__parallelism__ep": 2,
            "training__parallelism__etp": 4,
        },
        f"{P}.etp",
        ["etp 4 does not divide the expert FFN width 382"],
    ),
    "MoE with ep and tp needs sequence parallelism": (
        {"training__parallelism__sequence_parallel": False},
        f"{P}.sequence_parallel",
        ["needs sequence parallelism with expert and tensor parallelism", "true"],
    ),
    "cp splits the sequence into 2 x cp x tp": (
        {"training__seq_len": 1028},
        "training.seq_len",
        ["2 x cp x tp = 2 x 2 x 2 = 8 pieces", "use seq_len 1024 or 1032"],
    ),
    "all-to-all cp divides the KV heads": (
        {"training__parallelism__cp": 4, "training__parallelism__cp_comm": "all-to-all"},
        f"{P}.cp_comm",
        ["the 4 KV heads", "tp x cp = 2 x 4 = 8"],
    ),
    "cp needs a strategy that models it": (
        {"training__framework": "deepspeed", "training__strategy": "zero2"},
        f"{P}.cp",
        ["framework deepspeed with strategy zero2 does not model context parallelism"],
    ),
    "ep needs a strategy that models it": (
        {"training__framework": "deepspeed", "training__strategy": "zero2"},
        f"{P}.ep",
        ["does not model expert parallelism (ep 4", "framework: megatron with strategy"],
    ),
    "experts folded over tp need a strategy that models it": (
        {
            "training__framework": "deepspeed",
            "training__strategy": "zero2",
            "training__parallelism": {"tp": 2, "sequence_parallel": True},
        },
        f"{P}.tp",
        ["MoE layers folded over tp x cp = 2 ranks", "megatron"],
    ),
    "Megatron-Core: pp not outermost keeps edp = dp": (
        {
            "training__parallelism": {
                "tp": 2,
                "pp": 2,
                "ep": 4,
                "sequence_parallel": True,
                "order": ["tp", "pp", "dp"],
            },
            "model__architecture__num_layers": 4,
        },
        f"{P}.order",
        ["expert data-parallel size (1 = tp x cp x dp / (ep x etp)) to equal dp (2)"],
    ),
    "load imbalance within num_experts / top-k": (
        {"training__moe__load_imbalance": 5.0},
        "training.moe.load_imbalance",
        ["num_experts / experts_per_token = 4"],
    ),
    "shared-expert overlap needs shared experts": (
        {"model__architecture__moe__shared_experts": 0, "training__moe__overlap": "shared-expert"},
        "training.moe.overlap",
        ["has none"],
    ),
    "overlap needs an all-to-all dispatcher": (
        {"training__moe__dispatcher": "allgather", "training__moe__overlap": "shared-expert"},
        "training.moe.overlap",
        ["alltoall or deepep"],
    ),
    "1f1b overlap needs ep and no full recomputation": (
        {
            "training__moe__overlap": "1f1b",
            "training__parallelism__ep": 1,
            "training__activation_checkpointing": "full",
        },
        "training.moe.overlap",
        ["expert parallelism (ep > 1)", "no full activation checkpointing"],
    ),
    "load imbalance below 1": (
        {"training__moe__load_imbalance": 0.5},
        "training.moe.load_imbalance",
        ["greater than or equal to 1"],
    ),
    "unknown cp_comm": (
        {"training__parallelism__cp_comm": "ulysses"},
        f"{P}.cp_comm",
        ["expected one of 'ring', 'all-gather' or 'all-to-all'"],
    ),
    "top-k above the experts": (
        {"model__architecture__moe__experts_per_token": 9},
        "model.architecture.moe",
        ["experts_per_token 9 exceeds num_experts 8"],
    ),
    "every layer dense": (
        {"model__architecture__moe__first_dense_layers": 4},
        "model.architecture.moe.first_dense_layers",
        ["leave none of the 4 layers an MoE layer"],
    ),
    "gqa without fewer KV heads": (
        {"model__architecture__num_kv_heads": None},
        "model.architecture.attention.kind",
        ["give num_kv_heads below num_heads"],
    ),
    "mha with fewer KV heads": (
        {"model__architecture__attention": {"kind": "mha"}},
        "model.architecture.attention.kind",
        ["num_kv_heads is 4"],
    ),
    "MLA fields without mla": (
        {"model__architecture__attention": {"kind": "gqa", "kv_lora_rank": 64}},
        "model.architecture.attention",
        ["kv_lora_rank apply to kind: mla only"],
    ),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_refuses_at_its_path(rule):
    changes, path, fragments = RULES[rule]
    refused(edit(base(), **changes), path, *fragments)


DENSE_RULES = {
    "ep without MoE": ({"training__parallelism__ep": 2}, f"{P}.ep", ["has no mixture-of-experts"]),
    "etp without MoE": ({"training__parallelism__etp": 2}, f"{P}.etp", ["splits experts"]),
    "training.moe without MoE": (
        {"training__moe": {"dispatcher": "alltoall"}},
        "training.moe",
        ["custom has no MoE layers"],
    ),
    "cp without sequence parallelism: 2 x cp": (
        {"training__parallelism": {"cp": 4}, "training__seq_len": 1020},
        "training.seq_len",
        ["2 x cp = 2 x 4 = 8 pieces", "use seq_len 1016 or 1024"],
    ),
}


@pytest.mark.parametrize("rule", list(DENSE_RULES))
def test_rules_of_a_dense_model(rule):
    changes, path, fragments = DENSE_RULES[rule]
    refused(edit(dense(), **changes), path, *fragments)


def test_a_dense_model_with_cp_under_megatron_is_accepted():
    d = edit(dense(), training__parallelism__cp=2)
    par = scenario_from_dict(d).training.parallel
    assert (par.tp, par.cp, par.dp, par.ep, par.edp) == (2, 2, 2, 1, 8)


def test_an_all_moe_model_is_not_held_to_its_dense_ffn_width():
    """With every layer an MoE layer, ffn_hidden_size is unused: tp need not divide it."""
    d = edit(
        base(),
        model__architecture__ffn_hidden_size=1535,
        model__architecture__moe__first_dense_layers=0,
    )
    assert scenario_from_dict(d).training.parallel.tp == 2
    d = edit(d, model__architecture__moe__first_dense_layers=1)
    refused(d, f"{P}.tp", "FFN width")


def test_validate_exits_2_at_the_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(edit(dense(), training__parallelism__ep=2)))
    code = main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert f"bad.yaml: {P}.ep: ep 2 splits experts" in err
    assert main(["validate", str(FIXTURE)]) == 0


def test_deepep_needs_every_ep_group_evenly_on_its_hosts():
    # ep 3 on hosts of 8: the first group (ranks 0-2) sits on one host, the third (6-8) on two
    # (2 + 1 ranks); DeepEP's NVLink forwarding needs the same share on every host.
    arch = {
        "num_layers": 2,
        "hidden_size": 1024,
        "num_heads": 8,
        "vocab_size": 32000,
        "ffn": "swiglu",
        "ffn_hidden_size": 2048,
        "moe": {"num_experts": 6, "experts_per_token": 2, "expert_ffn_hidden_size": 1024},
    }
    training = {
        "framework": "megatron",
        "strategy": "zero1",
        "seq_len": 1024,
        "parallelism": {"ep": 3},
        "moe": {"dispatcher": "deepep"},
    }
    with pytest.raises(UserError) as caught:
        make_scenario(model={"architecture": arch}, training=training, cluster=cluster_of(24))
    (problem,) = caught.value.problems
    assert problem.path == "training.moe.dispatcher"
    assert "ranks per host: [1, 2, 3]" in problem.message
    # ep 2 divides the host: every group on one host.
    training["parallelism"] = {"ep": 2}
    make_scenario(model={"architecture": arch}, training=training, cluster=cluster_of(24))
