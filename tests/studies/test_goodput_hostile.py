"""Goodput on hostile inputs (issue 18): reliability sections whose failures outpace restarts end
at once with a result that says the run does not complete (why, and what would make it), the
Monte Carlo is bounded in events whatever the inputs, and every numeric field of the section is
refused out of its range at its field path, in `validate` and `run` alike."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import yaml

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.resources import data_dir
from simulator.scenario.load import scenario_from_dict
from simulator.studies.goodput import simulate_goodput
from simulator.studies.goodput.feasibility import MAX_EVENTS_PER_RUN, MAX_TOTAL_EVENTS, assess
from simulator.studies.goodput.model import run_model
from simulator.studies.goodput.process import simulate_run
from simulator.studies.sweep.runner import run_sweep
from simulator.studies.sweep.spec import sweep_from_dict
from tests.studies.test_goodput import one_process

HOUR, DAY = 3600.0, 86400.0


def big_405b(reliability: dict) -> dict:
    path = data_dir("scenarios") / "llama3-405b-tp8-pp16-16k-h100.yaml"
    data = yaml.safe_load(path.read_text())
    return {**copy.deepcopy(data), "reliability": reliability}


def refused_at(data: dict) -> dict[str, str]:
    with pytest.raises(UserError) as exc:
        scenario_from_dict(data)
    return {p.path: p.message for p in exc.value.problems}


# ---------------------------------------------------------------------------------- the probes


# The probes on the shipped Llama 3 405B scenario: the ones out of a field's range are
# refused at that field; mtbf 800 h per GPU is in range (a cluster MTBF of 2.9 min).
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "section, path",
    [
        (
            {"failure_rate_scale": 1e5},
            "reliability.failure_rate_scale",
        ),  # software: every 25 min per host
        ({"failures": {"gpu": {"mtbf": "1 s"}}}, "reliability.failures.gpu.mtbf"),
        ({"failures": {"gpu": {"weibull_shape": 0.01}}}, "reliability.failures.gpu.weibull_shape"),
        ({"window": "1e9 days"}, "reliability.window"),
    ],
)
def test_probes_out_of_range_are_refused_at_their_field(section, path):
    assert path in refused_at(big_405b(section))


@pytest.mark.timeout(10)
def test_405b_with_800h_gpus_does_not_complete_at_once():
    # 16,384 GPUs at 800 h: 20.5 GPU failures an hour, with the other Llama 3 classes a cluster
    # MTBF under 3 min against a 10 min restart. Step time and work as given (74.4 days).
    s = scenario_from_dict(big_405b({"failures": {"gpu": {"mtbf": "800 h"}}}))
    g = simulate_goodput(s, 6.9, 930_000 * 6.9)
    f = g.feasibility
    assert not g.completes and g.runs == () and f.because
    gpu_rate = 16_384 / (800 * HOUR)
    assert f.cluster_mtbf_s < 1 / gpu_rate == pytest.approx(175.8, abs=0.1)
    assert f.restart_success == pytest.approx(math.exp(-f.restart_s / f.cluster_mtbf_s))
    assert f.restart_success < 0.05 and f.progress_per_failure_s < 0
    assert f.expected_events > MAX_EVENTS_PER_RUN
    assert any(r.startswith("a restart of at most") for r in f.remedies)
    assert math.isinf(g.percentile(g.wall_days, 50))


# ---------------------------------------------------------------------------------- the boundary


def boundary_model(initialization_h: float):
    """Job MTBF M = 1 h, a 60 s checkpoint every 3540 s (tau + delta = M), 100 cycles of work."""
    data = one_process(
        checkpoint={"interval": "3540 s"}, restart={"initialization": f"{initialization_h} h"}
    )
    return run_model(scenario_from_dict(data), 1.0, 100 * 3540.0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("initialization_h, completes", [(6, True), (7, False)])
def test_the_bound_decides_both_sides_by_hand(initialization_h, completes):
    # Daly 2006's complete model: failures per run = T_w / M = e^(R/M) (e^((tau + delta)/M) - 1)
    # T_s / (tau M) with (tau + delta)/M = 1 and T_s / tau = 100: e^(R/M) (e - 1) 100.
    # R = initialization + 60 s load. 6 h: R/M = 21,660/3,600 = 6.0167, e^6.0167 = 410.2,
    # x 1.71828 x 100 = 70,486 <= 100,000. 7 h: R/M = 7.0167, e^ = 1,115.0 -> 191,590 > 100,000.
    f = assess(boundary_model(initialization_h))
    expected = {6: 70_486, 7: 191_590}[initialization_h]
    assert f.expected_events == pytest.approx(expected, rel=1e-3)
    assert f.completes is completes
    # First order: M - R - (tau + delta)/2 - M delta / tau = 3600 - R - 1800 - 61.0 s.
    restart = initialization_h * HOUR + 60.0
    assert f.progress_per_failure_s == pytest.approx(3600 - restart - 1800 - 3600 * 60 / 3540)
    if completes:  # 100 runs of 70,486 events exceed the 2M budget: 28 runs
        assert f.runs == MAX_TOTAL_EVENTS // expected == 28 and f.event_cap >= 2 * expected
    else:
        # R/M = ln(100,000 / 171.828) = 6.3664: R at most 22,919 s = 6.37 h.
        assert "a restart of at most 6.37 h" in f.remedies[0]


@pytest.mark.timeout(10)
def test_a_fixed_interval_far_beyond_the_mtbf_is_remedied_by_the_optimal_one():
    # A 30-day interval against a 1 h MTBF: e^(720) per cycle, far beyond; Daly's is ~11 min.
    data = one_process(checkpoint={"interval": "30 days"})
    f = assess(run_model(scenario_from_dict(data), 1.0, 200 * DAY))
    assert not f.completes and math.isinf(f.expected_events)
    assert any(r.startswith("checkpoint interval: optimal") for r in f.remedies)


@pytest.mark.timeout(10)
def test_no_spare_while_repairs_outlast_failures_does_not_complete():
    # 0 hot spares, waiting for repairs of 1 year at 1 failure an hour: the hosts out for repair
    # are Poisson with mean 8,766, so the one host is healthy with probability e^-8766.
    data = one_process(restart={"hot_spares": 0, "repair_time": "365 days"})
    data["reliability"]["failures"]["crash"]["takes_host"] = True
    f = assess(run_model(scenario_from_dict(data), 1.0, 100 * HOUR))
    assert not f.completes and f.availability == 0.0
    assert any("without_spare: shrink" in r for r in f.remedies)


# ---------------------------------------------------------------------------------- the event cap


@pytest.mark.timeout(10)
def test_a_run_stops_at_its_event_cap_and_says_so():
    model = run_model(scenario_from_dict(one_process()), 1.0, 1000 * HOUR)  # ~1,000 failures
    # The same run (a fresh SeedSequence each: spawning from one changes it) with and without
    # the cap: the cap stops it at its 50th event, well before the ~1,000 the run takes.
    capped = simulate_run(model, np.random.SeedSequence(0), cap=50)
    assert capped.capped and sum(capped.interruptions.values()) == 49  # the 50th ends the run
    assert capped.useful_s < model.work_s
    whole = simulate_run(model, np.random.SeedSequence(0))
    assert not whole.capped and whole.useful_s == model.work_s
    assert sum(whole.interruptions.values()) > 49 and capped.wall_s < whole.wall_s


# ---------------------------------------------------------------------------------- the report


@pytest.mark.timeout(10)
def test_sweep_row_of_a_run_that_does_not_complete(tmp_path):
    base = one_process(runs=5)
    sweep = sweep_from_dict(
        {"base": base, "axes": {"reliability.restart.initialization": ["1 min", "7 days"]}}
    )
    out = tmp_path / "r.jsonl"
    run_sweep(sweep, out, jobs=1)
    ok, never = (json.loads(line) for line in out.read_text().splitlines())
    assert ok["status"] == never["status"] == "ok"
    assert ok["wall_days_p50"] > ok["days"] and ok["message"] == ""
    assert never["wall_days_p50"] is None and never["effective_training_time_ratio"] is None
    assert never["message"].startswith("goodput: does not complete")


def write(tmp_path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.timeout(10)
def test_cli_run_reports_the_run_that_does_not_complete(tmp_path, capsys):
    data = one_process(restart={"initialization": "7 days"})
    path = write(tmp_path, "never.yaml", data)
    assert main(["validate", path]) == 0
    report = tmp_path / "r.json"
    assert main(["run", path, "--json-out", str(report)]) == 0
    assert "DOES NOT COMPLETE" in capsys.readouterr().out
    g = json.loads(report.read_text())["training"]["goodput"]
    assert g["completes"] is False and g["never_completes_because"] and g["wall_days"] is None
    f = g["feasibility"]
    assert f["cluster_mtbf_s"] == HOUR and f["restart_s"] == 7 * DAY + 60.0
    assert f["would_complete_with"] and f["bound_interruptions_per_run"] == MAX_EVENTS_PER_RUN
    assert (
        main(["plot", "--goodput", str(report), "--out", str(tmp_path / "plots")]) == 2
    )  # no runs to draw
    assert "does not complete" in capsys.readouterr().err


@pytest.mark.timeout(10)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_refuses_a_field_out_of_range_in_validate_and_run(tmp_path, capsys, command):
    data = one_process(mtbf="1 s")
    assert main([command, write(tmp_path, "bad.yaml", data)]) == 2
    err = capsys.readouterr().err
    assert "reliability.failures.crash.mtbf" in err and "Traceback" not in err


PROBES_OUT_OF_RANGE = [
    ({"failure_rate_scale": 1e5}, "reliability.failure_rate_scale"),
    ({"failures": {"gpu": {"mtbf": "1 s"}}}, "reliability.failures.gpu.mtbf"),
    ({"failures": {"gpu": {"weibull_shape": 0.01}}}, "reliability.failures.gpu.weibull_shape"),
    ({"window": "1e9 days"}, "reliability.window"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("section, path", PROBES_OUT_OF_RANGE)
def test_cli_refuses_the_405b_probes_in_validate_and_run(tmp_path, capsys, command, section, path):
    assert main([command, write(tmp_path, "probe.yaml", big_405b(section))]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "Traceback" not in err


@pytest.mark.timeout(10)
def test_cli_runs_the_405b_800h_probe_to_a_result(tmp_path, capsys):
    path = write(tmp_path, "probe.yaml", big_405b({"failures": {"gpu": {"mtbf": "800 h"}}}))
    assert main(["validate", path]) == 0
    assert main(["run", path]) == 0
    out = capsys.readouterr().out
    assert "DOES NOT COMPLETE" in out and "would complete with: a restart of at most" in out


# ---------------------------------------------------------------------------------- bounds

# (dotted path under reliability, the last value accepted, the first refused) on both sides of
# each range; the ranges and their reasons are in scenario/schema_reliability.py.
BOUNDS = [
    ("failures.crash.mtbf", "1 h", "59 min"),
    ("failures.gpu.failures_per_1000_unit_days", 24_000, 24_001),
    ("failures.gpu.failures_per_1000_unit_days", 0, -1),
    ("failures.crash.weibull_shape", 0.3, 0.29),
    ("failures.crash.weibull_shape", 5, 5.01),
    ("failure_rate_scale", 1, 1.01),  # the crash class at 1 h: scaled, once an hour at most
    ("failure_rate_scale", 0, -1),
    ("window", "3652 days", "3653 days"),  # 10 years = 3,652.5 days
    ("window", "1 s", "0 s"),
    ("runs", 100_000, 100_001),
    ("runs", 1, 0),
    ("checkpoint.size", "1 MB", "999 kB"),
    ("checkpoint.size", "10 PB", "11 PB"),
    ("checkpoint.write_bandwidth", "1 MB/s", "999 kB/s"),
    ("checkpoint.write_bandwidth_per_host", "1 PB/s", "1.1 PB/s"),
    ("checkpoint.read_bandwidth", "1 PB/s", "1.1 PB/s"),
    ("checkpoint.read_bandwidth_per_host", "1 MB/s", "999 kB/s"),
    ("checkpoint.interval", 1, 0),
    ("checkpoint.interval", 10**9, 10**9 + 1),
    ("checkpoint.interval", "3652 days", "3653 days"),
    ("restart.detection", "7 days", "7.1 days"),
    ("restart.initialization", "0 s", "-1 s"),
    ("restart.initialization", "7 days", "7.1 days"),
    ("restart.repair_time", "365 days", "366 days"),
    ("restart.hot_spares", 1_000_000, 1_000_001),
    ("restart.hot_spares", 0, -1),
    ("stragglers.mtbf", "1 h", "59 min"),
    ("stragglers.detection", "7 days", "8 days"),
    ("stragglers.slowdown", 100, 101),
]


def with_field(path: str, value) -> dict:
    data = one_process(
        restart={"hot_spares": 2, "repair_time": "1 days"},
        stragglers={"mtbf": "100 h", "slowdown": 1.5, "detection": "20 min"},
    )
    if path == "checkpoint.pause":
        data["reliability"]["checkpoint"]["mode"] = "async"
    node = data["reliability"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


@pytest.mark.timeout(10)
@pytest.mark.parametrize("path, good, bad", BOUNDS + [("checkpoint.pause", "7 days", "8 days")])
def test_each_field_is_bounded_on_both_sides(path, good, bad):
    scenario_from_dict(with_field(path, good))
    assert f"reliability.{path}" in refused_at(with_field(path, bad))


@pytest.mark.timeout(20)
def test_plan_train_says_why_a_run_does_not_complete(tmp_path, capsys):
    path = write(tmp_path, "never.yaml", one_process(restart={"initialization": "7 days"}))
    assert main(["plan", "train", path, "--tokens", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "does not complete (wall p50/p90 not simulated)" in out and " inf " not in out
