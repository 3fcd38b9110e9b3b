"""Outputs that cannot be written: every option that writes a file or a folder, into a missing
folder, a read-only folder, under a regular file, onto a folder (or a file where a folder is
wanted), onto a full device (/dev/full), and standard output to a full device or a closed pipe.
Each is a clean answer: exit 2, the option and the path named, no traceback; refused before any
work is done where a check can tell; a sweep that fails mid-way keeps its rows and resumes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import output
from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.resources import data_dir
from simulator.studies.sweep.results import ResultsStore
from tests.helpers import PROJECT_ROOT

SCENARIO = "llama2-7b-zero3-8xa100"
NCCL = f"{data_dir('calibration') / 'azure-nd-a100-v4-all_reduce_perf.txt'}:dgx-a100"
FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")
# A sweep of three small points without the goodput Monte Carlo: under a second.
TINY_SWEEP = {
    "base": {
        "name": "tiny",
        "model": {"preset": "gpt3-125m"},
        "training": {"micro_batch_size": 1, "seq_len": 512, "global_batch_size": 16},
        "cluster": {"topology": "dgx-a100"},
        "reliability": {"enabled": False},
    },
    "mode": "grid",
    "axes": {"cluster.num_gpus": [1, 2, 4]},
}


def tiny_sweep(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(TINY_SWEEP), encoding="utf-8")  # JSON is YAML
    return path


# option -> (file name it writes, argv writing it to TARGET). Options writing a file:
FILE_WRITERS = {
    "run --trace": ("t.json", lambda tmp, t: ["run", SCENARIO, "--no-goodput", "--trace", t]),
    "run --json-out": ("r.json", lambda tmp, t: ["run", SCENARIO, "--no-goodput", "--json-out", t]),
    "sweep --out": (
        "r.csv",
        lambda tmp, t: ["sweep", str(tiny_sweep(tmp)), "--out", t, "-j", "1", "-q"],
    ),
    "calibrate --out": (
        "p.yaml",
        lambda tmp, t: ["calibrate", "--nccl-tests", NCCL, "--no-loo", "--out", t],
    ),
    "calibrate --plot": (
        "fit.png",
        lambda tmp, t: [
            "calibrate",
            "--nccl-tests",
            NCCL,
            "--no-loo",
            "--out",
            str(tmp / "p.yaml"),
            "--plot",
            t,
        ],
    ),
    "accuracy --plot": ("acc.png", lambda tmp, t: ["accuracy", "--plot", t]),
    "topology --picture": (
        "t.png",
        lambda tmp, t: ["topology", "show", "dgx-a100", "--picture", t],
    ),
}
# Options writing into a folder (created with its parents when missing):
DIR_WRITERS = {
    "plot --out": lambda tmp, t: ["plot", str(tmp / "results.csv"), "--out", t],
    "sweep --plot": lambda tmp, t: [
        "sweep",
        str(tiny_sweep(tmp)),
        "--out",
        str(tmp / "r.csv"),
        "--plot",
        t,
    ],
    "regress --golden": lambda tmp, t: ["regress", str(tmp), "--golden", t, "--update"],
}
# Where each command's work starts: a refusal must come before it.
WORK = (
    "simulator.studies.simulate.simulate",
    "simulator.studies.sweep.runner.run_sweep",
    "simulator.studies.calibrate.study.calibrate",
    "simulator.report.plots.plot_results",
    "simulator.cli.commands.regress.run_regression",
    "simulator.studies.accuracy.run_cases",
    "simulator.cli.commands.topology.load_topology",
)


@pytest.fixture
def no_work(monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    for target in WORK:
        monkeypatch.setattr(target, started)


def refused(capsys, argv: list[str], option: str, *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{option}: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def option_of(name: str) -> str:
    return name.split()[1]


# ------------------------------------------------------------------ refused before any work


# A sweep creates the folders of its results file (as before): only a path under a file is refused.
@pytest.mark.parametrize("name", [n for n in FILE_WRITERS if n != "sweep --out"])
def test_a_file_in_a_missing_folder(name, tmp_path, capsys, no_work):
    file, argv = FILE_WRITERS[name]
    target = tmp_path / "missing" / file
    refused(
        capsys,
        argv(tmp_path, str(target)),
        option_of(name),
        "does not exist",
        str(tmp_path / "missing"),
    )


@pytest.mark.parametrize("name", [*FILE_WRITERS, *DIR_WRITERS])
def test_a_path_under_a_regular_file(name, tmp_path, capsys, no_work):
    regular = tmp_path / "notes.txt"
    regular.write_text("mine\n", encoding="utf-8")
    file, argv = FILE_WRITERS[name] if name in FILE_WRITERS else ("sub", DIR_WRITERS[name])
    refused(
        capsys,
        argv(tmp_path, str(regular / file)),
        option_of(name),
        f"{regular} is a file, not a folder",
    )
    assert regular.read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize("name", FILE_WRITERS)
def test_a_folder_where_a_file_is_wanted(name, tmp_path, capsys, no_work):
    folder = tmp_path / "figures"
    folder.mkdir()
    refused(
        capsys,
        FILE_WRITERS[name][1](tmp_path, str(folder)),
        option_of(name),
        f"{folder} is a directory",
    )


@pytest.mark.parametrize("name", DIR_WRITERS)
def test_a_file_where_a_folder_is_wanted(name, tmp_path, capsys, no_work):
    regular = tmp_path / "plots"
    regular.write_text("mine\n", encoding="utf-8")
    refused(
        capsys,
        DIR_WRITERS[name](tmp_path, str(regular)),
        option_of(name),
        f"{regular} is a file, not a folder",
    )
    assert regular.read_text(encoding="utf-8") == "mine\n"


def _mode_protects(folder: Path) -> bool:
    """Whether a folder's mode stops this process (root writes whatever the mode says)."""
    try:
        (folder / "probe").write_text("", encoding="utf-8")
    except PermissionError:
        return True
    (folder / "probe").unlink()
    return False


