"""The 80% step-time interval (studies/intervals.py): quantiles and intervals of hand-made error
lists worked out by hand, the fallback rule, leave-one-out coverage of a tiny synthetic set, the
report's keys and line, and (slow) the shipped table against a fresh fit of the validation set."""

from __future__ import annotations

import pytest

from simulator.cli.main import main
from simulator.core.yamlio import read_yaml
from simulator.report.text import render_text
from simulator.studies import intervals
from simulator.studies.cases import load_cases, shipped_files
from simulator.studies.intervals import Point, coverage, fit, group_for, quantile, time_error
from simulator.studies.simulate import simulate
from tests.helpers import make_scenario

A100_FSDP_DP = ("a100", "pytorch-fsdp", "data-parallel")
H100_FSDP_DP = ("h100", "pytorch-fsdp", "data-parallel")
ALL = "* x * x *"


def test_type_7_quantiles_by_hand():
    # sorted: -0.2, 0, 0.1, 0.3, 0.5 (n = 5)
    errors = [0.1, -0.2, 0.3, 0.0, 0.5]
    # p = 0.1: h = 4 x 0.1 = 0.4, between x0 = -0.2 and x1 = 0: -0.2 + 0.4 x 0.2 = -0.12
    assert quantile(errors, 0.1) == pytest.approx(-0.12)
    # p = 0.9: h = 3.6, between x3 = 0.3 and x4 = 0.5: 0.3 + 0.6 x 0.2 = 0.42
    assert quantile(errors, 0.9) == pytest.approx(0.42)
    assert quantile([7.0], 0.9) == 7.0  # one value: itself


def test_time_error_of_rates_and_times():
    # Throughput predicted 20% high: the predicted step is 1/1.2 of the published one.
    assert time_error("tokens_per_s_per_gpu", 120.0, 100.0) == pytest.approx(1 / 1.2 - 1)
    assert time_error("tflops_per_gpu_from_flops", 90.0, 100.0) == pytest.approx(1 / 0.9 - 1)
    assert time_error("time_s", 1.2, 1.0) == pytest.approx(0.2)


def test_interval_from_the_group_quantiles(monkeypatch):
    errors = [0.1, -0.2, 0.3, 0.0, 0.5]  # q10 = -0.12, q90 = 0.42 (above)
    groups = fit([Point(id=f"c{i}", key=H100_FSDP_DP, error=e) for i, e in enumerate(errors)])
    monkeypatch.setattr(intervals, "shipped_groups", lambda: groups)
    scenario = make_scenario()  # 8 A100s, PyTorch FSDP: no group of its own -> every case
    iv = intervals.interval(scenario, 2.0, 1000.0)
    assert iv["group"] == ALL and iv["cases"] == 5 and iv["level"] == 0.8
    # T = P / (1 + e): e = q90 gives the shortest time, e = q10 the longest.
    assert iv["time_s"] == pytest.approx([2.0 / 1.42, 2.0 / 0.88])
    # tokens/s/GPU is proportional to 1 / T: R (1 + e).
    assert iv["tokens_per_s_per_gpu"] == pytest.approx([880.0, 1420.0])


def test_fallback_to_family_then_to_every_case():
    points = (
        [Point(id=f"f{i}", key=A100_FSDP_DP, error=0.01 * i) for i in range(5)]
        + [
            Point(id=f"d{i}", key=("a100", "deepspeed", "data-parallel"), error=0.0)
            for i in range(3)
        ]
        + [
            Point(id=f"m{i}", key=("h100", "pytorch-fsdp", "model-parallel"), error=0.0)
            for i in range(2)
        ]
    )
    groups = fit(points)
    # 5 a100 FSDP, 8 a100 data-parallel, 10 in all; the groups of 3 and 2 are too small.
    assert {n: len(g["cases"]) for n, g in groups.items()} == {
        "a100 x pytorch-fsdp x data-parallel": 5,
        "a100 x * x data-parallel": 8,
        ALL: 10,
    }
    assert set(groups["a100 x * x data-parallel"]["cases"]) == {f"f{i}" for i in range(5)} | {
        f"d{i}" for i in range(3)
    }
    assert group_for(groups, A100_FSDP_DP) == "a100 x pytorch-fsdp x data-parallel"
    assert group_for(groups, ("a100", "deepspeed", "data-parallel")) == "a100 x * x data-parallel"
    assert group_for(groups, ("h100", "pytorch-fsdp", "model-parallel")) == ALL
    assert group_for(groups, ("mi300x", "megatron", "model-parallel")) == ALL


