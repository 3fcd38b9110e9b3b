"""MosaicML MPT training throughput on 8x A100-80GB with FSDP (reference data for calibration
and validation).

Source: mosaicml/llm-foundry, scripts/train/benchmarking/README.md (commit 061f2c7), table
'a100_80gb' (A100 tables: '1600 Gbps node-node interconnect (RoCE)'); model shapes from
scripts/train/yamls/pretrain/mpt-*.yaml. Copied from shared/validation/published.yaml
(cases mpt-*-s2048-8xa100_80gb, confidence high, suggested tolerance 20%).
Setup for every row: seq_len 2048, 8 GPUs, FSDP FULL_SHARD (zero3) with limit_all_gathers,
no activation checkpointing, amp_bf16, triton/flash fused attention, decoupled AdamW; the
table's MP Mode DEFAULT is Composer's bf16 parameters with fp32 gradient reduction
(composer get_mixed_precision: DEFAULT -> reduce_dtype torch.float32), posed as
training.zero3.reduce_dtype fp32.
"""

# (preset, micro_batch_per_gpu, grad_accum, published tokens/s/GPU, published MFU %)
MPT_A100_8GPU = [
    ("mpt-13b", 2, 3, 2262, 59.57),
    ("mpt-7b", 6, 2, 4641, 64.23),
    ("mpt-3b", 10, 2, 10811, 62.11),
    ("mpt-1b", 14, 4, 20513, 59.86),
    ("mpt-350m", 32, 2, 58782, 51.62),
    ("mpt-125m", 40, 2, 142830, 44.79),
]


def mpt_scenario(preset: str, micro_batch: int, grad_accum: int) -> dict:
    """The scenario dict of one row."""
    return {
        "name": f"{preset}-8xa100-fsdp",
        "model": {"preset": preset},
        "training": {
            "strategy": "zero3",
            "zero3": {"reduce_dtype": "fp32"},
            "precision": "bf16-mixed",
            "optimizer": "adamw",
            # Composer's DecoupledAdamW: a loop over the parameters (model/optimizer_kernels.py)
            "optimizer_implementation": "for-loop",
            "micro_batch_size": micro_batch,
            "grad_accum_steps": grad_accum,
            "seq_len": 2048,
            "activation_checkpointing": "none",
            "flash_attention": True,
        },
        "cluster": {"topology": "dgx-a100", "num_hosts": 1},
    }