@pytest.mark.parametrize("name", [*FILE_WRITERS, *DIR_WRITERS])
def test_a_read_only_folder(name, tmp_path, capsys, no_work):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if not _mode_protects(folder):
            pytest.skip("running as root: a folder's mode does not stop it (see the next test)")
        file, argv = FILE_WRITERS[name] if name in FILE_WRITERS else ("sub", DIR_WRITERS[name])
        refused(
            capsys,
            argv(tmp_path, str(folder / file)),
            option_of(name),
            f"cannot write in the folder {folder}",
        )
    finally:
        folder.chmod(0o755)


def test_a_folder_where_no_file_can_be_created_even_as_root(tmp_path, monkeypatch, capsys, no_work):
    """os.access says yes to root whatever the mode: the check creates a file to be sure, and a
    read-only file system (EROFS) refuses it as it would refuse anyone."""

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(output.tempfile, "mkstemp", read_only)
    refused(
        capsys,
        ["run", SCENARIO, "--trace", str(tmp_path / "t.json")],
        "--trace",
        f"cannot write in the folder {tmp_path}",
        os.strerror(errno.EROFS),
    )
    assert not (tmp_path / "t.json").exists()


def test_the_check_leaves_no_file_behind(tmp_path):
    output.check_output("--trace", tmp_path / "t.json")
    output.check_output_dir("--out", tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []  # nor creates the folder: that is the command's work


def test_an_input_is_never_overwritten(tmp_path, capsys, no_work):
    scenario = tmp_path / "mine.yaml"
    scenario.write_text("my scenario\n", encoding="utf-8")
    refused(
        capsys,
        ["run", str(scenario), "--trace", str(scenario)],
        "--trace",
        "refusing to overwrite the input",
    )
    refused(
        capsys,
        [
            "run",
            SCENARIO,
            "--trace",
            str(tmp_path / "a.json"),
            "--json-out",
            str(tmp_path / "a.json"),
        ],
        "--trace",
        "is also --json-out",
    )
    assert scenario.read_text(encoding="utf-8") == "my scenario\n"


# ----------------------------------------------------------- failing at the moment of writing


@needs_dev_full
@pytest.mark.parametrize("option", ["--trace", "--json-out"])
def test_run_outputs_onto_a_full_device(option, capsys):
    refused(
        capsys,
        ["run", SCENARIO, "--no-goodput", option, str(FULL)],
        option,
        f"cannot write {FULL}: {os.strerror(errno.ENOSPC)}",
        "free some space",
    )


@needs_dev_full
def test_plot_figures_onto_a_full_device(tmp_path, capsys):
    """A figure's file is a link to /dev/full: savefig fails on write; the link is left as it was."""
    trace = tmp_path / "trace.json"
    memory = [
        {"ph": "C", "pid": 0, "name": "memory", "ts": ts, "args": {"GB": gb}}
        for ts, gb in ((0, 1), (5, 2))
    ]
    busy = {"ph": "X", "pid": 0, "tid": 0, "name": "gemm", "ts": 0, "dur": 5}
    trace.write_text(json.dumps({"traceEvents": [*memory, busy]}), encoding="utf-8")
    out = tmp_path / "plots"
    out.mkdir()
    (out / "memory_timeline.png").symlink_to(FULL)
    refused(
        capsys,
        ["plot", "--trace", str(trace), "--out", str(out)],
        "--out",
        f"cannot write {out / 'memory_timeline.png'}",
        os.strerror(errno.ENOSPC),
    )
    assert (out / "memory_timeline.png").is_symlink()


@needs_dev_full
def test_calibrate_profile_onto_a_full_device(tmp_path, capsys):
    profile = tmp_path / "p.yaml"
    profile.symlink_to(FULL)
    refused(
        capsys,
        ["calibrate", "--nccl-tests", NCCL, "--no-loo", "--out", str(profile), "--force"],
        "--out",
        os.strerror(errno.ENOSPC),
    )
    assert profile.is_symlink()  # the device is not replaced by a file, nor removed


def test_regress_update_onto_a_full_disk(tmp_path, monkeypatch, capsys):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "s.yaml").write_text(json.dumps(TINY_SWEEP["base"]), encoding="utf-8")
    golden = tmp_path / "golden"
    real = Path.write_text

    def full(self, *args, **kwargs):
        if golden in self.parents:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    refused(
        capsys,
        ["regress", str(scenarios), "--golden", str(golden), "--update"],
        "--golden",
        os.strerror(errno.ENOSPC),
    )


