"""Expert and context parallelism in the simulated step (issue 17): the collectives the step
runs are the ones the closed forms give, counted per rank and per layer.

Hand calculations: an MoE layer's dispatch (and combine) all-to-all moves every local token's
top-k copies, tokens_local x top-k x hidden x 2 bytes; a ring-attention layer passes cp - 1
K/V blocks of b x s/cp x 2 x kv_dim / tp x 2 bytes per rank."""

from __future__ import annotations

import copy

from simulator.execution.step import simulate_step
from simulator.scenario.load import scenario_from_dict

MIXTRAL = {
    "name": "mixtral-ep",
    "model": {"preset": "mixtral-8x7b"},
    "training": {
        "framework": "megatron",
        "strategy": "zero1",
        "precision": "bf16-mixed",
        "micro_batch_size": 1,
        "seq_len": 4096,
        "global_batch_size": 32,
        "activation_checkpointing": "none",
        "flash_attention": True,
        "dropout": False,
        "parallelism": {"pp": 4, "ep": 8},
    },
    "cluster": {"topology": "h100-ndr-cluster", "num_hosts": 4},
}


def _rows(scenario_dict) -> list[dict]:
    return list(simulate_step(scenario_from_dict(copy.deepcopy(scenario_dict))).collectives)


def test_dispatch_and_combine_all_to_all_per_moe_layer():
    rows = _rows(MIXTRAL)
    a2a = [r for r in rows if r["op"] == "all_to_all"]
    assert len(a2a) == 1 and a2a[0]["group"] == "ep" and a2a[0]["group_size"] == 8
    # 4,096 local tokens (no tp, no cp) x top-2 x hidden 4,096 x 2 bytes.
    assert a2a[0]["bytes"] == 4096 * 2 * 4096 * 2
    # Per stage (one rank each in the summary): 8 MoE layers x micro-batches x 4 all-to-alls
    # (dispatch and combine, forward and backward); dp = 32 / 4 = 8, accumulation 32 / 8 = 4.
    micro_batches = 32 // 8
    assert a2a[0]["count"] == 4 * 8 * micro_batches * 4


def test_expert_gradients_reduce_over_the_expert_data_parallel_group():
    rows = _rows(MIXTRAL)
    groups = {(r["op"], r["group"]) for r in rows}
    # dp 8, ep 8: edp = 8 / 8 = 1, so the experts' gradients need no collective at all, and the
    # other parameters reduce-scatter over dp.
    assert ("reduce_scatter", "dp") in groups
    assert not any(g == "edp" for _, g in groups)
    wider = copy.deepcopy(MIXTRAL)
    wider["cluster"]["num_hosts"] = 8  # dp 16 -> edp 2
    rows = _rows(wider)
    edp = [r for r in rows if r["group"] == "edp"]
    assert edp and all(r["group_size"] == 2 for r in edp)


