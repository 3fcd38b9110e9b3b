"""`plan parallel` with context and expert parallelism: ep and etp searched for a mixture-of-experts
model, cp for a long sequence, and a dense model at a short sequence searched exactly as before."""

from __future__ import annotations

from simulator.cli.commands.plan_parallel import _json, _shown
from simulator.execution.memory import memory_breakdown
from simulator.scenario.load import derive
from simulator.studies.parallel_plan import (
    CP_MIN_TOKENS,
    ParallelPlan,
    PlanRow,
    layouts,
    parallel_plan,
    searched,
    variants,
)
from tests.helpers import cluster_of, make_scenario


def _mixtral(batch: int = 64):
    # Mixtral 8x7B with Megatron-Core's distributed optimizer on 64 H100 (8 DGX H100).
    return make_scenario(
        model={"preset": "mixtral-8x7b"},
        training={
            "framework": "megatron",
            "strategy": "zero1",
            "seq_len": 4096,
            "micro_batch_size": 1,
            "global_batch_size": batch,
            "activation_checkpointing": "none",
            "moe": {"dispatcher": "alltoall"},
        },
        cluster={"topology": "h100-ndr-cluster", "num_hosts": 8},
    )


def test_mixtral_searches_expert_parallelism_and_every_plan_validates():
    s = _mixtral()
    assert searched(s) == ("ep", "etp")
    found = layouts(s)
    assert {lay.ep for lay in found} == {1, 2, 4, 8}  # the divisors of Mixtral's 8 experts
    for lay in found:
        assert lay.cp == 1  # 4,096 tokens do not call for context parallelism
        assert lay.etp in (1, lay.tp) and 8 % lay.ep == 0
        assert (lay.tp * lay.dp(64)) % (lay.ep * lay.etp) == 0  # folded over tp x cp x dp
    # etp = tp with tp > 1 is searched beside etp 1.
    assert any(lay.etp == lay.tp > 1 for lay in found)
    # Megatron offers ddp and zero1, both modelling folded experts: neither is dropped.
    tp2 = next(lay for lay in found if lay.tp == 2 and lay.ep == 4)
    assert {name for _, name in variants(s, tp2)} == {"ddp", "zero1"}

    plan = parallel_plan(s, top=4, simulate=4)
    assert plan.searched == ("ep", "etp") and plan.rows
    assert plan.fitting <= plan.layouts == len(found)
    assert any(r.ep > 1 for r in plan.rows)
    for r in plan.rows:
        cand = derive(s, r.changes)  # validates like a scenario file, or raises
        par = cand.training.parallel
        assert (par.ep, par.etp, par.edp, par.dp) == (r.ep, r.etp, r.edp, r.dp)
        assert r.edp == par.tp * par.cp * par.dp // (r.ep * r.etp)
        assert memory_breakdown(cand).fits


def _dense(seq_len: int, n: int, batch: int, **training):
    return make_scenario(
        model={"preset": "llama2-13b"},
        training={
            "strategy": "ddp",
            "seq_len": seq_len,
            "micro_batch_size": 1,
            "global_batch_size": batch,
            **training,
        },
        cluster=cluster_of(n),
    )


