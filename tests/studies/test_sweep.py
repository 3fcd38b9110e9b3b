"""Sweeps (simulator/studies/sweep/, `clustersim sweep`): expansion order, per-point validity, sweep-file
errors, resumable and byte-identical results, refusal to overwrite foreign files, Dask = local."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.core.resources import scenario_dir
from tests.helpers import PROJECT_ROOT

SCENARIO_DIR = scenario_dir()
from simulator.cli.commands.sweep import ProgressBar
from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.studies.sweep.results import OUTPUT_COLUMNS
from simulator.studies.sweep.runner import run_sweep
from simulator.studies.sweep.spec import axis_values, load_sweep, sweep_from_dict

# Column names the plot tool reads (simulator/plots.py); written out, not imported, on purpose.
REQUIRED_COLUMNS = [
    "status",
    "message",
    "name",
    "model",
    "params",
    "strategy",
    "gpu",
    "num_gpus",
    "fits",
    "mem_total_bytes",
    "mem_params_bytes",
    "mem_grads_bytes",
    "mem_optimizer_bytes",
    "mem_activations_bytes",
    "mem_buffers_bytes",
    "mem_overhead_bytes",
    "capacity_bytes",
    "step_time_s",
    "step_time_lo_s",
    "step_time_hi_s",
    "compute_s",
    "comm_s",
    "exposed_comm_s",
    "mfu",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "days",
    "gpu_hours",
    "cost_usd",
    "wall_days_p50",
    "wall_days_p90",
    "effective_training_time_ratio",
    "interruptions",
    "checkpoint_interval_s",
    "energy_per_token_j",
    "cluster_power_avg_w",
    "run_mwh",
]
MEMORY = ("params", "grads", "optimizer", "activations", "buffers", "overhead")
# GPT-2 small as published by Hugging Face (`gpt2`, tied embeddings): 124,439,808 parameters.
# GPT-2 small (124,439,808, HF) with the 2,048-row position table of GPT-3 Small: + 1024 x 768.
GPT3_125M_PARAMS = 124_439_808 + 1024 * 768
GLOBAL_BATCH, SEQ_LEN = 16, 512
BASE = {
    "name": "tiny",
    "model": {"preset": "gpt3-125m"},
    "training": {"micro_batch_size": 1, "seq_len": SEQ_LEN, "global_batch_size": GLOBAL_BATCH},
    "cluster": {"topology": "dgx-a100"},
}


def write_sweep(
    tmp_path: Path, axes: dict, mode: str = "grid", name: str = "sweep.yaml", **extra
) -> Path:
    path = tmp_path / name
    path.write_text(
        json.dumps({"base": BASE, "mode": mode, "axes": axes, **extra}), encoding="utf-8"
    )
    return path  # JSON is YAML


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


GRID_AXES = {
    "training.strategy": ["ddp", "zero3"],
    "cluster.num_gpus": [1, 2, 4, 8, 3],
}  # 3: 16 % 3 != 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, bytes]:
    """The grid sweep run once, uninterrupted, in one process: the bytes every other run must give."""
    tmp = tmp_path_factory.mktemp("ref")
    sweep = write_sweep(tmp, GRID_AXES)
    out = tmp / "results.csv"
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    return sweep, out.read_bytes()


# ------------------------------------------------------------------------------ expansion


def test_grid_order_is_nested_loops_last_axis_fastest():
    sweep = sweep_from_dict(
        {
            "base": BASE,
            "axes": {"training.strategy": ["ddp", "zero3"], "cluster.num_gpus": [1, 2, 4]},
        }
    )
    assert sweep.points() == [
        ("ddp", 1),
        ("ddp", 2),
        ("ddp", 4),
        ("zero3", 1),
        ("zero3", 2),
        ("zero3", 4),
    ]
    assert sweep.columns[:3] == ["point", "training.strategy", "cluster.num_gpus"]
    assert sweep.columns[3:] == REQUIRED_COLUMNS


def test_zip_pairs_the_ith_values():
    sweep = sweep_from_dict(
        {
            "base": BASE,
            "mode": "zip",
            "axes": {"training.strategy": ["ddp", "zero1", "zero3"], "cluster.num_gpus": [1, 2, 8]},
        }
    )
    assert sweep.points() == [("ddp", 1), ("zero1", 2), ("zero3", 8)]
    data = sweep.scenario_dict(sweep.points()[1])
    assert data["training"]["strategy"] == "zero1" and data["cluster"]["num_gpus"] == 2
    assert BASE["training"].get("strategy") is None  # the base is not modified


def test_zip_of_unequal_axes_is_an_error():
    with pytest.raises(UserError) as exc:
        sweep_from_dict(
            {
                "base": BASE,
                "mode": "zip",
                "axes": {"training.strategy": ["ddp", "zero3"], "cluster.num_gpus": [1, 2, 4]},
            }
        )
    (problem,) = exc.value.problems
    assert (
        problem.path == "axes"
        and "training.strategy: 2" in problem.message
        and "cluster.num_gpus: 3" in problem.message
    )


def test_paths_index_lists_and_create_sections():
    base = {
        **BASE,
        "cluster": {"topology": "dgx-a100", "stragglers": [{"rank": 0, "slowdown": 1.5}]},
    }
    sweep = sweep_from_dict(
        {
            "base": base,
            "axes": {
                "cluster.stragglers.0.slowdown": [2.0, 3.0],
                "training.offload.optimizer": ["none", "cpu"],
            },
        }
    )
    data = sweep.scenario_dict((3.0, "cpu"))
    assert data["cluster"]["stragglers"] == [{"rank": 0, "slowdown": 3.0}]
    assert data["training"]["offload"] == {"optimizer": "cpu"}
    assert base["cluster"]["stragglers"][0]["slowdown"] == 1.5
    with pytest.raises(UserError, match="not an index"):
        sweep_from_dict({"base": base, "axes": {"cluster.stragglers.1.slowdown": [2.0]}})


def test_progressions_and_ranges():
    assert axis_values([1, 2, 4, "...", 256]) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    assert axis_values([512, 1024, 1536, "...", 3072]) == (512, 1024, 1536, 2048, 2560, 3072)
    assert axis_values({"start": 1, "stop": 16, "factor": 2}) == (1, 2, 4, 8, 16)
    assert axis_values({"start": 1, "stop": 4, "step": 1}) == (1, 2, 3, 4)
    for bad in (
        [1, 2, "...", 8],
        [1, 2, 4, "...", 100],
        [1, 3, 4, "...", 8],
        {"start": 1, "stop": 4},
        [],
    ):
        with pytest.raises(ValueError):
            axis_values(bad)


# ------------------------------------------------------------------------------ sweep-file errors


def test_sweep_file_errors_are_reported_together_with_suggestions():
    with pytest.raises(UserError) as exc:
        sweep_from_dict({"bsae": BASE, "mode": "gird", "axes": {"training.strategy": ["ddp"]}})
    got = {p.path: p for p in exc.value.problems}
    assert "did you mean 'base'" in got["bsae"].hint
    assert "did you mean 'grid'" in got["mode"].hint
    assert got["base"].message == "required key is missing"


def test_axis_path_naming_no_field_is_an_error():
    with pytest.raises(UserError) as exc:
        sweep_from_dict(
            {
                "base": BASE,
                "axes": {
                    "training.strategyy": ["ddp"],
                    "trainig.seq_len": [128],
                    "training.strategy.x": [1],
                    "training.seq_len.x": [1],
                },
            }
        )
    got = {p.path: p for p in exc.value.problems}
    assert set(got) == {
        "axes.training.strategyy",
        "axes.trainig.seq_len",
        "axes.training.strategy.x",
        "axes.training.seq_len.x",
    }
    assert "names no field" in got["axes.training.strategyy"].message
    assert "did you mean 'strategy'" in got["axes.training.strategyy"].hint
    assert "did you mean 'training'" in got["axes.trainig.seq_len"].hint
    # strategy is absent from the base, seq_len is set there: both are values, not sections.
    assert "training.strategy is not a section" in got["axes.training.strategy.x"].message
    assert "training.seq_len is a number, not a mapping" in got["axes.training.seq_len.x"].message


def test_unknown_axis_path_exits_2_through_the_cli(tmp_path, capsys):
    sweep = write_sweep(tmp_path, {"training.strategyy": ["ddp", "zero3"]})
    out = tmp_path / "results.csv"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        "axes.training.strategyy" in err
        and "did you mean 'strategy'" in err
        and "Traceback" not in err
    )
    assert not out.exists()


def test_base_file_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "scen").mkdir()
    (tmp_path / "scen" / "base.yaml").write_text(json.dumps(BASE), encoding="utf-8")
    (tmp_path / "sweeps").mkdir()
    path = tmp_path / "sweeps" / "s.yaml"
    path.write_text(
        "base: ../scen/base.yaml\nset: {training.seq_len: 256}\naxes:\n  training.strategy: [ddp]\n"
    )
    sweep = load_sweep(path)
    assert sweep.scenario_dict(("ddp",))["training"]["seq_len"] == 256
    path.write_text("base: ../scen/nope.yaml\naxes:\n  training.strategy: [ddp]\n")
    with pytest.raises(UserError, match="nope.yaml: file not found"):
        load_sweep(path)


def test_unknown_output_format_is_an_error(tmp_path, capsys):
    sweep = write_sweep(tmp_path, {"training.strategy": ["ddp"]})
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "r.txt")]) == 2
    assert ".csv, .jsonl or .parquet" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag", ["--timeout=-1", "--timeout=nan", "--timeout=inf", "--timeout=-inf", "--jobs=0"]
)
def test_bad_timeouts_and_job_counts_exit_2(tmp_path, capsys, flag):
    sweep = write_sweep(tmp_path, {"training.strategy": ["ddp"]})
    out = tmp_path / "r.csv"
    assert main(["sweep", str(sweep), "--out", str(out), flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith(flag.split("=")[0] + ":") and "Traceback" not in err
    assert not out.exists()


def test_timeout_0_is_no_limit(tmp_path):
    sweep = write_sweep(tmp_path, {"training.strategy": ["ddp"]})
    assert (
        main(["sweep", str(sweep), "--out", str(tmp_path / "r.csv"), "--timeout", "0", "-q"]) == 0
    )
    assert read_csv(tmp_path / "r.csv")[0]["status"] == "ok"


def test_a_scenario_file_given_to_sweep_says_to_run_it(tmp_path, capsys):
    scenario = SCENARIO_DIR / "llama2-7b-zero3-8xa100.yaml"
    assert main(["sweep", str(scenario), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "this is a scenario file" in err and f"run it with: clustersim run {scenario}" in err
    assert "Traceback" not in err and not (tmp_path / "r.csv").exists()


def test_a_sweep_file_given_to_run_says_to_sweep_it(capsys):
    sweep = SCENARIO_DIR / "sweeps" / "llama2-capacity.yaml"
    assert main(["run", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert (
        "this is a sweep file" in err
        and f"clustersim sweep {sweep} --out" in err
        and "Traceback" not in err
    )


# ------------------------------------------------------------------------------ rows


def test_rows_columns_and_values(reference, tmp_path):
    data = reference[1]
    out = tmp_path / "r.csv"
    out.write_bytes(data)
    header = data.decode().splitlines()[0].split(",")
    assert header == ["point", "training.strategy", "cluster.num_gpus", *REQUIRED_COLUMNS]
    rows = read_csv(out)
    assert [r["point"] for r in rows] == [str(i) for i in range(10)]
    for row, (strategy, gpus) in zip(
        rows, [(s, g) for s in ("ddp", "zero3") for g in (1, 2, 4, 8, 3)]
    ):
        assert (row["training.strategy"], row["cluster.num_gpus"]) == (strategy, str(gpus))
        if gpus == 3:  # 16 sequences do not split over 3 GPUs: reported in the row, not raised
            assert row["status"] == "invalid"
            assert "training.global_batch_size" in row["message"] and "multiple" in row["message"]
            assert all(row[c] == "" for c in REQUIRED_COLUMNS[2:])
            continue
        assert row["status"] == "ok" and row["message"] == ""
        assert (
            row["strategy"] == strategy
            and int(row["num_gpus"]) == gpus
            and row["model"] == "gpt3-125m"
        )
        assert int(row["params"]) == GPT3_125M_PARAMS
        assert int(row["capacity_bytes"]) == 80 * 2**30  # A100-SXM4-80GB
        assert row["fits"] == "true"
        assert int(row["mem_total_bytes"]) == sum(int(row[f"mem_{k}_bytes"]) for k in MEMORY)
        step = float(row["step_time_s"])
        assert 0 < float(row["step_time_lo_s"]) < float(row["step_time_hi_s"])
        assert float(row["tokens_per_s"]) == pytest.approx(GLOBAL_BATCH * SEQ_LEN / step, rel=1e-9)
        assert float(row["tokens_per_s_per_gpu"]) == pytest.approx(
            float(row["tokens_per_s"]) / gpus, rel=1e-9
        )
        assert float(row["gpu_hours"]) == pytest.approx(float(row["days"]) * 24 * gpus, rel=1e-9)
        assert row["cost_usd"] == ""  # no price given


def test_zero3_shards_model_states_by_gpu_count(reference, tmp_path):
    out = tmp_path / "r.csv"
    out.write_bytes(reference[1])
    z3 = {
        int(r["num_gpus"]): r
        for r in read_csv(out)
        if r["strategy"] == "zero3" and r["status"] == "ok"
    }
    ddp1 = next(r for r in read_csv(out) if r["strategy"] == "ddp" and r["num_gpus"] == "1")
    # bf16 weights: 2 bytes per parameter, split across the ZeRO-3 group (Rajbhandari et al. 2020).
    for n in (2, 4, 8):
        assert int(z3[n]["mem_params_bytes"]) == pytest.approx(2 * GPT3_125M_PARAMS / n, abs=n)
    assert int(ddp1["mem_params_bytes"]) == 2 * GPT3_125M_PARAMS


def test_cost_column_when_a_price_is_given(tmp_path):
    sweep = write_sweep(
        tmp_path, {"cluster.num_gpus": [2]}, set={"cluster.price_per_gpu_hour": 2.0}
    )
    out = tmp_path / "r.jsonl"
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1", "-q"]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["cost_usd"] == pytest.approx(2.0 * row["gpu_hours"], rel=1e-12)


def test_jsonl_rows_match_csv_rows(reference, tmp_path):
    sweep_path, data = reference
    out = tmp_path / "r.jsonl"
    assert main(["sweep", str(sweep_path), "--out", str(out), "--jobs", "1", "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    (tmp_path / "r.csv").write_bytes(data)
    for j, c in zip(rows, read_csv(tmp_path / "r.csv"), strict=True):
        assert list(j) == list(c)
        for key, value in c.items():
            expected = "" if j[key] is None else j[key]
            if isinstance(expected, bool):
                expected = str(expected).lower()
            assert str(expected) == value


def test_errors_and_timeouts_are_rows_and_can_be_retried(tmp_path, monkeypatch):
    import simulator.studies.simulate

    sweep = sweep_from_dict({"base": BASE, "axes": {"cluster.num_gpus": [1, 2]}})
    out = tmp_path / "r.csv"
    real = simulator.studies.simulate.simulate

    def flaky(scenario, **kw):
        if scenario.cluster.num_gpus == 1:
            time.sleep(5)
        raise RuntimeError("boom")

    monkeypatch.setattr(simulator.studies.simulate, "simulate", flaky)
    summary = run_sweep(sweep, out, jobs=1, timeout_s=0.2)
    assert summary.status_counts == {"ok": 0, "invalid": 0, "error": 2}
    assert [r["message"] for r in read_csv(out)] == ["timed out after 0.2 s", "RuntimeError: boom"]
    monkeypatch.setattr(simulator.studies.simulate, "simulate", real)
    assert run_sweep(sweep, out, jobs=1).computed == 0  # finished rows, errors included, are kept
    summary = run_sweep(sweep, out, jobs=1, retry_errors=True)
    assert summary.computed == 2 and summary.status_counts["ok"] == 2


# ------------------------------------------------------------------------------ determinism, resume


def test_parallel_run_is_byte_identical(reference, tmp_path):
    sweep_path, data = reference
    out = tmp_path / "r.csv"
    assert main(["sweep", str(sweep_path), "--out", str(out), "--jobs", "2", "-q"]) == 0
    assert out.read_bytes() == data


@pytest.mark.parametrize("keep", [0, 4, 9])
def test_resume_after_truncation_with_torn_last_line(reference, tmp_path, keep):
    sweep_path, data = reference
    out = tmp_path / "results.csv"
    assert main(["sweep", str(sweep_path), "--out", str(out), "--jobs", "1", "-q"]) == 0
    lines = data.decode().splitlines(keepends=True)
    torn = lines[keep + 1][
        : len(lines[keep + 1]) // 2
    ]  # half of a row: what a kill mid-write leaves
    kept = [lines[0], *lines[1 : keep + 1][::-1]]  # rows land in completion order, not point order
    out.write_text("".join(kept) + torn, encoding="utf-8")
    summary = run_sweep(load_sweep(sweep_path), out, jobs=1)
    assert summary.resumed == keep and summary.computed == 10 - keep
    assert out.read_bytes() == data


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("after", [1, 3, 9])
def test_interrupt_keeps_exactly_the_finished_rows_and_rerun_completes(
    reference, tmp_path, jobs, after
):
    sweep_path, data = reference
    out = tmp_path / "results.csv"

    def interrupt(done, total):  # called right after each row is appended
        if done == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_sweep(sweep_path), out, jobs=jobs, on_progress=interrupt)
    lines = out.read_text().splitlines()
    assert lines[0] == data.decode().splitlines()[0] and len(lines) == 1 + after
    rows = lines[1:]
    assert len(set(rows)) == len(rows) and set(rows) <= set(data.decode().splitlines()[1:])
    summary = run_sweep(load_sweep(sweep_path), out, jobs=jobs)
    assert summary.resumed == after and summary.computed == 10 - after
    assert out.read_bytes() == data


def test_sigterm_stops_the_workers_keeps_rows_and_exits_143(
    reference, tmp_path, monkeypatch, capsys
):
    sweep_path, data = reference
    out = tmp_path / "results.csv"

    def terminate(self, done, total):  # the CLI's progress callback: SIGTERM after two rows
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    import simulator.studies.simulate

    real = simulator.studies.simulate.simulate

    def stuck(scenario, **kw):  # ZeRO-3 points (5-9) hang: stopping must not wait for them
        if scenario.training.strategy == "zero3":
            time.sleep(60)
        return real(scenario, **kw)

    monkeypatch.setattr(ProgressBar, "update", terminate)
    monkeypatch.setattr(simulator.studies.simulate, "simulate", stuck)  # forked workers inherit it
    handler, children = signal.getsignal(signal.SIGTERM), child_processes(os.getpid())
    assert main(["sweep", str(sweep_path), "--out", str(out), "-j", "2"]) == 143
    assert "interrupted: finished rows are kept" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == handler  # restored
    assert child_processes(os.getpid()) == children  # the pool's workers were stopped and joined
    assert len(out.read_text().splitlines()) == 1 + 2
    monkeypatch.undo()
    assert main(["sweep", str(sweep_path), "--out", str(out), "-j", "2", "-q"]) == 0
    assert out.read_bytes() == data


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="forks a pool with a patched simulator"
)
def test_killed_sweep_leaves_no_workers_and_resumes_to_the_same_file(reference, tmp_path):
    sweep_path, data = reference
    out = tmp_path / "results.csv"
    # ZeRO-3 points (5-9) never finish, so the sweep is surely mid-way when it is killed, however
    # fast this machine: rows 0-3 (the first chunk) are written, then it waits.
    code = (
        "import multiprocessing, sys, time, simulator.studies.simulate as s; "
        "multiprocessing.set_start_method('fork'); f = s.simulate; "
        "s.simulate = lambda sc, **k: time.sleep(3600) if sc.training.strategy == 'zero3' "
        "else f(sc, **k); "
        "from simulator.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sweep", str(sweep_path), "--out", str(out), "-j", "2"],
        cwd=PROJECT_ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(
            lambda: out.exists() and out.read_text().count("\n") >= 1 + 4, timeout_s=120
        )
        workers = child_processes(proc.pid)
        assert workers, "the sweep runs a pool of workers"
    finally:
        proc.kill()
    assert proc.wait() == -signal.SIGKILL
    # The workers notice that their parent is gone (they poll every 0.5 s) and exit.
    assert wait_for(lambda: not workers & live_processes(), timeout_s=30), (
        "orphaned workers still run"
    )
    assert len(out.read_text().splitlines()) == 1 + 4
    assert main(["sweep", str(sweep_path), "--out", str(out), "--jobs", "2", "-q"]) == 0
    assert out.read_bytes() == data


def wait_for(condition, timeout_s: float) -> bool:
    """Poll `condition` until it holds or the (generous) time is up: synchronization, not timing."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _process_table() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process: psutil, else /proc (Linux)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return {
            p.info["pid"]: p.info["ppid"]
            for p in psutil.process_iter(["pid", "ppid", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE
        }
    if not Path("/proc").is_dir():
        pytest.skip("needs psutil or /proc to list processes")
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):  # exited meanwhile
            continue
        if state != "Z":
            table[int(stat.parent.name)] = int(ppid)
    return table