class _FillsUp:
    """The results file's handle on a disk that is full after `rows` more rows."""

    def __init__(self, fh, rows: int):
        self.fh, self.left = fh, rows

    def write(self, text: str) -> int:
        if self.left == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.left -= 1
        return self.fh.write(text)

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def test_a_sweep_on_a_disk_that_fills_up_keeps_its_rows_and_resumes(tmp_path, monkeypatch, capsys):
    sweep = tiny_sweep(tmp_path)
    reference = tmp_path / "reference.csv"
    assert main(["sweep", str(sweep), "--out", str(reference), "-j", "1", "-q"]) == 0
    opened = ResultsStore.open

    def open_on_a_filling_disk(self, *args, **kwargs):
        done = opened(self, *args, **kwargs)
        self._fh = _FillsUp(self._fh, rows=2)
        return done

    out = tmp_path / "results.csv"
    with monkeypatch.context() as patch:
        patch.setattr(ResultsStore, "open", open_on_a_filling_disk)
        err = refused(
            capsys,
            ["sweep", str(sweep), "--out", str(out), "-j", "1", "-q"],
            "--out",
            f"cannot write {out}: {os.strerror(errno.ENOSPC)}",
            "the 2 finished row(s) are kept",
            "run the same command again to resume",
        )
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 2, (
        err
    )  # the header and two rows
    assert main(["sweep", str(sweep), "--out", str(out), "-j", "1"]) == 0
    assert "2 read back from a previous run" in capsys.readouterr().err
    assert out.read_bytes() == reference.read_bytes()


def test_the_last_rewrite_of_a_sweep_failing_keeps_every_row(tmp_path, monkeypatch, capsys):
    from simulator.studies.sweep import results

    sweep = tiny_sweep(tmp_path)
    out = tmp_path / "results.csv"
    real = results._atomic_write

    def full_at_the_end(path, text=None, writer=None):
        if (
            path == out and text and text.count("\n") == 4
        ):  # the header and all three rows, in order
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, text, writer)

    with monkeypatch.context() as patch:
        patch.setattr(results, "_atomic_write", full_at_the_end)
        refused(
            capsys,
            ["sweep", str(sweep), "--out", str(out), "-j", "1", "-q"],
            "--out",
            "the 3 finished row(s) are kept",
        )
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    assert main(["sweep", str(sweep), "--out", str(out), "-j", "1"]) == 0
    assert "3 read back" in capsys.readouterr().err


# --------------------------------------------------------------------------- standard output


class _FullStream:
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass


def test_standard_output_that_cannot_be_written_in_process(monkeypatch, capsys):
    stream = _FullStream()
    monkeypatch.setattr(sys, "stdout", stream)
    assert main(["scenarios"]) == 2
    assert sys.stdout is stream  # given back as it was
    err = capsys.readouterr().err
    assert err == f"clustersim: cannot write to standard output: {os.strerror(errno.ENOSPC)}\n"


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        check=False,
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        **kwargs,
    )


@needs_dev_full
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args",
    [
        ["scenarios"],
        ["run", SCENARIO, "--no-goodput", "--json"],
        ["--help"],
        ["scenarios", SCENARIO],
    ],
)
def test_standard_output_to_a_full_device(args):
    """The report is buffered: it fails when flushed, in main, not at the interpreter's exit."""
    with FULL.open("w") as full:
        done = cli(args, stdout=full)
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr == f"clustersim: cannot write to standard output: {os.strerror(errno.ENOSPC)}\n"
    )


def test_standard_output_to_a_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)  # nobody reads: the first write is EPIPE
    try:
        done = cli(["scenarios"], stdout=write)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (0, "")


def test_write_text_names_the_option_and_removes_only_the_file_it_started(tmp_path, monkeypatch):
    from simulator.core.outputs import write_text

    folder = tmp_path / "x.json"
    folder.mkdir()
    with pytest.raises(
        UserError, match=f"^--json-out: cannot write {folder}: {os.strerror(errno.EISDIR)}"
    ):
        write_text("--json-out", folder, "{}")
    real = Path.write_text

    def torn(self, text, **kwargs):  # half written, then the disk is full
        real(self, text[: len(text) // 2], **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", torn)
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    real(old, "before\n")
    for path in (new, old):
        with pytest.raises(UserError, match=os.strerror(errno.ENOSPC)):
            write_text("--trace", path, "{}" * 10)
    assert not new.exists() and old.exists()  # no torn new file; the user's path is not removed
