"""`clustersim plan site`: how many GPUs a site's power budget holds, sized for the simulated
step's peak draw, and the days to train there (the computation: simulator/studies/site_plan.py)."""

from __future__ import annotations

import argparse
import math
import os

from simulator.cli.commands.plan_tables import dump_json, header, positive, train_table
from simulator.cli.output import check_runs
from simulator.core.errors import Problem, UserError
from simulator.scenario.load import load_scenario
from simulator.studies import site_plan


def add_site(sub) -> None:
    p = sub.add_parser(
        "site",
        help="how many GPUs a site's power budget holds (sized for peak draw), and days to train",
    )
    p.add_argument("scenario")
    p.add_argument("--site-power", required=True, help="the site's facility power, e.g. 20MW")
    p.add_argument("--pue", type=float, help="the site's PUE (default: cluster.power.pue, 1.1)")
    p.add_argument("--tokens", type=float, help="default: training.tokens, else 20 per parameter")
    p.add_argument("--runs", type=int, metavar="N", help="goodput Monte Carlo runs (default 100)")
    p.add_argument("--seed", type=int, metavar="S", help="their seed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_site)


def cmd_site(args: argparse.Namespace) -> int:
    from simulator.core.units import UnitError
    from simulator.scenario.schema_power import parse_power

    try:
        site_w = parse_power(args.site_power.replace(" ", ""))
    except UnitError as exc:
        raise UserError(Problem("--site-power", str(exc), "e.g. 20MW or 500kW")) from None
    positive(site_w, "--site-power")
    positive(args.pue, "--pue")
    if args.pue is not None and args.pue < 1:
        raise UserError(Problem("--pue", f"a PUE is at least 1, got {args.pue:g}"))
    positive(args.tokens, "--tokens")
    check_runs(args.runs, args.seed)
    s = load_scenario(args.scenario)
    plan = site_plan.site_plan(
        s, site_w, args.pue, args.tokens, args.runs, args.seed, os.cpu_count() or 1
    )
    if args.json:
        return dump_json(plan)
    print(header(s))
    per = plan.peak_w_per_gpu
    print(
        f"site: {site_w / 1e6:,.3g} MW at PUE {plan.pue:g}; sized for peak draw: "
        f"{per:,.0f} W per GPU at its highest instant (board and its host's share, simulated "
        f"on {plan.given_gpus:,} GPUs) x PUE = {per * plan.pue:,.0f} W"
    )
    raw = math.floor(site_w / (per * plan.pue))
    print(
        f"  GPUs = floor({site_w:,.0f} / {per * plan.pue:,.1f}) = {raw:,}; whole hosts of "
        f"{plan.gpus_per_host}: {raw // plan.gpus_per_host * plan.gpus_per_host:,}"
        + (f"; {plan.note}" if plan.note else "")
    )
    if not plan.train:
        print("  the budget holds not one host")
        return 0
    r = plan.train
    assert plan.site_peak_w is not None and plan.site_avg_w is not None  # set with train
    print(
        f"  -> {plan.gpus:,} GPUs on {plan.hosts:,} hosts: site peak {plan.site_peak_w / 1e6:,.2f} MW, "
        f"average {plan.site_avg_w / 1e6:,.2f} MW (simulated at that size)"
    )
    train_table([r], by="num_gpus")
    if plan.run_mwh is not None:
        print(f"  energy of the run: {plan.run_mwh:,.0f} MWh (facility, PUE {plan.pue:g})")
    return 0