def child_processes(pid: int) -> set[int]:
    return {child for child, parent in _process_table().items() if parent == pid}


def live_processes() -> set[int]:
    return set(_process_table())


# ------------------------------------------------------------------------------ never overwrite


def test_refuses_a_file_that_is_not_a_results_file(reference, tmp_path, capsys):
    out = tmp_path / "results.csv"
    out.write_text("my,own\n1,2\n")
    assert main(["sweep", str(reference[0]), "--out", str(out), "-q"]) == 2
    assert "not a results file of this sweep" in capsys.readouterr().err
    assert out.read_text() == "my,own\n1,2\n"
    assert main(["sweep", str(reference[0]), "--out", str(out), "-q", "-j", "1", "--force"]) == 0
    assert out.read_bytes() == reference[1]


def test_refuses_results_of_another_sweep(reference, tmp_path, capsys):
    out = tmp_path / "results.csv"
    out.write_bytes(reference[1])
    (tmp_path / "results.csv.sweep.json").write_text(
        (Path(reference[0]).parent / "results.csv.sweep.json").read_text()
    )
    changed = write_sweep(tmp_path, {**GRID_AXES, "cluster.num_gpus": [1, 2]}, name="changed.yaml")
    assert main(["sweep", str(changed), "--out", str(out), "-q"]) == 2
    assert "results of another sweep" in capsys.readouterr().err
    assert out.read_bytes() == reference[1]
    # The same sweep (same definition, another file name) resumes it: nothing left to compute.
    same = write_sweep(tmp_path, GRID_AXES, name="same.yaml")
    assert run_sweep(load_sweep(same), out, jobs=1).computed == 0
    assert out.read_bytes() == reference[1]