def test_a_long_sequence_searches_context_parallelism():
    s = _dense(131072, 64, 64)
    assert searched(s) == ("cp",)  # llama2-13b is dense: no ep / etp
    found = layouts(s)
    cps = {lay.cp for lay in found}
    # Powers of two down to 8,192 tokens per rank: 131072 / 16 = 8192.
    assert cps == {1, 2, 4, 8, 16} and 131072 // max(cps) == CP_MIN_TOKENS
    for lay in found:
        assert lay.ep == lay.etp == 1
        # Megatron-Core: seq_len a multiple of 2 x cp (x tp with sequence parallelism).
        assert 131072 % (2 * lay.cp * lay.tp) == 0
        assert lay.tp * lay.cp * lay.pp * lay.dp(64) == 64
    # Each cp > 1 layout is a valid scenario with the leanest variant its strategies allow.
    for lay in (lay for lay in found if lay.cp > 1):
        ckpt, strategy = variants(s, lay)[-1]
        m = 64 // (lay.micro_batch * lay.dp(64))
        cand = derive(
            s,
            {
                **lay.changes(m),
                "training.strategy": strategy,
                "training.activation_checkpointing": ckpt,
            },
        )
        assert cand.training.parallel.cp == lay.cp
    # On 16 GPUs the simulated plan picks context parallelism, and its layouts validate and fit.
    s = _dense(131072, 16, 16)
    plan = parallel_plan(s, top=3, simulate=3)
    assert plan.searched == ("cp",) and plan.rows and any(r.cp > 1 for r in plan.rows)
    for r in plan.rows:
        cand = derive(s, r.changes)
        assert cand.training.parallel.cp == r.cp and memory_breakdown(cand).fits


def test_a_dense_short_sequence_is_searched_as_before():
    s = _dense(4096, 8, 16)
    assert searched(s) == ()
    found = layouts(s)
    assert found == layouts(s, search=())
    assert all(lay.cp == lay.ep == lay.etp == 1 for lay in found)
    # Hand count, 8 GPUs, 16 sequences, 40 layers: tp in {1, 2, 4, 8} (40 heads, FFN 13824,
    # vocabulary 32000); pp x v in {1, 2, 4, 8} (16 chunks divide neither 40 nor 42);
    # micro-batches b with 16 % (b x dp) == 0, and with v > 1 a multiple of pp per step.
    #   tp 1: pp 1 (dp 8): b 1,2 = 2; pp 2 (dp 4): v1 b 1,2,4 + v2 b 1,2 + v4 b 1,2 = 7;
    #         pp 4 (dp 2): v1 b 1,2,4,8 + v2 b 1,2 = 6; pp 8 (dp 1): v1 = 4            -> 19
    #   tp 2: pp 1: 3; pp 2 (dp 2): 4 + 3 + 3 = 10; pp 4 (dp 1): 4 + 3 = 7            -> 20
    #   tp 4: pp 1 (dp 2): 4; pp 2 (dp 1): 4 + 4 + 4 = 12                              -> 16
    #   tp 8: pp 1: 4                                                                   ->  4
    assert len(found) == 19 + 20 + 16 + 4
    # The pytorch-fsdp variants are today's four strategies at three recomputation levels.
    assert len(variants(s, found[0])) == 12


def _row(**degrees) -> PlanRow:
    return PlanRow(
        layout="tp 1, no pipeline, micro-batch 1",
        strategy="zero1",
        checkpointing="none",
        dp=8,
        microbatches=2,
        mem_bytes=1,
        capacity_bytes=2,
        worst_stage=0,
        estimate_s=1.0,
        step_time_s=1.0,
        tokens_per_s=1.0,
        mfu=0.5,
        exposed_comm_s=0.0,
        **degrees,
    )


def test_the_degree_columns_show_only_what_was_searched():
    def plan(searched, row):
        return ParallelPlan(
            rows=[row], layouts=1, fitting=1, memory_checks=1, elapsed_s=0.0, searched=searched
        )

    dense = plan((), _row())
    assert _shown(dense) == ()
    out = _json(dense, ())
    # The keys a plan had before cp / ep were searched.
    assert "searched" not in out and not {"cp", "ep", "etp", "edp"} & set(out["rows"][0])
    moe = plan(("ep", "etp"), _row(ep=4, edp=2))
    assert _shown(moe) == ("ep", "etp", "edp")
    row = _json(moe, _shown(moe))["rows"][0]
    assert (row["ep"], row["etp"], row["edp"]) == (4, 1, 2) and "cp" not in row
    assert _shown(plan(("cp",), _row(cp=4))) == ("cp",)
