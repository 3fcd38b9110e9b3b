"""Regression tests of predicted timings: each scenario's predictions against a stored golden JSON.

A golden file is a snapshot of clustersim's own output, not ground truth: it makes every change
to a prediction visible, so that a change is made on purpose and explained. Verdicts, strings
and integers (fits, params, bytes) must match exactly; floats (times, rates) to a relative
tolerance (1e-6 by default: the simulator is deterministic, so this only absorbs float noise).

    run_regression(scenario_dir, golden_dir, rtol, update) -> RegressionResult
    assert_prediction("scenarios/x.yaml", "golden/x.json")   # for a user's own test suite
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.core.errors import Problem, UserError
from simulator.core.provenance import version_string

DEFAULT_RTOL = 1e-6
FORMAT = "clustersim-regression-snapshot/1"
ABOUT = (
    "Regression snapshot of clustersim's own predictions for this scenario, NOT ground truth: "
    "it only detects changes in the simulator's output. Regenerate deliberately with "
    "`clustersim regress SCENARIO_DIR --golden GOLDEN_DIR --update` and explain the diff."
)
UPDATE_ENV = "CLUSTERSIM_UPDATE_GOLDEN"

# Compared fields (dotted paths into the `clustersim run --json` report).
EXACT_FIELDS = (
    "model.params",
    "training.strategy",
    "cluster.gpu",
    "cluster.num_gpus",
    "memory.fits",
    "memory.capacity_bytes",
    "memory.per_gpu.params_bytes",
    "memory.per_gpu.grads_bytes",
    "memory.per_gpu.optimizer_bytes",
    "memory.per_gpu.activations_bytes",
    "memory.per_gpu.buffers_bytes",
    "memory.per_gpu.overhead_bytes",
    "memory.per_gpu.total_bytes",
)
RELATIVE_FIELDS = (
    "step.time_s",
    "step.compute_s",
    "step.comm_s",
    "step.exposed_comm_s",
    "step.mfu",
    "step.tokens_per_s",
    "step.tokens_per_s_per_gpu",
    # Energy of the step from its power timeline (issue 20; execution/energy.py).
    "energy.step_j",
    "energy.per_token_j",
    "energy.cluster_power_w.avg",
    "energy.swing_w",
)
FIELDS = EXACT_FIELDS + RELATIVE_FIELDS


def _get(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        value = value[part]
    return float(value) if isinstance(value, float) else value  # numpy floats -> float


def predictions(scenario_path: str | Path) -> dict[str, Any]:
    """The compared fields of one scenario's report."""
    from simulator.scenario.load import load_scenario
    from simulator.studies.simulate import simulate

    report = simulate(load_scenario(scenario_path))
    return {f: _get(report, f) for f in FIELDS}


def snapshot(values: dict[str, Any], scenario: str) -> dict[str, Any]:
    """The golden file's content: header, compared fields and values."""
    return {
        "about": ABOUT,
        "format": FORMAT,
        "clustersim_version": version_string(),
        "scenario": scenario,
        "fields": {"exact": list(EXACT_FIELDS), "relative": list(RELATIVE_FIELDS)},
        "values": values,
    }


def snapshot_text(values: dict[str, Any], scenario: str) -> str:
    return json.dumps(snapshot(values, scenario), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Diff:
    field: str
    golden: Any
    now: Any
    rel: float | None  # relative difference for float fields


def compare(golden: dict[str, Any], now: dict[str, Any], rtol: float = DEFAULT_RTOL) -> list[Diff]:
    """Fields whose value changed beyond the tolerance (exact fields: any change)."""
    diffs = []
    for f in FIELDS:
        g, n = golden.get(f, "<missing>"), now.get(f, "<missing>")
        if (
            f in RELATIVE_FIELDS
            and isinstance(g, (int, float))
            and isinstance(n, (int, float))
            and not isinstance(g, bool)
        ):
            scale = max(abs(g), abs(n))
            rel = abs(n - g) / scale if scale else 0.0
            if rel > rtol:
                diffs.append(Diff(f, g, n, rel))
        elif g != n or type(g) is not type(n):
            diffs.append(Diff(f, g, n, None))
    return diffs


@dataclass
class ScenarioCheck:
    scenario: str  # path relative to the scenario dir
    status: str  # ok | changed | missing | error | updated | unchanged
    diffs: list[Diff] = field(default_factory=list)
    message: str = ""


@dataclass
class RegressionResult:
    checks: list[ScenarioCheck]
    skipped: list[str]  # YAML files that are not scenarios (e.g. sweep files)
    stale: list[str]  # golden files without a scenario

    @property
    def failed(self) -> bool:
        return bool(self.stale) or any(
            c.status in ("changed", "missing", "error") for c in self.checks
        )


def is_scenario(data: Any) -> bool:
    """A scenario file is a mapping with a `model` section; sweep files carry `axes`."""
    return isinstance(data, dict) and "model" in data and "axes" not in data


def find_scenarios(scenario_dir: Path) -> tuple[list[Path], list[Path]]:
    """(scenario files, skipped YAML files) under scenario_dir, recursively, sorted."""
    from simulator.core.yamlio import read_yaml

    found: list[Path] = []
    skipped: list[Path] = []
    for path in sorted([*scenario_dir.rglob("*.yaml"), *scenario_dir.rglob("*.yml")]):
        try:
            data = read_yaml(path)
        except UserError:
            data = {"model": None}  # unreadable YAML is a broken scenario, reported as an error
        (found if is_scenario(data) else skipped).append(path)
    return found, skipped


def golden_path(golden_dir: Path, scenario_dir: Path, scenario: Path) -> Path:
    return golden_dir / scenario.relative_to(scenario_dir).with_suffix(".json")


def read_golden(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(Problem(str(path), f"not a readable golden file: {exc}")) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("values"), dict)
    ):
        raise UserError(Problem(str(path), f"not a clustersim golden file (format {FORMAT!r})"))
    return data


