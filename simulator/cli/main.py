"""The `clustersim` command: the only module that prints.

User mistakes (ScenarioError) print every problem and exit with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator import __version__
from simulator.core.resources import scenario_dir
from simulator.core.errors import Problem, ScenarioError
from simulator.scenario.load import DEFAULT_SCENARIO, load_scenario

EXIT_USAGE = 2


def default_scenario_path() -> Path:
    return scenario_dir() / f"{DEFAULT_SCENARIO}.yaml"


def cmd_run(args: argparse.Namespace) -> int:
    from simulator.studies.simulate import simulate

    path = Path(args.scenario) if args.scenario else default_scenario_path()
    for option, out in (("--json-out", args.json_out), ("--trace", args.trace)):
        if out and Path(out).resolve() == path.resolve():
            raise ScenarioError(Problem(option, "refusing to overwrite the scenario file itself",
                                        "give another output path"))
    scenario = load_scenario(path)
    report = simulate(scenario, trace_path=args.trace, backend=args.network)
    from simulator.report.report import render_text, to_json

    text = to_json(report)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    print(text if args.json else render_text(report))
    return 0 if report["memory"]["fits"] or not args.fail_on_oom else 1


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            scenario = load_scenario(name)
        except ScenarioError as exc:
            failed += 1
            print(exc.render(), file=sys.stderr)
            continue
        print(f"{name}: ok ({scenario.name}: {scenario.model.name}, {scenario.strategy}, "
              f"{scenario.cluster.num_gpus} x {scenario.cluster.gpu.name})")
    return EXIT_USAGE if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from simulator.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from simulator.model import presets
    from simulator.model.transformer import param_count

    for name in presets.preset_names():
        arch = presets.get_preset(name)
        print(f"{name:<16} {arch.kind:<16} {param_count(arch):>18,} params  "
              f"{arch.total_layers:>4} layers  hidden {arch.hidden_size}")
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    from simulator.system.hardware import GPU_CATALOG

    for gpu in GPU_CATALOG.values():
        peaks = ", ".join(f"{k} {v / 1e12:g}" for k, v in gpu.peak_flops.items())
        print(f"{gpu.name:<16} {gpu.memory_bytes / 2**30:7.2f} GiB  HBM {gpu.hbm_bw_bytes_per_s / 1e9:6.0f} GB/s  "
              f"TFLOP/s: {peaks}")
        print(f"{'':<16} source: {gpu.source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clustersim", description="Simulate LLM training on GPU clusters: "
                                     "per-GPU memory and OOM verdicts, step time, communication, time to train.")
    parser.add_argument("--version", action="version", version=f"clustersim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="simulate a scenario and print its report")
    run.add_argument("scenario", nargs="?", help=f"scenario YAML (default: scenarios/{DEFAULT_SCENARIO}.yaml)")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run.add_argument("--json-out", metavar="FILE", help="also write the JSON report to FILE")
    run.add_argument("--fail-on-oom", action="store_true", help="exit 1 when the scenario does not fit")
    run.add_argument("--trace", metavar="FILE", help="write the step's timeline as Chrome trace JSON")
    run.add_argument("--network", choices=["fluid", "analytic"], default="fluid",
                     help="network model: max-min fair sharing between concurrent collectives "
                          "(fluid, default) or each collective at its standalone time (analytic)")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.set_defaults(func=cmd_validate)

    sub.add_parser("schema", help="print the JSON Schema of scenario files").set_defaults(func=cmd_schema)
    sub.add_parser("models", help="list model presets").set_defaults(func=cmd_models)
    sub.add_parser("gpus", help="list the GPU catalog").set_defaults(func=cmd_gpus)
    from simulator.cli import commands

    commands.register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except ScenarioError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
