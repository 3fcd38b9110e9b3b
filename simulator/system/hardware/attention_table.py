"""Fused attention kernels' throughput by kernel, sequence length, masking and pass, from
published benchmark figures.

A fused attention kernel's achieved FLOP/s depends on which kernel runs (FlashAttention-2,
FlashAttention-3, cuDNN's fused attention), the sequence length (short sequences give fewer
query blocks than the GPU has SMs and pay each block's fixed costs over a short key loop),
causal masking (the diagonal blocks do partial work) and the pass (the backward's five GEMMs and
its dQ accumulation run slower than the forward). A GPU family whose catalog entry names a
table (`Efficiency.attention_table`) times its attention kernels from it:

    efficiency = TFLOP/s(kernel, pass, L) x causal(kernel, L) / dense 16-bit peak

- L, the sequence length, is sqrt(queries x keys) of the kernel call (the benchmarks' s when
  both are s; a context-parallel rank's queries against all the keys in between), interpolated
  linearly in log2(L) between the measured lengths and held at the ends (512 and 16k).
- FLOPs are counted as the benchmarks count them and as model/ops.py does: 4 x s_q x s_kv x
  d per head forward, halved under causal masking; the backward 2.5x the forward.
- causal(kernel, L): the published causal / non-causal forward ratio at L. No causal backward
  figure is published: the same ratio is taken for the backward (assumed).

Source: Shah et al. 2024, "FlashAttention-3: Fast and Accurate Attention with Asynchrony and
Low-precision" (arXiv 2407.08608), Fig. 5 (forward, head dim 128, causal False and True) and
Fig. 6 (backward, head dim 128, causal False), on an H100 80GB SXM5, 16-bit inputs, batch x
sequence = 16k tokens, hidden 2048. The values are the figures' bar labels (TFLOP/s), as a
third-party transcription of the figures reads them (two transcriptions of the non-causal forward
figure differ in two cells: cuDNN / FlashAttention-3 at 512, 497 / 467 or the reverse, and
FlashAttention-2 at 16k, 370 or 395; the first readings are taken). Head dim 128 stands for every
head dim. GPUs without a table keep their single FlashAttention-2 figure (`Efficiency.attention`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.core.cache import Memo
from simulator.model.ops_common import AttnShape

SEQ_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
_LOG2_LENGTHS = np.log2(SEQ_LENGTHS)


@dataclass(frozen=True, kw_only=True)
class KernelFigures:
    """One kernel's published TFLOP/s at SEQ_LENGTHS."""

    forward: tuple[float, ...]
    forward_causal: tuple[float, ...]
    backward: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class AttentionTable:
    """Published attention-kernel throughputs of one GPU family."""

    name: str
    source: str
    peak_tflops: float  # the dense 16-bit peak of the GPU the figures were measured on
    kernels: dict[str, KernelFigures] = field(compare=False)
    memo: Memo[float] = field(default_factory=lambda: Memo(max_entries=1 << 14), compare=False)

    def efficiency(self, kernel: str, shape: AttnShape) -> float:
        """Achieved / dense peak of one attention kernel call (module doc)."""
        return self.memo.get((kernel, shape), lambda: self._efficiency(kernel, shape))

    def _efficiency(self, kernel: str, shape: AttnShape) -> float:
        k = self.kernels[kernel]
        x = math.log2(math.sqrt(shape.s_q * shape.s_kv))
        tflops = _interpolate(k.backward if shape.backward else k.forward, x)
        if shape.causal:
            tflops *= _interpolate(k.forward_causal, x) / _interpolate(k.forward, x)
        return tflops / self.peak_tflops


def _interpolate(values: tuple[float, ...], x: float) -> float:
    """Linear in log2(L) between SEQ_LENGTHS, held at the ends (np.interp)."""
    return float(np.interp(x, _LOG2_LENGTHS, values))


_FA3_PAPER = (
    "Shah et al. 2024 (FlashAttention-3, arXiv 2407.08608) Fig. 5-6: H100 80GB SXM5, head dim 128"
)

H100_SXM_FA3_PAPER = AttentionTable(
    name="h100-sxm-fa3-paper",
    source=_FA3_PAPER,
    peak_tflops=989.4,  # H100 SXM5 dense bf16/fp16 (NVIDIA datasheet)
    kernels={
        "flash-attention-2": KernelFigures(
            forward=(309.0, 350.0, 362.0, 368.0, 370.0, 370.0),
            forward_causal=(191.0, 260.0, 298.0, 319.0, 333.0, 335.0),
            backward=(214.0, 260.0, 291.0, 310.0, 318.0, 322.0),
        ),
        "cudnn": KernelFigures(
            forward=(497.0, 574.0, 617.0, 609.0, 600.0, 595.0),
            forward_causal=(315.0, 410.0, 484.0, 518.0, 529.0, 539.0),
            backward=(305.0, 408.0, 465.0, 499.0, 518.0, 516.0),
        ),
        "flash-attention-3": KernelFigures(
            forward=(467.0, 565.0, 625.0, 638.0, 646.0, 648.0),
            forward_causal=(292.0, 423.0, 521.0, 579.0, 602.0, 616.0),
            backward=(316.0, 424.0, 501.0, 542.0, 559.0, 561.0),
        ),
    },
)

ATTENTION_TABLES = {t.name: t for t in (H100_SXM_FA3_PAPER,)}


def attention_table(name: str) -> AttentionTable:
    return ATTENTION_TABLES[name]


def kernels_of(table_name: str) -> tuple[str, ...]:
    """The kernels a GPU's table has figures for (none without a table)."""
    if not table_name:
        return ()
    return tuple(attention_table(table_name).kernels)
