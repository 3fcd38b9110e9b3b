"""`clustersim plan parallel`: the fastest tensor x context x pipeline x expert x data layout that
fits (the search is in simulator/studies/parallel_plan.py). The cp, ep, etp and edp columns (and
JSON keys) appear only when the search covered those degrees: a long sequence, an MoE model."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from simulator.cli.commands.plan_tables import dump_json, gb, header, ms, pct, table
from simulator.core.errors import Problem, UserError
from simulator.scenario.load import load_scenario

if TYPE_CHECKING:
    from simulator.studies.parallel_plan import ParallelPlan, PlanRow

# The extra degrees a plan shows, by the one the search covered: cp alone, ep with etp and edp.
DEGREES = {"cp": ("cp",), "ep": ("ep", "etp", "edp")}


def add_parallel(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parallel",
        help="the fastest tensor x context x pipeline x expert x data layout that fits",
        description="Searches tp (with sequence parallelism) x pp (1F1B or interleaved) x "
        "micro-batch x data-parallel strategy x recomputation at the scenario's "
        "GPU count and global batch; and context parallelism cp at seq_len >= 16384, "
        "expert parallelism ep and etp (1 or tp) for mixture-of-experts models, where the "
        "framework has a strategy that models them; prunes with the memory model and a cheap "
        "time estimate, simulates the best candidates, ranks them by tokens/s.",
    )
    p.add_argument("scenario")
    p.add_argument("--top", type=int, default=5, help="rows to print (default %(default)s)")
    p.add_argument(
        "--simulate",
        type=int,
        default=8,
        help="candidates simulated on the engine (default %(default)s)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parallel)


def cmd_parallel(args: argparse.Namespace) -> int:
    from simulator.studies.parallel_plan import CP_MIN_SEQ, CP_MIN_TOKENS, parallel_plan

    for option in ("top", "simulate"):
        if getattr(args, option) < 1:
            raise UserError(
                Problem(f"--{option}", f"expected a positive count, got {getattr(args, option)}")
            )
    s = load_scenario(args.scenario)
    plan = parallel_plan(s, top=args.top, simulate=args.simulate)
    shown = _shown(plan)
    if args.json:
        return dump_json(_json(plan, shown))
    print(header(s))
    print(
        f"{s.num_gpus} GPUs, global batch {s.global_batch_size} sequences; {plan.layouts} layouts, "
        f"{plan.fitting} fit ({plan.memory_checks} memory checks), best {min(args.simulate, plan.fitting)} by "
        f"estimate simulated, in {plan.elapsed_s:.1f} s"
    )
    if not plan.rows:
        print("no layout fits: see `clustersim run` for what would make the scenario fit")
        return 0
    print(
        table(
            [
                "#",
                "layout",
                *shown,
                "strategy",
                "recompute",
                "dp",
                "micro-batches",
                "mem/GPU",
                "step ms",
                "tokens/s",
                "MFU",
                "exposed comm ms",
            ],
            [
                [
                    str(i + 1),
                    r.layout,
                    *(str(getattr(r, d)) for d in shown),
                    r.strategy,
                    r.checkpointing,
                    str(r.dp),
                    str(r.microbatches),
                    gb(r.mem_bytes),
                    ms(r.step_time_s),
                    f"{r.tokens_per_s:,.0f}",
                    pct(r.mfu),
                    ms(r.exposed_comm_s),
                ]
                for i, r in enumerate(plan.rows)
            ],
        )
    )
    print(
        "memory: the worst pipeline stage, analytic; the layout's training.parallelism is in --json"
    )
    if "cp" in shown:
        print(
            f"cp: context parallelism ({s.training.parallel.cp_comm}), searched at seq_len >= "
            f"{CP_MIN_SEQ:,} down to {CP_MIN_TOKENS:,} tokens of a sequence per rank"
        )
    if "ep" in shown:
        print(
            "ep x etp: the experts' split over the tp x cp x dp ranks (etp 1 or tp); "
            "edp = tp x cp x dp / (ep x etp) ranks reduce each expert's gradients"
        )
    return 0


def _shown(plan: ParallelPlan) -> tuple[str, ...]:
    """The extra degree columns: those of the dimensions the search covered."""
    return tuple(c for d, cols in DEGREES.items() if d in plan.searched for c in cols)


def _json(plan: ParallelPlan, shown: tuple[str, ...]) -> dict[str, Any]:
    """The plan as JSON, the degrees the search did not cover left out (so a dense model at a
    short sequence reads as before they were searched)."""
    hidden = {c for cols in DEGREES.values() for c in cols} - set(shown)

    def row(r: PlanRow) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(r).items() if k not in hidden}

    out = {k: v for k, v in dataclasses.asdict(plan).items() if k != "searched" or plan.searched}
    out["rows"] = [row(r) for r in plan.rows]
    return out
