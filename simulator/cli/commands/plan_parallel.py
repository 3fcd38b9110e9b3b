"""`clustersim plan parallel`: the fastest tensor x pipeline x data layout that fits (the search
is in simulator/studies/parallel_plan.py)."""

from __future__ import annotations

import argparse

from simulator.cli.commands.plan_tables import dump_json, gb, header, ms, pct, table
from simulator.core.errors import Problem, UserError
from simulator.scenario.load import load_scenario


def add_parallel(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parallel",
        help="the fastest tensor x pipeline x data layout that fits",
        description="Searches tp (with sequence parallelism) x pp (1F1B or interleaved) x "
        "micro-batch x data-parallel strategy x recomputation at the scenario's "
        "GPU count and global batch; prunes with the memory model and a cheap "
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
    from simulator.studies.parallel_plan import parallel_plan

    for option in ("top", "simulate"):
        if getattr(args, option) < 1:
            raise UserError(
                Problem(f"--{option}", f"expected a positive count, got {getattr(args, option)}")
            )
    s = load_scenario(args.scenario)
    plan = parallel_plan(s, top=args.top, simulate=args.simulate)
    if args.json:
        return dump_json(plan)
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
    return 0