def check_dirs(scenario_dir: Path, golden_dir: Path) -> None:
    if not scenario_dir.is_dir():
        raise UserError(Problem("SCENARIO_DIR", f"{scenario_dir} is not a directory"))
    if golden_dir.exists() and not golden_dir.is_dir():
        raise UserError(Problem("--golden", f"{golden_dir} is not a directory"))


def run_regression(
    scenario_dir: str | Path,
    golden_dir: str | Path,
    rtol: float = DEFAULT_RTOL,
    update: bool = False,
) -> RegressionResult:
    """Compare (or with update, rewrite) the golden file of every scenario under scenario_dir."""
    scenario_dir, golden_dir = Path(scenario_dir), Path(golden_dir)
    check_dirs(scenario_dir, golden_dir)
    scenarios, skipped = find_scenarios(scenario_dir)
    targets: dict[Path, Path] = {}
    for s in scenarios:
        target = golden_path(golden_dir, scenario_dir, s)
        if target in targets:
            raise UserError(Problem(str(s), f"same golden file as {targets[target]}", "rename one"))
        targets[target] = s
    checks = [_check_one(s, target, scenario_dir, rtol, update) for target, s in targets.items()]
    stale = (
        sorted(p for p in golden_dir.rglob("*.json") if p not in targets)
        if golden_dir.is_dir()
        else []
    )
    if update:  # only ever delete our own snapshots; anything else stays and is reported
        removable = [p for p in stale if _is_snapshot(p)]
        for p in removable:
            p.unlink()
        stale = [p for p in stale if p not in removable]
    return RegressionResult(
        checks,
        [str(p.relative_to(scenario_dir)) for p in skipped],
        [str(p.relative_to(golden_dir)) for p in stale],
    )


def _is_snapshot(path: Path) -> bool:
    try:
        read_golden(path)
    except UserError:
        return False
    return True


def _check_one(
    scenario: Path, target: Path, scenario_dir: Path, rtol: float, update: bool
) -> ScenarioCheck:
    rel = scenario.relative_to(scenario_dir).as_posix()
    try:
        now = predictions(scenario)
    except UserError as exc:
        return ScenarioCheck(rel, "error", message=exc.render().replace("\n", "; "))
    old = read_golden(target)["values"] if target.exists() else None
    diffs = compare(old, now, rtol) if old is not None else []
    if update:
        text = snapshot_text(now, rel)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            return ScenarioCheck(rel, "updated", diffs, "new golden file" if old is None else "")
        return ScenarioCheck(rel, "unchanged")
    if old is None:
        return ScenarioCheck(rel, "missing", message=f"no golden file {target} (run with --update)")
    return ScenarioCheck(rel, "changed" if diffs else "ok", diffs)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.9g}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def diff_table(diffs: list[tuple[str, Diff]]) -> list[str]:
    """A readable table of (scenario, changed field) rows: rel diff for floats, 'exact' otherwise."""
    rows = [
        (
            name,
            d.field,
            _fmt(d.golden),
            _fmt(d.now),
            f"{d.rel:.2e}" if d.rel is not None else "exact",
        )
        for name, d in diffs
    ]
    head = ("scenario", "field", "golden", "now", "rel diff")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return [line(head), line(tuple("-" * w for w in widths)), *map(line, rows)]


def render(result: RegressionResult, rtol: float) -> str:
    lines = []
    for c in result.checks:
        lines.append(
            f"{c.status.upper():<9} {c.scenario}" + (f"  ({c.message})" if c.message else "")
        )
    diffs = [(c.scenario, d) for c in result.checks for d in c.diffs]
    if diffs:
        lines += ["", *diff_table(diffs)]
    lines += [f"SKIPPED   {s}  (not a scenario)" for s in result.skipped]
    lines += [
        f"STALE     {s}  (golden file without a scenario; --update removes it)"
        for s in result.stale
    ]
    bad = sum(c.status in ("changed", "missing", "error") for c in result.checks) + len(
        result.stale
    )
    lines.append(
        f"\n{len(result.checks)} scenario(s), {bad} regression(s); exact: verdicts, strings, "
        f"integers (bytes, params); relative tolerance {rtol:g}: times and rates"
    )
    return "\n".join(lines)


def assert_prediction(
    scenario_path: str | Path,
    golden: str | Path,
    rtol: float = DEFAULT_RTOL,
    update: bool | None = None,
) -> None:
    """AssertionError (with a diff table) when the scenario's predictions moved from the golden file.

    update=True (or the environment variable CLUSTERSIM_UPDATE_GOLDEN=1) writes the golden file
    instead; a missing golden file is a failure unless updating."""
    golden = Path(golden)
    if update is None:
        update = os.environ.get(UPDATE_ENV, "") not in ("", "0")
    now = predictions(scenario_path)
    if update:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(snapshot_text(now, Path(scenario_path).as_posix()), encoding="utf-8")
        return
    if not golden.exists():
        raise AssertionError(
            f"no golden file {golden}: create it with {UPDATE_ENV}=1 "
            f"(or pytest --clustersim-update)"
        )
    diffs = compare(read_golden(golden)["values"], now, rtol)
    if diffs:
        table = "\n".join(diff_table([(Path(scenario_path).name, d) for d in diffs]))
        raise AssertionError(
            f"predictions of {scenario_path} moved from {golden} (rtol {rtol:g}):\n{table}"
        )
