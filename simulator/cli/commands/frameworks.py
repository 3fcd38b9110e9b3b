"""`clustersim frameworks [SCENARIO]`: the scenario under each framework profile, side by side;
`clustersim frameworks --cases`: the framework validation cases, predicted against published."""

from __future__ import annotations

import argparse
import dataclasses
import json

from simulator.core.units import fmt_bytes


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "frameworks",
        help="one scenario under each framework profile (memory, step, collectives), "
        "or the framework validation cases (--cases)",
    )
    p.add_argument(
        "scenario", nargs="?", help="scenario YAML or shipped name (default: the default scenario)"
    )
    p.add_argument(
        "--cases", action="store_true", help="predict the shipped framework validation cases"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_frameworks)


def cmd_frameworks(args: argparse.Namespace) -> int:
    from simulator.scenario.load import DEFAULT_SCENARIO, load_scenario
    from simulator.studies import frameworks as study

    if args.cases:
        cases = study.validation()
        if args.json:
            print(json.dumps([dict(dataclasses.asdict(r), error=r.error) for r in cases], indent=2))
        else:
            print("\n".join(_case_lines(cases)))
        return 0
    scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
    rows = study.compare(scenario)
    if args.json:
        print(
            json.dumps(
                {"scenario": scenario.name, "frameworks": [dataclasses.asdict(r) for r in rows]},
                indent=2,
            )
        )
    else:
        print("\n".join(_compare_lines(scenario, rows)))
    return 0


def _compare_lines(scenario, rows) -> list[str]:
    head = (
        f"{scenario.name}: {scenario.model.name}, {scenario.strategy}, {scenario.num_gpus} x "
        f"{scenario.cluster.gpu.name}"
    )
    lines = [head, ""]
    lines.append(
        f"{'framework':<15}{'peak/GPU':>11}{'states':>10}{'activ.':>10}{'buffers':>10}{'step':>11}"
        f"{'comm':>10}{'exposed':>10}{'tok/s/GPU':>11}"
    )
    for r in rows:
        if r.error:
            lines.append(f"{r.framework:<15}  cannot run it: {r.error}")
            continue
        c = r.components
        states = c["params"] + c["grads"] + c["optimizer"]
        lines.append(
            f"{r.framework:<15}{fmt_bytes(r.peak_bytes):>11}{fmt_bytes(states):>10}"
            f"{fmt_bytes(c['activations']):>10}{fmt_bytes(c['buffers']):>10}{1e3 * r.step_s:>9.1f}ms"
            f"{1e3 * r.comm_s:>8.1f}ms{1e3 * r.exposed_s:>8.1f}ms{r.tokens_per_s_per_gpu:>11,.0f}"
        )
    lines.append("")
    lines.append("collectives per step (count, size range, total):")
    for r in rows:
        for op, c in [] if r.error else r.collectives.items():
            span = (
                fmt_bytes(c["max_bytes"])
                if c["min_bytes"] == c["max_bytes"]
                else f"{fmt_bytes(c['min_bytes'])} .. {fmt_bytes(c['max_bytes'])}"
            )
            lines.append(
                f"  {r.framework:<15}{op:<26}{c['count']:>6} x {span:<24} total {fmt_bytes(c['total_bytes'])}"
            )
    lines.append("")
    lines.append(
        "peak at: " + "; ".join(f"{r.framework}: {r.peak_at}" for r in rows if not r.error)
    )
    return lines


def _case_lines(rows) -> list[str]:
    lines = [
        f"{'case':<50}{'framework':<15}{'published':>11}{'predicted':>11}{'error':>9}  verdict"
    ]
    for r in rows:
        ok = abs(r.error) <= r.tolerance
        verdict = f"within {100 * r.tolerance:.0f}%" if ok else f"MISS (> {100 * r.tolerance:.0f}%)"
        lines.append(
            f"{r.id:<50}{r.framework:<15}{r.published:>11,.1f}{r.predicted:>11,.1f}{100 * r.error:>+8.1f}%  "
            f"{verdict} [{r.role}]"
        )
    lines.append("")
    lines += [f"known miss {r.id}: {r.known_deviation}" for r in rows if r.known_deviation]
    return lines