def test_ring_attention_passes_cp_minus_one_kv_blocks():
    d = {
        "name": "llama-cp",
        "model": {"preset": "llama3-8b"},
        "training": {
            "strategy": "zero1",
            "precision": "bf16-mixed",
            "micro_batch_size": 1,
            "seq_len": 32768,
            "global_batch_size": 2,
            "activation_checkpointing": "none",
            "flash_attention": True,
            "dropout": False,
            "parallelism": {"tp": 2, "cp": 4, "sequence_parallel": True},
        },
        "cluster": {"topology": "dgx-h100", "num_hosts": 2},
    }
    rows = _rows(d)
    ring = [r for r in rows if r["group"] == "cp"]
    # Llama 3 8B: kv_dim = 8 KV heads x 128 = 1,024; per tp rank 512; K and V; bf16.
    block = 1 * (32768 // 4) * 2 * (1024 // 2) * 2
    # The ring's steps cost what a ring all-gather of cp blocks does (passes.py), forward one
    # K/V block per step and backward K/V and dK/dV.
    sizes = sorted({r["bytes"] for r in ring})
    assert sizes == [4 * block, 4 * 2 * block]
    per_rank = {r["bytes"]: r["bytes_sent_per_rank"] for r in ring}
    assert per_rank[4 * block] == (4 - 1) * block  # cp - 1 blocks leave each rank


def _mixtral(overlap: str, pp: int = 4) -> dict:
    d = copy.deepcopy(MIXTRAL)
    d["training"]["parallelism"]["pp"] = pp
    if pp > 1:
        d["training"]["parallelism"]["pipeline"] = {
            "schedule": "interleaved-1f1b",
            "virtual_stages": 2,
        }
    d["training"]["moe"] = {"overlap": overlap}
    return d


def test_combined_1f1b_hides_the_all_to_alls_behind_the_other_micro_batch():
    plain = simulate_step(scenario_from_dict(_mixtral("none")))
    combined = simulate_step(scenario_from_dict(_mixtral("1f1b")))
    # The same collectives run (hidden ones off the compute stream), and none is lost.
    assert plain.collectives == combined.collectives
    hidden = [
        t for rc in combined.classes for t in rc.schedule.tasks if t.name.endswith("(hidden)")
    ]
    assert hidden and all(t.stream == "p2p" and t.collective.op == "all_to_all" for t in hidden)
    # Another micro-batch's kernels fill the time the all-to-alls took on the compute stream.
    assert combined.exposed_comm_s < plain.exposed_comm_s
    assert combined.time_s < plain.time_s


def test_combined_1f1b_holds_one_more_micro_batch_of_activations():
    # pp 1: plain 1F1B runs each micro-batch's forward and backward back to back; combined
    # 1F1B runs one forward ahead, so two micro-batches' activations are live at its peak.
    from simulator.execution.memory import stage_memory

    d = copy.deepcopy(MIXTRAL)
    d["cluster"]["num_hosts"] = 1
    d["training"]["global_batch_size"] = 16
    d["training"]["parallelism"] = {"ep": 8}
    plain = stage_memory(scenario_from_dict(copy.deepcopy(d)))[0]
    d["training"]["moe"] = {"overlap": "1f1b"}
    combined = stage_memory(scenario_from_dict(d))[0]
    assert combined.activations_bytes > plain.activations_bytes


def test_the_mtp_module_is_an_moe_block_with_its_own_head():
    """DeepSeek-V3's MTP module (Sec 2.2): its block is of the last layer's kind (MoE), and it
    projects [norm(h); norm(emb)] (2 x 7,168 wide) to 7,168 and runs the shared output head
    (129,280 logits) again."""
    from simulator.execution.layout import model_layout
    from simulator.model.ops import mtp_segment
    from simulator.model.presets import get_preset
    from simulator.model.spec import from_architecture

    arch = get_preset("deepseek-v3")
    last = model_layout(from_architecture(arch, "deepseek-v3")).blocks[-1]
    assert (last.name, last.mtp, last.moe, last.index) == ("mtp.0", True, True, 60)
    ops = {o.name: o for o in mtp_segment(arch, 4096, 1).ops}
    assert ops["mtp_eh_proj"].gemm == (4096, 7168, 2 * 7168)
    assert ops["mtp_logits"].gemm == (4096, 129280, 7168)


def _beside(result) -> list[tuple[float, float]]:
    """(start of each collective run beside the kernels, start of the kernels after it on the
    compute stream) on the first rank class."""
    spans = sorted(
        result.engine.timelines[0].intervals, key=lambda i: (i.start_s, i.stream != "p2p")
    )
    out = []
    for k, i in enumerate(spans):
        if i.name.endswith("(overlapped)"):
            nxt = next(
                j for j in spans[k + 1 :] if j.stream == "compute" and j.start_s >= i.start_s
            )
            out.append((i.start_s, nxt.start_s))
    return out


def test_ring_attention_exchange_runs_beside_the_attention_kernels():
    # The K/V blocks pass around the ring while the attention core computes (Megatron-Core /
    # Transformer Engine ring attention): the kernels start with the exchange, not after it.
    d = copy.deepcopy(MIXTRAL)
    d["model"] = {"preset": "llama3-8b"}
    d["training"]["parallelism"] = {"cp": 4}
    d["training"]["seq_len"] = 32768
    d["training"]["global_batch_size"] = 8
    d["cluster"]["num_hosts"] = 1
    pairs = _beside(simulate_step(scenario_from_dict(d)))
    assert pairs and all(kernels == start for start, kernels in pairs)


def test_shared_expert_overlap_runs_the_all_to_alls_beside_the_shared_experts():
    d = copy.deepcopy(MIXTRAL)
    arch = {"num_layers": 8, "hidden_size": 4096, "num_heads": 32, "num_kv_heads": 8}
    moe = {"num_experts": 8, "experts_per_token": 2, "expert_ffn_hidden_size": 14336}
    d["model"] = {
        "architecture": arch
        | {"vocab_size": 32000, "ffn": "swiglu", "moe": moe | {"shared_experts": 1}}
    }
    plain = simulate_step(scenario_from_dict(copy.deepcopy(d)))
    d["training"]["moe"] = {"overlap": "shared-expert"}
    over = simulate_step(scenario_from_dict(d))
    pairs = _beside(over)
    assert pairs and all(kernels == start for start, kernels in pairs)
    # The same collectives run, now mostly hidden behind the shared experts' GEMMs.
    assert plain.collectives == over.collectives
    assert over.exposed_comm_s < plain.exposed_comm_s and over.time_s < plain.time_s


def test_allgather_dispatcher_step_and_its_gathered_buffer():
    from simulator.execution.memory import stage_memory

    d = copy.deepcopy(MIXTRAL)
    d["training"]["moe"] = {"dispatcher": "allgather"}
    rows = _rows(d)
    ag = [
        r for r in rows if r["op"] == "all_gather" and r["group_size"] == 8 and "ep" in r["group"]
    ]
    # Tokens, probabilities and routing map: 8 ranks x 4,096 tokens x (h x 2, 8 x 2, 8) bytes.
    assert sorted(r["bytes"] for r in ag) == sorted(
        [8 * 4096 * 4096 * 2, 8 * 4096 * 8 * 2, 8 * 4096 * 8]
    )
    # Megatron-Core's global buffer holds the gathered tokens for the step: 256 MiB here.
    plain = stage_memory(scenario_from_dict(copy.deepcopy(MIXTRAL)))[0]
    gathered = stage_memory(scenario_from_dict(d))[0]
    assert gathered.static_buffers_bytes - plain.static_buffers_bytes == 8 * 4096 * 4096 * 2
