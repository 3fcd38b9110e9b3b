"""Golden-file regression of predictions: the shipped scenarios (the CI check), the diff rules,
--update's boundaries, and the helpers users put in their own suites."""

from __future__ import annotations

import json
import shutil

import pytest

from simulator import __version__
from simulator.core.provenance import code_fingerprint
from simulator.core.resources import scenario_dir
from tests.helpers import PROJECT_ROOT

SCENARIO_DIR = scenario_dir()
from simulator.cli.main import main
from simulator.studies.regress import assert_prediction, compare, run_regression

GOLDEN_DIR = PROJECT_ROOT / "golden"
SMALL = SCENARIO_DIR / "ddp-vs-fsdp" / "mpt-125m-zero3.yaml"


def test_shipped_scenarios_match_their_golden_files():
    # Regenerate deliberately: clustersim regress scenarios --golden golden --update
    result = run_regression(SCENARIO_DIR, GOLDEN_DIR)
    bad = [(c.scenario, c.status, c.message, c.diffs) for c in result.checks if c.status != "ok"]
    assert not bad and not result.stale, bad or result.stale
    assert len(result.checks) == len(list(SCENARIO_DIR.rglob("*.yaml"))) - len(result.skipped)


@pytest.fixture
def tree(tmp_path):
    """A scenario dir with one scenario in a subfolder and a sweep file, and an empty golden dir."""
    scen = tmp_path / "scenarios"
    (scen / "sub").mkdir(parents=True)
    (scen / "sweeps").mkdir()
    shutil.copy(SMALL, scen / "sub" / "small.yaml")
    (scen / "sweeps" / "grid.yaml").write_text(
        "base: ../sub/small.yaml\naxes:\n  training.strategy: [ddp]\n"
    )
    return scen, tmp_path / "golden"


def _snapshot(scen):
    return {p: p.read_bytes() for p in scen.rglob("*") if p.is_file()}


def test_update_writes_golden_files_with_a_header_and_never_touches_scenarios(tree, capsys):
    scen, golden = tree
    before = _snapshot(scen)
    assert main(["regress", str(scen), "--golden", str(golden)]) == 1  # no golden file yet
    assert main(["regress", str(scen), "--golden", str(golden), "--update"]) == 0
    assert _snapshot(scen) == before
    assert [p.relative_to(golden).as_posix() for p in golden.rglob("*.json")] == ["sub/small.json"]
    data = json.loads((golden / "sub" / "small.json").read_text())
    assert "not ground truth" in data["about"].lower()
    # The header names the version and the code that computed it (a hash of the package).
    assert data["clustersim_version"] == f"{__version__}+code.{code_fingerprint()}"
    assert "step.time_s" in data["fields"]["relative"] and "memory.fits" in data["fields"]["exact"]
    capsys.readouterr()
    assert main(["regress", str(scen), "--golden", str(golden)]) == 0
    out = capsys.readouterr().out
    assert "OK        sub/small.yaml" in out and "SKIPPED   sweeps/grid.yaml" in out


def _edit(path, field, fn):
    data = json.loads(path.read_text())
    data["values"][field] = fn(data["values"][field])
    path.write_text(json.dumps(data))


def test_a_moved_timing_fails_with_a_diff_table_unless_within_rtol(tree, capsys):
    scen, golden = tree
    run_regression(scen, golden, update=True)
    _edit(golden / "sub" / "small.json", "step.time_s", lambda t: t * 1.001)
    capsys.readouterr()
    assert main(["regress", str(scen), "--golden", str(golden)]) == 1
    out = capsys.readouterr().out
    assert "step.time_s" in out and "9.99e-04" in out and "CHANGED" in out
    assert main(["regress", str(scen), "--golden", str(golden), "--rtol", "1e-2"]) == 0


def test_verdicts_and_integers_are_exact():
    golden = {"memory.fits": True, "model.params": 100, "step.time_s": 1.0}
    now = {"memory.fits": False, "model.params": 101, "step.time_s": 1.0 + 1e-9}
    diffs = {d.field: d for d in compare(golden, now, rtol=0.5)}
    assert set(diffs) >= {"memory.fits", "model.params"} and "step.time_s" not in diffs
    assert diffs["model.params"].rel is None  # exact, no tolerance


def test_stale_golden_files_fail_and_update_removes_only_snapshots(tree):
    scen, golden = tree
    run_regression(scen, golden, update=True)
    shutil.copy(golden / "sub" / "small.json", golden / "gone.json")
    (golden / "notes.json").write_text("{}")
    result = run_regression(scen, golden)
    assert result.failed and sorted(result.stale) == ["gone.json", "notes.json"]
    result = run_regression(scen, golden, update=True)
    assert not (golden / "gone.json").exists() and (golden / "notes.json").exists()
    assert result.stale == ["notes.json"]


def test_assert_prediction(tmp_path):
    golden = tmp_path / "g.json"
    with pytest.raises(AssertionError, match="no golden file"):
        assert_prediction(SMALL, golden)
    assert_prediction(SMALL, golden, update=True)
    assert_prediction(SMALL, golden)
    _edit(golden, "memory.per_gpu.total_bytes", lambda b: b + 1)
    with pytest.raises(AssertionError, match="memory.per_gpu.total_bytes"):
        assert_prediction(SMALL, golden)


def test_pytest_plugin_fixture(pytester):
    """The plugin in a user's suite, run in-process by pytester (no subprocess)."""
    shutil.copy(SMALL, pytester.path / "x.yaml")
    pytester.makepyfile(
        test_user="def test_x(clustersim_prediction):\n"
        "    clustersim_prediction('x.yaml', 'golden/x.json')\n"
    )
    args = ("-p", "simulator.studies.pytest_plugin", "-p", "no:cacheprovider")
    pytester.runpytest_inprocess(*args).assert_outcomes(failed=1)  # no golden file yet
    pytester.runpytest_inprocess(*args, "--clustersim-update").assert_outcomes(passed=1)
    assert (pytester.path / "golden" / "x.json").exists()
    pytester.runpytest_inprocess(*args).assert_outcomes(passed=1)
    _edit(pytester.path / "golden" / "x.json", "step.mfu", lambda m: m * 1.1)
    failed = pytester.runpytest_inprocess(*args)
    failed.assert_outcomes(failed=1)
    assert "step.mfu" in failed.stdout.str()
