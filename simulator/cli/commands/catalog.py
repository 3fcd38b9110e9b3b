"""`clustersim schema | models | gpus | scenarios`: what clustersim knows, printed."""

from __future__ import annotations

import argparse
import json


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("schema", help="print the JSON Schema of scenario files").set_defaults(
        func=cmd_schema
    )
    sub.add_parser("models", help="list model presets").set_defaults(func=cmd_models)
    sub.add_parser("gpus", help="list the GPU catalog").set_defaults(func=cmd_gpus)
    p = sub.add_parser(
        "scenarios", help="list the shipped scenarios, or print one (to copy and edit)"
    )
    p.add_argument("name", nargs="?", help="print this shipped scenario's YAML")
    p.set_defaults(func=cmd_scenarios)


def cmd_schema(args: argparse.Namespace) -> int:
    from simulator.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from simulator.model import presets
    from simulator.model.architecture import param_count

    for name in presets.preset_names():
        arch = presets.get_preset(name)
        print(
            f"{name:<16} {arch.kind:<16} {param_count(arch):>18,} params  "
            f"{arch.total_layers:>4} layers  hidden {arch.hidden_size}"
        )
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    from simulator.system.hardware import GPU_CATALOG

    for gpu in GPU_CATALOG.values():
        peaks = ", ".join(f"{k} {v / 1e12:g}" for k, v in gpu.peak_flops.items())
        eff = gpu.efficiency
        print(
            f"{gpu.name:<16} {gpu.memory_bytes / 2**30:7.2f} GiB  HBM {gpu.hbm_bw_bytes_per_s / 1e9:6.0f} GB/s  "
            f"{gpu.arch}, {gpu.sm_count} SMs/CUs, scale-up {gpu.scaleup_bw_bytes_per_s / 1e9:g} GB/s per direction  "
            f"TFLOP/s: {peaks}"
        )
        print(f"{'':<16} source: {gpu.source}")
        print(
            f"{'':<16} efficiency: gemm {eff.gemm:.3f}"
            + "".join(f", {d} {f:.3f}" for d, f in eff.gemm_by_dtype)
            + f", memory {eff.memory:.3f}, attention {eff.attention:.3f}, end-to-end {eff.end_to_end:.3f}"
            + (f", GEMM by shape: {eff.gemm_table}" if eff.gemm_table else "")
            + (
                f", attention by kernel and length: {eff.attention_table}"
                if eff.attention_table
                else ""
            )
            + f": {eff.source}"
        )
        if eff.assumed:
            print(f"{'':<16} no public figure, assumed: {eff.assumed}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from simulator.scenario.load import scenario_names, scenario_path

    if args.name:
        print(scenario_path(args.name).read_text(encoding="utf-8"), end="")
        return 0
    from simulator.studies.sweep.spec import sweep_names

    for name in scenario_names():
        print(name)
    for name in sweep_names():
        print(f"{name}  (sweep: clustersim sweep {name} --out results.csv)")
    return 0
