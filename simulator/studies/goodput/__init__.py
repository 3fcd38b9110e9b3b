"""Whole-run goodput: failures, checkpoints and restarts over a training run, simulated as a
renewal process over all runs at once (renewal.py) or, for slow nodes and finite spares that
run out, on simpy (process.py, the reference), and checked against closed forms
(closed_forms.py), so that days to train are wall-clock days.

    result = simulate_goodput(scenario, step_s, work_s)       # GoodputResult or None (disabled)
"""

from simulator.studies.goodput.monte_carlo import GoodputResult, run_monte_carlo, simulate_goodput

__all__ = ["GoodputResult", "run_monte_carlo", "simulate_goodput"]
