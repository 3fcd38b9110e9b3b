"""How many GPUs a site's power budget holds, and the run on them (issue 20's site budget):
`clustersim plan site`. A site is sized for peak draw (execution/energy.py's highest instant)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.core.errors import Problem, UserError
from simulator.execution.context import SimContext
from simulator.execution.metrics import TOKENS_PER_PARAM
from simulator.scenario.load import derive, with_gpus
from simulator.spec.specs import Scenario
from simulator.studies.planner import TrainRow, train_row
from simulator.system.topology.loader import MAX_GPUS


@dataclass(frozen=True, kw_only=True)
class SitePlan:
    """How many GPUs a site's power budget holds and how the run goes on them (site_plan)."""

    site_w: float
    pue: float
    gpus_per_host: int
    given_gpus: int  # the scenario's own size, where the peak per GPU was simulated
    peak_w_per_gpu: float  # IT peak per GPU at that size: its board and its host's share
    gpus: int  # floor(site / (peak per GPU x PUE)), down to whole hosts and a valid layout
    hosts: int
    site_peak_w: float | None = None  # the site's simulated peak at `gpus` (PUE included)
    site_avg_w: float | None = None
    train: TrainRow | None = None
    run_mwh: float | None = None
    note: str = ""


def site_plan(
    scenario: Scenario,
    site_w: float,
    pue: float | None = None,
    tokens: float | None = None,
    runs: int | None = None,
    seed: int | None = None,
    jobs: int = 1,
) -> SitePlan:
    """The GPUs a site of `site_w` facility watts holds at `pue` (default: the scenario's), and
    the run on them. A site is sized for peak draw: the peak per GPU is the simulated step's
    highest instant of IT power (every GPU's board and its host's share, execution/energy.py)
    at the scenario's own size, over its GPUs; GPUs = floor(site / (peak per GPU x PUE)),
    rounded down to whole hosts, then down host by host until the layout is valid (tp x pp x
    cp dividing the count) and the simulated site peak at that size fits the budget. The run
    is simulated there (micro-batch and accumulation kept per GPU, studies/simulate)."""
    from simulator.studies.simulate import simulate

    if pue is not None:
        scenario = derive(scenario, {"cluster.power.pue": pue})
    pue = scenario.cluster.power.pue
    per_host = scenario.cluster.gpus_per_host
    base = simulate(scenario, goodput=False, interval=False).get("energy")
    if not base:
        raise UserError(
            Problem(
                "cluster.gpu",
                "the GPU has no power figures, so the site's budget cannot be split",
                "give cluster.power.gpu (or a custom GPU's power)",
            )
        )
    peak = base["cluster_power_w"]["peak"] / base["pue"] / scenario.num_gpus
    hosts = math.floor(site_w / (peak * pue)) // per_host
    common = {
        "site_w": site_w,
        "pue": pue,
        "gpus_per_host": per_host,
        "given_gpus": scenario.num_gpus,
        "peak_w_per_gpu": peak,
    }
    tokens = float(tokens or scenario.training.tokens or TOKENS_PER_PARAM * scenario.model.params)
    ctx, notes = SimContext(), []
    if hosts * per_host > MAX_GPUS:
        notes.append(f"the budget's {hosts * per_host:,} GPUs capped at {MAX_GPUS:,}")
        hosts = MAX_GPUS // per_host
    while hosts >= 1:
        n = hosts * per_host
        try:
            s = with_gpus(scenario, n)
        except UserError as exc:
            if not any(x.startswith("not a valid layout") for x in notes):
                notes.append(
                    f"not a valid layout at {n:,} GPUs and down ({exc.problems[0].message})"
                )
            hosts -= 1
            continue
        s = derive(s, {"training.tokens": tokens})
        report = simulate(s, ctx=ctx, runs=runs, seed=seed, jobs=jobs, interval=False)
        e = report["energy"]
        if e["cluster_power_w"]["peak"] > site_w and hosts > 1:
            notes.append(f"{n:,} GPUs peak at {e['cluster_power_w']['peak'] / 1e6:,.3f} MW")
            hosts -= 1
            continue
        return SitePlan(
            **common,
            gpus=s.num_gpus,
            hosts=hosts,
            site_peak_w=e["cluster_power_w"]["peak"],
            site_avg_w=e["cluster_power_w"]["avg"],
            train=train_row(s, tokens, ctx, runs=runs, seed=seed, jobs=jobs),
            run_mwh=e["run_mwh"],
            note="; ".join(notes),
        )
    return SitePlan(**common, gpus=0, hosts=0, note="the budget holds not one host")
