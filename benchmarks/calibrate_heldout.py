"""Held-out check of `clustersim calibrate --runs` (issue 16's acceptance): fit a profile on three
measured runs of one cluster and framework, then predict that cluster's other runs with it.

The runs are llm-foundry's MPT table on H100 (validation cases in
simulator/data/validation/throughput.yaml; nothing built in was fitted to them). The profile is
fitted on MPT 7B, 30B (8 GPUs) and 70B (64 GPUs), as the issue poses it, and the other five
rows are predicted with and without it. Prints both medians of |error| on the held-out rows:

    .venv/bin/python benchmarks/calibrate_heldout.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIT = ("mpt-7b-8xh100-llm-foundry", "mpt-30b-8xh100-llm-foundry", "mpt-70b-64xh100-llm-foundry")


def h100_rows() -> list[dict]:
    cases = yaml.safe_load((ROOT / "simulator/data/validation/throughput.yaml").read_text())
    return [c for c in cases["cases"] if c["id"].startswith("mpt") and "h100" in c["id"]]


def clustersim(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return out.stdout


def errors(report: str, ids: list[str]) -> dict[str, tuple[float, float]]:
    """(with the profile, built in) error per case id, from `accuracy --calibration`'s table."""
    found = {}
    for line in report.splitlines():
        parts = line.split()
        if parts and parts[0] in ids:
            pct = [float(p.rstrip("%")) / 100 for p in parts if p.endswith("%") and p[0] in "+-"]
            found[parts[0]] = (pct[0], pct[1])
    return found


def main() -> None:
    rows = h100_rows()
    held_out = [c["id"] for c in rows if c["id"] not in FIT]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            {"id": c["id"], "scenario": c["scenario"], c["metric"]: c["published"]}
            for c in rows
            if c["id"] in FIT
        ]
        work = Path(tmp)
        (work / "runs.yaml").write_text(yaml.safe_dump({"runs": runs}, sort_keys=False))
        print(clustersim("calibrate", "--runs", "runs.yaml", "--out", "prof.yaml", cwd=work))
        report = clustersim(
            "accuracy", "--category", "throughput", "--calibration", "prof.yaml", cwd=work
        )
    err = errors(report, held_out)
    print(f"{'held-out run':40s} {'profile':>8s} {'built in':>9s}")
    for case_id in held_out:
        after, before = err[case_id]
        print(f"{case_id:40s} {after:+8.1%} {before:+9.1%}")
    after = statistics.median(abs(a) for a, _ in err.values())
    before = statistics.median(abs(b) for _, b in err.values())
    print(
        f"median |error| on the {len(err)} held-out runs: {after:.1%} with the profile, "
        f"{before:.1%} built in (target 3%)"
    )


if __name__ == "__main__":
    main()
