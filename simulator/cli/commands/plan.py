"""`clustersim plan min-gpus|max-model|budget|train|site`: capacity-planning answers as small tables,
each with the assumptions it rests on (the computation is in simulator/studies/planner.py)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os

from simulator.cli.commands.plan_parallel import add_parallel
from simulator.cli.commands.plan_site import add_site
from simulator.cli.commands.plan_tables import (
    dump_json,
    gb,
    header,
    ms,
    pct,
    positive,
    table,
    train_table,
)
from simulator.cli.output import check_runs
from simulator.core.errors import Problem, UserError
from simulator.execution.frameworks import FRAMEWORKS
from simulator.execution.metrics import PF_DAY_FLOPS, TOKENS_PER_PARAM
from simulator.execution.strategies import get_strategy
from simulator.scenario.load import derive, load_scenario
from simulator.spec.specs import Scenario
from simulator.studies import planner, scaling
from simulator.studies.suggest import fit_suggestions, most_sharded

MEMORY_NOTE = (
    "memory: ZeRO-paper accounting (clustersim run's model), peak of one step; "
    "micro_batch_size and grad_accum_steps are kept per GPU (weak scaling)"
)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="capacity planning: min GPUs, max model, compute budget, "
        "parallel layout, time and cost to train",
    )
    sub = plan.add_subparsers(dest="plan_command", required=True, metavar="QUESTION")

    p = sub.add_parser(
        "min-gpus", help="smallest GPU count that fits, per strategy, and the fastest"
    )
    p.add_argument("scenario")
    _strategies_option(p)
    p.add_argument(
        "--at",
        type=int,
        metavar="N",
        help="compare the strategies on N GPUs (default: the smallest count on which any fits)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_min_gpus)

    p = sub.add_parser(
        "max-model", help="largest model that fits on the scenario's cluster, per strategy"
    )
    p.add_argument("scenario")
    _strategies_option(p)
    p.add_argument(
        "--family",
        help="search the presets of a family (llama2, gpt3, mpt, ...) instead of "
        "bare parameter counts",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_max_model)

    p = sub.add_parser("budget", help="compute-optimal model for a compute budget (Chinchilla)")
    p.add_argument(
        "scenario",
        nargs="?",
        help="cluster and training setup to train it on (needed for --gpu-days)",
    )
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--gpu-days", type=float, help="GPU-days on the scenario's GPU")
    given.add_argument("--pf-days", type=float, help="PF-days (1e15 FLOP/s x 1 day)")
    given.add_argument("--flops", type=float, help="training FLOPs")
    p.add_argument("--mfu", type=float, help="assumed MFU for --gpu-days (default: simulated)")
    _strategies_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_budget)

    add_parallel(sub)
    add_site(sub)

    p = sub.add_parser("train", help="time and cost to train the scenario's model on some tokens")
    p.add_argument("scenario")
    p.add_argument("--tokens", type=float, help="default: training.tokens, else 20 per parameter")
    p.add_argument(
        "--gpus", help="GPU counts to compare, e.g. 64,256,1024 (default: the scenario's)"
    )
    p.add_argument(
        "--price", type=float, help="USD per GPU-hour (default: cluster.price_per_gpu_hour)"
    )
    p.add_argument(
        "--runs",
        type=int,
        metavar="N",
        help="Monte Carlo runs of the wall-clock days with "
        "failures, checkpoints and restarts (default: reliability.runs, 100)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="their seed (default: reliability.seed, else training.seed)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)


def _strategies_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strategies",
        default=None,
        help="comma-separated (default: those of the scenario's framework among "
        f"{','.join(planner.STRATEGY_ORDER)})",
    )


def _strategies(text: str | None, s: Scenario | None = None) -> tuple[str, ...]:
    offered = FRAMEWORKS[s.training.framework.name] if s is not None else None
    if text is None:
        return tuple(
            n for n in planner.STRATEGY_ORDER if offered is None or n in offered.strategies
        )
    out = [get_strategy(name, "--strategies").name for name in text.split(",") if name.strip()]
    if not out:
        raise UserError(Problem("--strategies", "no strategy given", "e.g. ddp,zero3"))
    missing = [n for n in out if offered is not None and n not in offered.strategies]
    if missing:
        assert offered is not None  # nothing is missing without a framework
        raise UserError(
            Problem(
                "--strategies",
                f"framework {offered.name} does not offer {', '.join(missing)}",
                f"use some of {', '.join(offered.strategies)}",
            )
        )
    return tuple(out)


def cmd_min_gpus(args: argparse.Namespace) -> int:
    s = load_scenario(args.scenario)
    positive(args.at, "--at")
    plan = planner.min_gpus_plan(s, _strategies(args.strategies, s), compare_at=args.at)
    if args.json:
        return dump_json(plan)
    print(header(s))
    print(
        f"GPU counts searched: 1, 2, 4 ... within a host, then whole hosts of {s.cluster.gpus_per_host}, "
        f"up to {planner.MAX_GPUS:,}"
    )
    print(
        table(
            ["strategy", "min GPUs", "mem/GPU", "capacity", "step ms", "tokens/s/GPU", "MFU"],
            [
                [
                    r.strategy,
                    r.num_gpus or f"> {planner.MAX_GPUS:,}",
                    gb(r.mem_total_bytes),
                    gb(r.capacity_bytes),
                    ms(r.step_time_s),
                    f"{r.tokens_per_s_per_gpu:,.0f}" if r.tokens_per_s_per_gpu else "-",
                    pct(r.mfu),
                ]
                for r in plan.at_minimum
            ],
        )
    )
    for strategy, found in plan.minimum.items():
        if found.invalid_note:
            print(
                f"  {strategy}: smaller counts are not valid for this scenario ({found.invalid_note})"
            )
    if plan.compare_at is None:
        print(
            "\nNo strategy fits at any size as configured; changes checked with the same memory model:"
        )
        for hint in fit_suggestions(planner.with_strategy(s, most_sharded(s))):
            print(f"  - {hint}")
        return 0
    why = "given with --at" if args.at else "the smallest count on which any strategy fits"
    print(f"\nAll strategies on {plan.compare_at} GPUs ({why}); each step simulated:")
    print(
        table(
            ["strategy", "fits", "mem/GPU", "step ms", "exposed comm ms", "tokens/s/GPU", "MFU"],
            [
                [
                    r.strategy,
                    "yes" if r.fits else "OOM",
                    gb(r.mem_total_bytes),
                    ms(r.step_time_s),
                    ms(r.exposed_comm_s),
                    f"{r.tokens_per_s_per_gpu:,.0f}" if r.tokens_per_s_per_gpu else "-",
                    pct(r.mfu),
                ]
                for r in plan.compared
            ],
        )
    )
    if plan.fastest:
        print(f"fastest that fits on {plan.compare_at} GPUs: {plan.fastest}")
    else:
        print(f"none fits on {plan.compare_at} GPUs")
    print(MEMORY_NOTE)
    return 0


def cmd_max_model(args: argparse.Namespace) -> int:
    s = load_scenario(args.scenario)
    rows = planner.max_model_plan(s, _strategies(args.strategies, s), args.family)
    if args.json:
        return dump_json([dataclasses.asdict(r) for r in rows])
    print(header(s))
    print(f"cluster: {s.cluster.num_gpus} GPUs, {gb(s.cluster.gpu.memory_bytes)} each")
    print(
        table(
            ["strategy", "largest model that fits", "params", "mem/GPU", "capacity"],
            [
                [
                    r.strategy,
                    r.model,
                    f"{r.params:,}" if r.params else "-",
                    gb(r.mem_total_bytes),
                    gb(r.capacity_bytes),
                ]
                for r in rows
            ],
        )
    )
    if args.family:
        print(
            f"searched the presets named {args.family}*: "
            + ", ".join(planner.family_presets(args.family))
        )
    else:
        print(
            "searched bare parameter counts (1M .. 100T) by bisection on log(params) to 0.1%; a bare "
            "count gets a GPT-3-like shape (d_model / n_layers ~ 128, P ~ 12 L h^2) with the scenario's "
            "training setup; embeddings and logits are not in the activations, so a real "
            "architecture of that size (large vocabulary) may need a little more"
        )
    print(MEMORY_NOTE)
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    for opt in ("gpu_days", "pf_days", "flops", "mfu"):
        positive(getattr(args, opt), "--" + opt.replace("_", "-"))
    s = load_scenario(args.scenario) if args.scenario else None
    flops = args.flops or (args.pf_days * PF_DAY_FLOPS if args.pf_days else None)
    plan = planner.budget_plan(flops, args.gpu_days, s, args.mfu, _strategies(args.strategies, s))
    if args.json:
        return dump_json(plan)
    print(
        f"budget: C = {plan.flops:.4g} FLOPs = {scaling.pf_days(plan.flops):,.4g} PF-days ({plan.source})"
    )
    if args.gpu_days:
        assert s is not None  # budget_plan refuses GPU-days without a scenario
        how = (
            "given with --mfu"
            if args.mfu
            else (
                f"simulated for the optimal model on this cluster, "
                f"fixed point after {plan.iterations} iteration(s)"
            )
        )
        print(
            f"  C = GPU-days x 86400 s x {planner.peak_flops(s) / 1e12:g} TFLOP/s peak x MFU ({how})"
        )
    print(
        f"compute-optimal (Chinchilla, Hoffmann et al. 2022 Table 3: ~{TOKENS_PER_PARAM} tokens per "
        f"parameter, C = 6 N D):\n  N = sqrt(C / 120) = {plan.params / 1e9:.3g}B params, "
        f"D = 20 N = {plan.tokens / 1e9:,.4g}B tokens"
    )
    fit = scaling.CHINCHILLA_FIT
    print(
        f"\npredicted loss at fixed C: L(N, D) = {fit.E} + {fit.A} / N^{fit.alpha} + {fit.B} / D^{fit.beta} "
        f"({fit.source}):"
    )
    print(
        table(
            ["params", "tokens", "tokens/param", "loss", ""],
            [
                [
                    f"{r.params / 1e9:.3g}B",
                    f"{r.tokens / 1e9:,.4g}B",
                    f"{r.tokens_per_param:,.1f}",
                    f"{r.loss:.4f}",
                    r.label,
                ]
                for r in plan.loss_rows
            ],
        )
    )
    print(
        "  the fit's own optimum uses fewer params and more tokens than the 20:1 rule (Approach 3 "
        "exponent a = 0.46 vs 0.50); the loss differs by < 1% near either"
    )
    if plan.train:
        assert s is not None  # there are training rows only on a scenario's cluster
        print(
            f"\ntraining the {plan.params / 1e9:.3g}B model on {plan.tokens / 1e9:,.4g}B tokens on "
            f"{s.cluster.num_gpus} x {s.cluster.gpu.name} ({s.training.precision.name}, micro-batch "
            f"{s.training.micro_batch_size}, checkpointing {s.training.activation_checkpointing}):"
        )
        train_table(plan.train, by="strategy")
        print(
            "  days use the simulator's model FLOPs (6N + 12 L h s per token, attention included), "
            "so they exceed C / (GPUs x peak x MFU) by the attention share"
        )
    return 0


def _gpu_counts(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        counts = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(
            Problem(
                "--gpus", f"expected comma-separated integers, got {text!r}", "e.g. 64,256,1024"
            )
        ) from None
    if not counts or min(counts) < 1:
        raise UserError(Problem("--gpus", "GPU counts must be >= 1", "e.g. 64,256,1024"))
    return counts


def cmd_train(args: argparse.Namespace) -> int:
    positive(args.tokens, "--tokens")
    if args.price is not None and not (args.price >= 0 and math.isfinite(args.price)):
        raise UserError(Problem("--price", f"expected >= 0 USD per GPU-hour, got {args.price:g}"))
    check_runs(args.runs, args.seed)
    s = load_scenario(args.scenario)
    if args.price is not None:
        s = derive(s, {"cluster.price_per_gpu_hour": args.price})
    plan = planner.train_plan(
        s, args.tokens, _gpu_counts(args.gpus), args.runs, args.seed, os.cpu_count() or 1
    )
    if args.json:
        return dump_json(plan)
    print(header(s))
    kind = s.model.kind
    k = scaling.flops_per_param_per_token(kind)
    print(f"training on {plan.tokens:.4g} tokens ({plan.tokens / plan.params:.1f} per parameter):")
    print(
        f"  C = {k} N D = {plan.flops_6nd:.4g} FLOPs = {scaling.pf_days(plan.flops_6nd):,.1f} PF-days "
        f"(GPT-3 Table D.1 convention{', encoder-decoder: 3ND' if k == 3 else ''})"
    )
    print(
        f"  the simulator's model FLOPs (attention included) = {plan.model_flops:.4g} = "
        f"{scaling.pf_days(plan.model_flops):,.1f} PF-days (what the days below are based on)"
    )
    train_table(plan.rows, by="num_gpus")
    if s.cluster.price_per_gpu_hour is None:
        print("  cost: give cluster.price_per_gpu_hour in the scenario or --price USD")
    else:
        print(f"  cost = GPU-hours x ${s.cluster.price_per_gpu_hour:g} per GPU-hour")
    if not all(r.fits for r in plan.rows):
        print("  OOM rows would not run as configured: see `clustersim plan min-gpus`")
    return 0
