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
from simulator.studies.intervals import (
    Point,
    conformal_bounds,
    coverage,
    fit,
    group_for,
    time_error,
)
from simulator.studies.simulate import simulate
from tests.helpers import make_scenario

A100_FSDP_DP = ("a100", "pytorch-fsdp", "data-parallel")
H100_FSDP_DP = ("h100", "pytorch-fsdp", "data-parallel")
ALL = "* x * x *"


def test_conformal_bounds_by_hand():
    # n = 9: k = floor(10 x 0.1) = 1, m = ceil(10 x 0.9) = 9: the smallest and the largest, which
    # hold a tenth exchangeable error with probability >= (9 - 1) / 10 = 80%.
    nine = [0.4, -0.3, 0.1, 0.0, 0.2, -0.1, 0.3, 0.05, -0.2]
    assert conformal_bounds(nine) == (-0.3, 0.4)
    # n = 19: k = floor(2.0) = 2, m = ceil(18.0) = 18: the 2nd and the 18th smallest.
    nineteen = [i / 100 for i in range(19)]  # 0.00 .. 0.18
    assert conformal_bounds(nineteen) == (0.01, 0.17)
    # n = 24: k = floor(2.5) = 2, m = ceil(22.5) = 23.
    twenty_four = [float(i) for i in range(24)]
    assert conformal_bounds(twenty_four) == (1.0, 22.0)
    # Fewer than 9 (only the last-resort group may be): the smallest and the largest.
    assert conformal_bounds([0.1, -0.2, 0.3]) == (-0.2, 0.3)
    assert conformal_bounds([7.0]) == (7.0, 7.0)


def test_time_error_of_rates_and_times():
    # Throughput predicted 20% high: the predicted step is 1/1.2 of the published one.
    assert time_error("tokens_per_s_per_gpu", 120.0, 100.0) == pytest.approx(1 / 1.2 - 1)
    assert time_error("tflops_per_gpu_from_flops", 90.0, 100.0) == pytest.approx(1 / 0.9 - 1)
    assert time_error("time_s", 1.2, 1.0) == pytest.approx(0.2)


def test_interval_from_the_group_quantiles(monkeypatch):
    errors = [0.1, -0.2, 0.3, 0.0, 0.5]  # 5 < 9 cases: bounds -0.2 and 0.5 (the extremes)
    groups = fit([Point(id=f"c{i}", key=H100_FSDP_DP, error=e) for i, e in enumerate(errors)])
    monkeypatch.setattr(intervals, "shipped_groups", lambda: groups)
    scenario = make_scenario()  # 8 A100s, PyTorch FSDP: no group of its own -> every case
    iv = intervals.interval(scenario, 2.0, 1000.0)
    assert iv["group"] == ALL and iv["cases"] == 5 and iv["level"] == 0.8
    # T = P / (1 + e): e = q90 gives the shortest time, e = q10 the longest.
    assert iv["time_s"] == pytest.approx([2.0 / 1.5, 2.0 / 0.8])
    # tokens/s/GPU is proportional to 1 / T: R (1 + e).
    assert iv["tokens_per_s_per_gpu"] == pytest.approx([800.0, 1500.0])


def test_fallback_to_family_then_to_every_case():
    points = (
        [Point(id=f"f{i}", key=A100_FSDP_DP, error=0.01 * i) for i in range(9)]
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
    # 9 a100 FSDP, 12 a100 data-parallel, 14 in all; the groups of 3 and 2 are too small.
    assert {n: len(g["cases"]) for n, g in groups.items()} == {
        "a100 x pytorch-fsdp x data-parallel": 9,
        "a100 x * x data-parallel": 12,
        ALL: 14,
    }
    assert set(groups["a100 x * x data-parallel"]["cases"]) == {f"f{i}" for i in range(9)} | {
        f"d{i}" for i in range(3)
    }
    assert group_for(groups, A100_FSDP_DP) == "a100 x pytorch-fsdp x data-parallel"
    assert group_for(groups, ("a100", "deepspeed", "data-parallel")) == "a100 x * x data-parallel"
    assert group_for(groups, ("h100", "pytorch-fsdp", "model-parallel")) == ALL
    assert group_for(groups, ("mi300x", "megatron", "model-parallel")) == ALL


def test_leave_one_out_coverage_by_hand():
    # Nine a100 cases (a group of its own) and one h100 case (served by every case).
    a100 = [0.0, 0.1, 0.2, 0.25, 0.4, -0.1, 0.3, 0.15, 0.05]
    h100 = [-0.5]
    points = [Point(id=f"a{i}", key=A100_FSDP_DP, error=e) for i, e in enumerate(a100)] + [
        Point(id=f"h{i}", key=H100_FSDP_DP, error=e) for i, e in enumerate(h100)
    ]
    cov = coverage(points)
    # In-sample. a100 FSDP (9): k = 1, m = 9: [-0.1, 0.4], every a100 case in. h100 -> every
    # case (10): k = floor(1.1) = 1, m = ceil(9.9) = 10: [-0.5, 0.4], -0.5 in.
    assert all(c["in_sample"] for c in cov["per_case"])
    # Leave-one-out. An a100 case left out leaves 8 a100 cases (< 9): every case (9) serves it,
    # k = 1, m = 9: the extremes of the other nine. -0.1 out: [-0.5, 0.4], in; 0.4 out:
    # [-0.5, 0.3], out; the others lie strictly inside: in. The h100 case left out: every case
    # is now the nine a100 cases, [-0.1, 0.4]: -0.5 out.
    loo = [c["leave_one_out"] for c in cov["per_case"]]
    assert loo == [True, True, True, True, False, True, True, True, True, False]
    assert {c["loo_group"] for c in cov["per_case"]} == {ALL}
    assert cov["per_case"][4]["loo_q90"] == pytest.approx(0.3)
    assert cov["per_case"][9]["loo_q10"] == pytest.approx(-0.1)
    assert cov["in_sample"] == {"covered": 10, "share": pytest.approx(1.0)}
    assert cov["leave_one_out"] == {"covered": 8, "share": pytest.approx(0.8)}


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