def test_leave_one_out_coverage_by_hand():
    a100 = [0.0, 0.1, 0.2, 0.25, 0.4]
    h100 = [-0.5, -0.4]
    points = [Point(id=f"a{i}", key=A100_FSDP_DP, error=e) for i, e in enumerate(a100)] + [
        Point(id=f"h{i}", key=H100_FSDP_DP, error=e) for i, e in enumerate(h100)
    ]
    cov = coverage(points)
    # In-sample. a100 FSDP (5): q10 = 0 + 0.4 x 0.1 = 0.04, q90 = 0.25 + 0.6 x 0.15 = 0.34 ->
    # 0.1, 0.2, 0.25 in. h100 (1 case) -> every case (7): sorted -0.5 -0.4 0 0.1 0.2 0.25 0.4,
    # q10 = -0.5 + 0.6 x 0.1 = -0.44, q90 = 0.25 + 0.4 x 0.15 = 0.31 -> -0.5 out, -0.4 in.
    assert [c["in_sample"] for c in cov["per_case"]] == [
        False,
        True,
        True,
        True,
        False,
        False,
        True,
    ]
    # Leave-one-out. An a100 case left out leaves 4 a100 cases: every case (6) serves it.
    #   0.0 out: -0.5 -0.4 0.1 0.2 0.25 0.4 -> q10 = -0.45, q90 = 0.25 + 0.5 x 0.15 = 0.325: in
    #   0.1 or 0.2 out: the same quantiles: in
    #   0.25 out: ... 0.2 0.4 -> q90 = 0.2 + 0.5 x 0.2 = 0.3: in
    #   0.4 out: ... 0.2 0.25 -> q90 = 0.2 + 0.5 x 0.05 = 0.225: out
    # An h100 case left out: every case (6); -0.5 out -> q10 = -0.4 + 0.5 x 0.4 = -0.2: out;
    #   -0.4 out -> q10 = -0.5 + 0.5 x 0.5 = -0.25: out.
    assert [c["leave_one_out"] for c in cov["per_case"]] == [True] * 4 + [False] * 3
    assert {c["loo_group"] for c in cov["per_case"]} == {ALL}
    assert cov["per_case"][4]["loo_q90"] == pytest.approx(0.225)
    assert cov["per_case"][5]["loo_q10"] == pytest.approx(-0.2)
    assert cov["in_sample"] == {"covered": 4, "share": pytest.approx(4 / 7)}
    assert cov["leave_one_out"] == {"covered": 4, "share": pytest.approx(4 / 7)}


def test_the_goodput_median_carries_the_step_times_interval():
    scenario = make_scenario(training={"strategy": "zero3", "micro_batch_size": 1, "seq_len": 512})
    report = simulate(scenario, runs=4, seed=1)
    step, goodput = report["step"], report["training"]["goodput"]
    p50 = goodput["wall_days"]["p50"]
    assert goodput["wall_days_interval"] == pytest.approx(
        [p50 * t / step["time_s"] for t in step["interval"]["time_s"]]
    )
    lo, hi = goodput["wall_days_interval"]
    assert f"80% interval of the p50 from the step time's: {lo:,.1f}-{hi:,.1f} days" in render_text(
        report
    )


def test_report_carries_the_interval_of_the_shipped_table():
    scenario = make_scenario(training={"strategy": "zero3", "micro_batch_size": 1, "seq_len": 512})
    report = simulate(scenario, goodput=False)
    step, iv = report["step"], report["step"]["interval"]
    assert set(iv) == {"level", "time_s", "tokens_per_s_per_gpu", "group", "cases"}
    groups = read_yaml(intervals.shipped_path())["groups"]
    g = groups[iv["group"]]
    assert iv["cases"] == len(g["cases"])
    assert iv["time_s"] == pytest.approx(
        [step["time_s"] / (1 + g["q90"]), step["time_s"] / (1 + g["q10"])]
    )
    assert iv["tokens_per_s_per_gpu"] == pytest.approx(
        [
            step["tokens_per_s_per_gpu"] * (1 + g["q10"]),
            step["tokens_per_s_per_gpu"] * (1 + g["q90"]),
        ]
    )
    days = report["training"]["days"]
    assert report["training"]["days_interval"] == pytest.approx(
        [days * t / step["time_s"] for t in iv["time_s"]]
    )

    text = render_text(report)
    assert f"80% interval: step {iv['time_s'][0]:.3g}-{iv['time_s'][1]:.3g} s" in text
    assert f"(from {iv['cases']} validation cases: group {iv['group']})" in text


def test_shipped_table_takes_no_calibration_case():
    table = read_yaml(intervals.shipped_path())
    ids = {i for g in table["groups"].values() for i in g["cases"]}
    roles = {c.id: c.role for f in shipped_files() for c in load_cases(f)}
    assert ids and all(roles[i] == "validation" for i in ids)
    assert table["level"] == intervals.LEVEL and table["min_cases"] == intervals.MIN_CASES


def test_write_intervals_refuses_another_selection(capsys, tmp_path):
    out = str(tmp_path / "t.yaml")
    assert main(["accuracy", "--write-intervals", out, "--category", "memory"]) == 2
    assert main(["accuracy", "--write-intervals", out, "--no-shipped", "--cases", out]) == 2
    assert "--write-intervals fits the shipped validation cases" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_table_is_a_fresh_fit(tmp_path, capsys):
    """The table cannot go stale silently: refit from the validation set, compare."""
    out = tmp_path / "step_time.yaml"
    assert main(["accuracy", "--write-intervals", str(out)]) == 0
    fresh, shipped = read_yaml(out), read_yaml(intervals.shipped_path())
    assert {k: v for k, v in fresh.items() if k != "groups"} == {
        k: v for k, v in shipped.items() if k != "groups"
    }
    assert list(fresh["groups"]) == list(shipped["groups"])
    for name, g in fresh["groups"].items():
        s = shipped["groups"][name]
        assert list(g["cases"]) == list(s["cases"]), name
        assert [g["q10"], g["q90"], *g["cases"].values()] == pytest.approx(
            [s["q10"], s["q90"], *s["cases"].values()], rel=1e-9
        ), (
            f"{name}: regenerate with `clustersim accuracy --write-intervals {intervals.shipped_path()}`"
        )
