"""Compute and scaling laws: training FLOPs (6ND), PF-days, Chinchilla's compute-optimal size
and its fitted loss L(N, D). Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.execution.metrics import PF_DAY_FLOPS, TOKENS_PER_PARAM


def flops_per_param_per_token(kind: str = "decoder") -> int:
    """Training FLOPs per parameter per token, ignoring attention (Kaplan et al. 2020, Sec 2.1).

    6 = 2 (forward) + 4 (backward) multiply-adds per parameter. An encoder-decoder model sees
    each token with only half its parameters (encoder or decoder), so 3 (Brown et al. 2020,
    GPT-3 Appendix D, Table D.1 note on T5)."""
    return 3 if kind == "encoder-decoder" else 6


def training_flops(params: float, tokens: float, kind: str = "decoder") -> float:
    """C = 6 N D (3 N D for encoder-decoder)."""
    return flops_per_param_per_token(kind) * params * tokens


def pf_days(flops: float) -> float:
    """FLOPs in PF-days (1e15 FLOP/s for one day; GPT-3 Table D.1 unit)."""
    return flops / PF_DAY_FLOPS


def compute_optimal(
    flops: float, tokens_per_param: float = TOKENS_PER_PARAM
) -> tuple[float, float]:
    """(N, D) for budget C with D = r N and C = 6 N D, so N = sqrt(C / 6r) (Hoffmann et al. 2022,
    Table 3: about 20 tokens per parameter)."""
    n = math.sqrt(flops / (6 * tokens_per_param))
    return n, tokens_per_param * n


@dataclass(frozen=True, kw_only=True)
class LossFit:
    """L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str


# Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models"), Sec 3.3 / eq (2),
# Approach 3 parametric fit (nats per token on MassiveText).
CHINCHILLA_FIT = LossFit(
    E=1.69,
    A=406.4,
    B=410.7,
    alpha=0.34,
    beta=0.28,
    source="Hoffmann et al. 2022, Approach 3 fit (Sec 3.3, eq 2)",
)


def predicted_loss(params: float, tokens: float, fit: LossFit = CHINCHILLA_FIT) -> float:
    return fit.E + fit.A / params**fit.alpha + fit.B / tokens**fit.beta


def loss_optimal(flops: float, fit: LossFit = CHINCHILLA_FIT) -> tuple[float, float]:
    """(N, D) minimising L(N, D) subject to 6 N D = C.

    Hoffmann et al. 2022, eq (4): N = G (C/6)^(b/(a+b)), D = (C/6)^(a/(a+b)) / G,
    G = (alpha A / (beta B))^(1/(alpha+beta))."""
    a, b = fit.alpha, fit.beta
    g = (a * fit.A / (b * fit.B)) ** (1 / (a + b))
    return g * (flops / 6) ** (b / (a + b)), (flops / 6) ** (a / (a + b)) / g


@dataclass(frozen=True, kw_only=True)
class LossRow:
    params: float
    tokens: float
    loss: float
    label: str = ""

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params


def loss_table(
    flops: float,
    fit: LossFit = CHINCHILLA_FIT,
    factors: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8),
) -> list[LossRow]:
    """Model sizes around the 20-tokens/param optimum at fixed C, with the predicted loss; the
    loss-optimal point of the fit is added (sorted by size)."""
    n20, _ = compute_optimal(flops)
    rows = [
        LossRow(
            params=f * n20,
            tokens=flops / (6 * f * n20),
            loss=predicted_loss(f * n20, flops / (6 * f * n20), fit),
            label="20 tokens/param" if f == 1 else "",
        )
        for f in factors
    ]
    n3, d3 = loss_optimal(flops, fit)
    rows.append(
        LossRow(params=n3, tokens=d3, loss=predicted_loss(n3, d3, fit), label="loss-optimal (fit)")
    )
    return sorted(rows, key=lambda r: r.params)


# ---------------------------------------------------------------- scenario variations