def test_refuses_a_foreign_file_in_place_of_the_record(reference, tmp_path, capsys):
    (tmp_path / "results.csv.sweep.json").write_text("my notes\n")
    assert main(["sweep", str(reference[0]), "--out", str(tmp_path / "results.csv"), "-q"]) == 2
    assert "not a clustersim sweep record" in capsys.readouterr().err
    assert (tmp_path / "results.csv.sweep.json").read_text() == "my notes\n"


def test_refuses_to_overwrite_its_own_input(tmp_path, capsys):
    sweep = write_sweep(tmp_path, {"training.strategy": ["ddp"]}, name="s.jsonl")
    before = sweep.read_text()
    assert main(["sweep", str(sweep), "--out", str(sweep)]) == 2
    assert "input of this sweep" in capsys.readouterr().err and sweep.read_text() == before


# ------------------------------------------------------------------------------ other engines and formats


def test_dask_local_cluster_gives_the_same_rows(reference, tmp_path):
    pytest.importorskip("distributed")
    sweep_path, data = reference
    out = tmp_path / "results.csv"
    run_sweep(load_sweep(sweep_path), out, jobs=2, dask="local", dask_processes=False)
    assert out.read_bytes() == data


def test_dask_scheduler_address_gives_the_same_rows(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    sweep_path, data = reference
    out = tmp_path / "results.csv"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        run_sweep(load_sweep(sweep_path), out, dask=cluster.scheduler_address)
    assert out.read_bytes() == data


@pytest.mark.parametrize("processes", [False, True])
def test_interrupted_dask_sweep_closes_quietly(reference, tmp_path, monkeypatch, capfd, processes):
    """Ctrl-C during --dask local: rows kept, exit 130, no Dask tracebacks or shutdown warnings."""
    pytest.importorskip("distributed")
    import logging

    from simulator.studies.sweep import runner

    sweep_path, data = reference
    out = tmp_path / "results.csv"
    levels = {
        name: logging.getLogger(name).level for name in ("distributed", "distributed.scheduler")
    }

    def interrupt(self, done, total):
        if done == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBar, "update", interrupt)
    real = runner.dask_session  # the CLI always starts worker processes; threads too, here
    monkeypatch.setattr(
        runner, "dask_session", lambda address, jobs, _: real(address, jobs, processes)
    )
    assert main(["sweep", str(sweep_path), "--out", str(out), "-j", "1", "--dask", "local"]) == 130
    err = capfd.readouterr().err
    assert "interrupted: finished rows are kept" in err
    assert "Traceback" not in err and "WARNING" not in err and "ERROR" not in err, err
    assert len(out.read_text().splitlines()) == 1 + 3
    assert {name: logging.getLogger(name).level for name in levels} == levels  # restored
    monkeypatch.undo()
    assert run_sweep(load_sweep(sweep_path), out, jobs=1).computed == 7 and out.read_bytes() == data


