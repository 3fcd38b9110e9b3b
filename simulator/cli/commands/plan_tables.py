"""The tables `clustersim plan` prints: aligned columns, number formats, and the training table
with its goodput columns."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

from simulator.core.errors import Problem, UserError
from simulator.spec.specs import Scenario
from simulator.studies import planner

GOODPUT_NOTE = (
    "Monte Carlo of the scenario's reliability section: Llama 3 failure rates per GPU and host, "
    "checkpoints to 2 TB/s storage, 10-min restarts by default; `clustersim run` details them"
)


def table(headers: list[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns right-aligned except the first."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    fmt = lambda r: "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))
    )
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def gb(n: float | None) -> str:
    return f"{n / 1e9:.1f} GB" if n else "-"


def ms(t: float | None) -> str:
    return f"{t * 1e3:.1f}" if t is not None else "-"


def pct(x: float | None) -> str:
    return f"{100 * x:.1f}%" if x is not None else "-"


def days_cell(d: float | None) -> str:
    return f"{d:,.1f}" if d is not None else "-"


def train_table(rows: list[planner.TrainRow], by: str) -> None:
    print(
        table(
            [
                by,
                "fits",
                "mem/GPU",
                "step ms",
                "MFU",
                "tokens/s",
                "days",
                "wall p50",
                "wall p90",
                "ETTR",
                "GPU-hours",
                "cost USD",
            ],
            [
                [
                    str(getattr(r, by)),
                    "yes" if r.fits else "OOM",
                    gb(r.mem_total_bytes),
                    ms(r.step_time_s),
                    pct(r.mfu),
                    f"{r.tokens_per_s:,.0f}",
                    f"{r.days:,.1f}",
                    days_cell(r.wall_days_p50),
                    days_cell(r.wall_days_p90),
                    pct(r.effective_training_time_ratio),
                    f"{r.gpu_hours:,.0f}",
                    f"{r.cost_usd:,.0f}" if r.cost_usd is not None else "-",
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        if r.never_completes_because:
            print(
                f"  {getattr(r, by)}: does not complete (wall p50/p90 not simulated): {r.never_completes_because}"
            )
    if any(r.wall_days_p50 is not None for r in rows):
        print(
            f"  days: failure-free step time x steps; wall p50/p90: wall-clock days with failures, checkpoints "
            f"and restarts ({GOODPUT_NOTE}); ETTR: effective training time ratio (useful / elapsed)"
        )


def dump_json(obj) -> int:
    print(
        json.dumps(
            dataclasses.asdict(obj)
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type)
            else obj,
            indent=2,
            sort_keys=True,
            default=float,
        )
    )
    return 0


def header(s: Scenario) -> str:
    t = s.training
    return (
        f"# {s.name}: {s.model.name} ({s.model.params / 1e9:.3g}B params) on {s.cluster.gpu.name} "
        f"({s.cluster.topology_name}, {s.cluster.gpus_per_host} per host); {t.precision.name}, {t.optimizer}, "
        f"micro-batch {t.micro_batch_size} x seq {t.seq_len}, checkpointing {t.activation_checkpointing}"
    )


def positive(value: float | None, option: str) -> None:
    """A command-line number that must be positive and finite, where given."""
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise UserError(Problem(option, f"expected a positive finite number, got {value:g}"))
