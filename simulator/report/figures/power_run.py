"""The power figure of a goodput run (from a report JSON, simulator/report/figures/power.py's
reader): the run's wall clock by phase (training, rework, restarts, waits, checkpoints) with the
energy of each. Only what the model computes: the run's energy is the step's average facility
power over the wall clock (execution/energy.py run_energy), so every phase is drawn at that
power; the figure says so rather than inventing a draw for restarts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.report.figures.goodput import LOSS_COLORS
from simulator.report.figures.power import (
    HOURS_PER_DAY,
    PHASES,
    TRAINING_COLOR,
    _mwh,
    _problem,
    _unit,
)
from simulator.report.figures.style import (
    figure_class,
)


@dataclass(frozen=True)
class RunPower:
    """The goodput run's mean wall clock by phase (days) at the model's power, and the
    report's run energy (its p50 wall clock: energy.run_mwh, run_days)."""

    name: str
    days: dict[str, float]  # PHASES -> days of the mean run
    power_w: dict[str, float]  # PHASES -> the cluster's average power in that phase
    peak_w: float
    min_w: float
    run_mwh: float
    run_days: float
    runs: int

    def mwh(self) -> dict[str, float]:
        return {k: self.power_w[k] * d * 86400 / 3.6e9 for k, d in self.days.items()}


def run_power(report: dict[str, Any], path: str | Path = "report") -> RunPower | None:
    """The run's phases, or None where the report has no goodput run simulated to completion
    over the whole run (none, a fixed window, or one that does not complete)."""
    g = report.get("training", {}).get("goodput")
    e = report["energy"]
    if not g or not g.get("completes") or g.get("window_days") or e.get("run_mwh") is None:
        return None
    try:
        gpus = int(report["cluster"]["num_gpus"])
        days = {"training": float(g["useful_days"])} | {
            k: float(v) / gpus / HOURS_PER_DAY for k, v in g["lost_gpu_hours"].items()
        }
        avg = float(e["cluster_power_w"]["avg"])
        return RunPower(
            name=str(report.get("name", "")),
            days=days,
            power_w=dict.fromkeys(days, avg),  # the model's charge: the step's average throughout
            peak_w=float(e["cluster_power_w"]["peak"]),
            min_w=float(e["cluster_power_w"]["min"]),
            run_mwh=float(e["run_mwh"]),
            run_days=float(e["run_days"]),
            runs=int(g["runs"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        raise _problem(
            Path(path), f"the report's training.goodput or energy is malformed: {exc!r}"
        ) from None


def run_figure(r: RunPower):
    """Left: the cluster's power over the mean run's wall clock, its phases gathered (the
    model gives each phase's total, not their order), with the step's peak and lowest
    instant; right: the energy of each phase."""
    fig = figure_class()(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.6, 1))
    unit, size = _unit(r.peak_w)
    mwh = r.mwh()
    start = 0.0
    colors = {"training": TRAINING_COLOR} | LOSS_COLORS
    lost = [k for k in r.days if k != "training" and r.days[k] > 0]
    for k, d in r.days.items():
        if d <= 0:
            continue
        left.fill_between(
            [start, start + d],
            0,
            r.power_w[k] / size,
            color=colors.get(k, "#999999"),
            linewidth=0,
            label=f"{PHASES.get(k, k)}: {d:,.1f} days, {r.power_w[k] / size:,.2f} {unit}",
        )
        start += d
    left.axhline(
        r.peak_w / size,
        color="#d62728",
        linestyle=":",
        linewidth=1,
        label=f"a step's peak instant {r.peak_w / size:,.2f} {unit}",
    )
    left.axhline(
        r.min_w / size,
        color="#1f77b4",
        linestyle=":",
        linewidth=1,
        label=f"a step's lowest instant {r.min_w / size:,.2f} {unit}",
    )
    left.set_xlim(0, start)
    left.set_ylim(0, r.peak_w / size * 1.1)
    left.set_xlabel("wall-clock days of the mean run (phases gathered, not in order)")
    left.set_ylabel(f"cluster power ({unit})")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    left.grid(alpha=0.3)
    names = [k for k in r.days if r.days[k] > 0][::-1]
    right.barh(
        [PHASES.get(k, k).split(" (")[0] for k in names],
        [mwh[k] for k in names],
        color=[colors.get(k, "#999999") for k in names],
    )
    for i, k in enumerate(names):
        right.text(mwh[k], i, f" {_mwh(mwh[k])}", va="center", fontsize=7)
    right.set_xlim(0, max(mwh.values()) * 1.35)
    right.set_xlabel("energy per run (MWh)")
    right.grid(axis="x", alpha=0.3)
    train = r.power_w["training"]
    rec_mwh = sum(mwh[k] for k in lost)
    rec_days = sum(r.days[k] for k in lost)
    rec_w = rec_mwh * 3.6e9 / (rec_days * 86400) if rec_days > 0 else train
    right.set_title(
        f"useful training {_mwh(mwh['training'])} at {train / size:,.2f} {unit}; lost time "
        f"{_mwh(rec_mwh)} at {rec_w / size:,.2f} {unit}",
        fontsize=8,
    )
    fig.suptitle(
        f"{r.name}: power over the run (mean of {r.runs} runs, {start:,.1f} days; report: "
        f"{_mwh(r.run_mwh)} over the p50 {r.run_days:,.1f} days)\n"
        "the energy model charges every wall-clock hour at the step's average draw: restarts, "
        "waits and checkpoint pauses are not modelled apart",
        fontsize=9,
    )
    return fig
