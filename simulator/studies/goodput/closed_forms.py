"""Closed forms of checkpoint/restart under failures: the checks the simulation is held to where
their assumptions hold (Poisson failures, constant checkpoint and restart costs).

Symbols: delta = checkpoint cost (the time the job pauses), M = mean time between failures of
the whole job, R = restart time (detection + re-initialization + checkpoint load), tau =
compute time between checkpoints, T_s = failure-free solve time. Pure functions, seconds.
"""

from __future__ import annotations

import math


def young_interval(delta: float, mtbf: float) -> float:
    """Young 1974, "A first order approximation to the optimum checkpoint interval", CACM 17(9):
    tau_opt = sqrt(2 delta M)."""
    return math.sqrt(2.0 * delta * mtbf)


def daly_interval(delta: float, mtbf: float) -> float:
    """Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps",
    FGCS 22(3):303-312: tau_opt = sqrt(2 delta M) [1 + (1/3) sqrt(delta / 2M) +
    (1/9) (delta / 2M)] - delta for delta < 2M, else M."""
    if delta >= 2.0 * mtbf:
        return mtbf
    x = delta / (2.0 * mtbf)
    return math.sqrt(2.0 * delta * mtbf) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta


def daly_expected_wall(
    solve: float, tau: float, delta: float, restart: float, mtbf: float
) -> float:
    """Daly 2006's complete model of the expected wall time under Poisson failures (failures
    also strike during checkpoints and restarts): T_w = M e^(R/M) (e^((tau + delta)/M) - 1) T_s / tau."""
    return mtbf * math.exp(restart / mtbf) * math.expm1((tau + delta) / mtbf) * solve / tau


def log_daly_expected_wall(
    solve: float, tau: float, delta: float, restart: float, mtbf: float
) -> float:
    """log of daly_expected_wall, computed in logarithms so that no input overflows (e^(R/M) is
    10^260 for R = 10 min, M = 1 s)."""
    x = (tau + delta) / mtbf
    log_expm1 = x if x > 30.0 else math.log(math.expm1(x))  # log(e^x - 1) = x + log1p(-e^-x)
    return math.log(mtbf) + restart / mtbf + log_expm1 + math.log(solve) - math.log(tau)


def first_order_waste(
    tau: float, delta: float, restart: float, mtbf: float, commit_lag: float = 0.0
) -> float:
    """Expected fraction of wall time lost, to first order (tau << M; a failure falls uniformly
    within a checkpoint cycle): delta / tau for checkpoints, ((tau + delta) / 2 + lag) / M of
    rework (lag: an asynchronous checkpoint is durable only `commit_lag` after its pause), and
    R / M for restarts. Effective training time ratio ~ 1 - waste."""
    return delta / tau + ((tau + delta) / 2.0 + commit_lag) / mtbf + restart / mtbf


def poisson_band(mean: float, z: float = 2.0) -> tuple[float, float]:
    """mean -/+ z sqrt(mean): the spread of a Poisson count (the normal approximation)."""
    spread = z * math.sqrt(mean)
    return mean - spread, mean + spread
