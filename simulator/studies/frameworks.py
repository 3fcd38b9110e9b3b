"""One scenario under every framework profile that offers its strategy (memory peak, step time,
collectives), and the framework validation cases against their published figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.core.errors import UserError
from simulator.execution.context import SimContext
from simulator.execution.frameworks import FRAMEWORKS
from simulator.execution.memory import memory_breakdown
from simulator.execution.metrics import step_metrics
from simulator.execution.step import simulate_step
from simulator.scenario.load import derive
from simulator.scenario.schema_framework import FRAMEWORK_SECTIONS
from simulator.spec.specs import Scenario
from simulator.studies.cases import Case, predict, shipped_cases


@dataclass(frozen=True, kw_only=True)
class FrameworkRow:
    framework: str
    error: str = ""  # why the framework cannot run the scenario
    peak_bytes: int = 0
    components: dict[str, int] = field(default_factory=dict)
    peak_at: str = ""
    fits: bool = True
    step_s: float = 0.0
    comm_s: float = 0.0
    exposed_s: float = 0.0
    tokens_per_s_per_gpu: float = 0.0
    collectives: dict[str, dict] = field(default_factory=dict)  # op -> count, min/max/total bytes


def _collectives(step) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for c in step.collectives:
        if c["op"] == "send":
            continue
        row = out.setdefault(
            f"{c['op']} ({c['group']})",
            {"count": 0, "min_bytes": c["bytes"], "max_bytes": 0, "total_bytes": 0},
        )
        row["count"] += c["count"]
        row["min_bytes"] = min(row["min_bytes"], c["bytes"])
        row["max_bytes"] = max(row["max_bytes"], c["bytes"])
        row["total_bytes"] += c["bytes"] * c["count"]
    return out


def _foreign_options(scenario: Scenario, name: str) -> dict[str, None]:
    """The option fields of the scenario that the framework `name` does not have (removed)."""
    own = FRAMEWORK_SECTIONS.get(name, ("",))[0]
    training = scenario.data().get("training", {})
    drop = [f for f, _ in FRAMEWORK_SECTIONS.values() if f != own]
    drop += ["zero3"] if name != "pytorch-fsdp" else []
    drop += ["bucket_size", "gradient_as_bucket_view"] if name in ("deepspeed", "megatron") else []
    return {f"training.{f}": None for f in drop if f in training}


def compare(scenario: Scenario, ctx: SimContext | None = None) -> list[FrameworkRow]:
    """The scenario under each framework profile (those that reject it say why)."""
    ctx = ctx or SimContext()
    rows = []
    for name in FRAMEWORKS:
        try:
            s = derive(scenario, {"training.framework": name, **_foreign_options(scenario, name)})
        except UserError as exc:
            rows.append(
                FrameworkRow(framework=name, error="; ".join(p.message for p in exc.problems))
            )
            continue
        mem = memory_breakdown(s)
        step = simulate_step(s, ctx=ctx)
        m = step_metrics(s, step)
        rows.append(
            FrameworkRow(
                framework=name,
                peak_bytes=mem.total_bytes,
                components=mem.components,
                peak_at=mem.peak_op,
                fits=mem.fits,
                step_s=step.time_s,
                comm_s=step.comm_s,
                exposed_s=step.exposed_comm_s,
                tokens_per_s_per_gpu=m.tokens_per_s_per_gpu,
                collectives=_collectives(step),
            )
        )
    return rows


@dataclass(frozen=True, kw_only=True)
class CaseRow:
    id: str
    framework: str
    role: str
    metric: str
    published: float
    predicted: float
    tolerance: float
    known_deviation: str | None

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1


def _framework(case: Case) -> str:
    assert case.scenario is not None  # a framework case is a scenario case (load_cases checks)
    return case.scenario["training"].get("framework", "pytorch-fsdp")


def validation(ctx: SimContext | None = None) -> list[CaseRow]:
    """Every shipped framework case, predicted."""
    ctx = ctx or SimContext()
    return [
        CaseRow(
            id=c.id,
            framework=_framework(c),
            role=c.role,
            metric=c.metric,
            published=c.published,
            predicted=predict(c, ctx),
            tolerance=c.tolerance,
            known_deviation=c.known_deviation,
        )
        for c in shipped_cases("frameworks")
    ]
