"""`clustersim import FILE... --out SCENARIO.yaml`: a scenario from framework configs (a Hugging
Face config.json, a Megatron-LM argument list, a DeepSpeed ds_config.json, a torchtitan TOML, an
accelerate config), each key listed as mapped, ignored or refused, with why. A FILE that does not
exist may name a real config shipped with clustersim (`clustersim import --list`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="write a scenario from framework configs (HF, Megatron-LM, DeepSpeed, torchtitan, "
        "accelerate)",
        description="Recognises each FILE from its content (a Hugging Face config.json, a "
        "Megatron-LM argument list or launch script, a DeepSpeed ds_config.json, a torchtitan "
        "TOML, an accelerate config YAML), merges them, validates the result as `clustersim "
        "validate` does and writes it to --out. A FILE that does not exist may be the name of a "
        "real config shipped with clustersim (--list shows them). Every key of every file is "
        "listed: mapped (to which scenario key), ignored (why) or refused (why). Exit 2 when the "
        "files contradict each other or themselves or do not give a valid scenario (said at the "
        "file and key), and with --strict when a key is refused or unknown.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="config files, or shipped names")
    p.add_argument("--out", metavar="SCENARIO.yaml", help="scenario file to write (required)")
    p.add_argument(
        "--list", action="store_true", help="list the real configs shipped with clustersim"
    )
    p.add_argument("--topology", metavar="NAME|FILE", help="cluster.topology (default dgx-a100)")
    p.add_argument("--num-hosts", type=int, metavar="N", help="cluster.num_hosts")
    p.add_argument("--num-gpus", type=int, metavar="N", help="cluster.num_gpus (GPUs used)")
    p.add_argument("--name", help="the scenario's name (default: from the file names)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--strict", action="store_true", help="exit 2 if any key is refused or unknown")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from simulator.cli.output import check_output
    from simulator.core.errors import Problem, UserError
    from simulator.core.outputs import write_text
    from simulator.core.yamlio import dump_yaml
    from simulator.scenario.importers import import_files

    if args.list:
        return _list()
    if not args.files:
        raise UserError(
            Problem("FILE", "no config given", "give config files, or shipped names: see --list")
        )
    if not args.out:
        raise UserError(Problem("--out", "required", "the scenario file to write"))
    check_output("--out", args.out, tuple(args.files))
    if Path(args.out).exists() and not args.force:
        raise UserError(
            Problem("--out", f"{args.out} exists", "give another path, or --force to replace it")
        )
    for option in ("num_hosts", "num_gpus"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UserError(Problem(f"--{option.replace('_', '-')}", f"expected >= 1, got {value}"))
    imported = import_files(
        args.files, args.topology, args.num_hosts, args.num_gpus, name=args.name
    )
    for source, kind in imported.kinds.items():
        print(f"{source}: {kind}")
    for entry in imported.entries:
        print(entry.render())
    flagged = imported.refused + imported.unknown
    if args.strict and flagged:
        raise UserError(
            [
                Problem(e.key, e.why if e.unknown else f"{e.status}: {e.why}", "", e.source)
                for e in flagged
            ]
        )
    header = "# Imported by `clustersim import " + " ".join(args.files) + "`\n"
    write_text("--out", args.out, header + dump_yaml(imported.document))
    s = imported.scenario
    assert s is not None  # import_files validates or raises
    print(
        f"wrote {args.out} ({s.name}: {s.model.name}, {s.strategy}, "
        f"{s.cluster.num_gpus} x {s.cluster.gpu.name}); "
        f"{len(imported.refused)} refused, {len(imported.unknown)} unknown"
    )
    for warning in s.warnings:
        print(f"{args.out}: warning: {warning}", file=sys.stderr)
    return 0


def _list() -> int:
    """The shipped configs, each with its kind; sources and licenses in the folder's README."""
    from simulator.core.yamlio import read_text
    from simulator.scenario.importers import configs_dir, import_text, shipped_configs

    shipped = shipped_configs()
    width = max((len(name) for name in shipped), default=0)
    for name, path in shipped.items():
        kind = import_text(read_text(path, "config file"), name).kind
        print(f"{name:<{width}}  {kind}")
    print(f"(real configs; sources and licenses: {configs_dir() / 'README.md'})")
    return 0