def test_parquet_rows_match_jsonl_and_resume(reference, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    sweep_path, _ = reference
    out = tmp_path / "results.parquet"
    sweep = load_sweep(sweep_path)
    run_sweep(sweep, out, jobs=1)
    run_sweep(sweep, tmp_path / "r.jsonl", jobs=1)
    expected = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert pq.read_table(out).to_pylist() == expected
    first = out.read_bytes()
    assert run_sweep(sweep, out, jobs=1).computed == 0 and out.read_bytes() == first
    assert not (tmp_path / "results.parquet.partial.jsonl").exists()


# ------------------------------------------------------------------------------ terminal, shipped sweep


def test_progress_bar_only_when_enabled(capsys):
    ProgressBar(enabled=False).update(1, 2)
    assert capsys.readouterr().err == ""
    bar = ProgressBar(enabled=True)
    bar.update(3, 3)
    bar.close()
    assert "\r[" in (err := capsys.readouterr().err) and "3/3 points" in err and err.endswith("\n")


def test_no_progress_output_when_stderr_is_not_a_terminal(reference, tmp_path, capsys):
    assert main(["sweep", str(reference[0]), "--out", str(tmp_path / "r.csv"), "-j", "1"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "10 points (8 ok, 2 invalid, 0 error)" in err


def test_shipped_capacity_sweep_is_valid(capsys):
    sweep = load_sweep(SCENARIO_DIR / "sweeps" / "llama2-capacity.yaml")
    points = sweep.points()
    assert len(points) == 2 * 2 * 4 * 7
    hosts = sweep.paths.index("cluster.num_hosts")
    batch = sweep.base["training"]["global_batch_size"]
    assert all(batch % (8 * p[hosts]) == 0 for p in points)  # 8 GPUs per host: no invalid point
    assert main(["sweep", str(SCENARIO_DIR / "sweeps" / "llama2-capacity.yaml"), "--dry-run"]) == 0
    assert "112 points" in capsys.readouterr().out


def test_output_columns_are_the_documented_ones():
    assert list(OUTPUT_COLUMNS) == REQUIRED_COLUMNS


def test_sweep_plot_writes_the_figures_beside_the_results(tmp_path):
    pytest.importorskip("matplotlib")
    sweep = write_sweep(
        tmp_path, {"training.strategy": ["ddp", "zero3"], "cluster.num_gpus": [2, 4]}
    )
    out = tmp_path / "results.csv"
    assert main(["sweep", str(sweep), "--out", str(out), "--jobs", "1", "--quiet", "--plot"]) == 0
    figures = sorted(p.name for p in (tmp_path / "results-plots").iterdir())
    assert figures == ["memory.png", "mfu.png", "step_time.png"]
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "r.jsonl"), "--quiet", "--plot"]) == 2


def test_shipped_sweeps_by_name():
    import pytest as _pytest

    from simulator.core.errors import UserError
    from simulator.studies.sweep.spec import load_sweep, sweep_names, sweep_path

    assert {"llama2-capacity", "goodput-cluster-size", "goodput-checkpoint-interval"} <= set(
        sweep_names()
    )
    assert sweep_path("llama2-capacity").name == "llama2-capacity.yaml"
    assert load_sweep("llama2-capacity").points()
    with _pytest.raises(UserError, match="did you mean 'llama2-capacity'"):
        sweep_path("llama2-capasity")
