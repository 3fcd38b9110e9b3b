"""matplotlib: a dependency (plots are a main output), imported lazily by one helper; if it is
missing all the same, every command that draws says how to install it (exit 2, no traceback),
before any work is done."""

from __future__ import annotations

import ast
import json
import sys
import tomllib
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.report import plots
from simulator.report.figures import style
from tests.helpers import PROJECT_ROOT

NCCL = PROJECT_ROOT / "simulator" / "data" / "calibration" / "azure-nd-a100-v4-all_reduce_perf.txt"
HINT = "plots need matplotlib: matplotlib is not installed (pip install matplotlib)"


@pytest.fixture
def no_matplotlib(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "matplotlib", None
    )  # `import matplotlib` fails, as if not installed


@pytest.fixture
def no_work(monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the work started before matplotlib was checked")

    for target in (
        "simulator.studies.sweep.runner.run_sweep",
        "simulator.studies.calibrate.study.calibrate",
        "simulator.report.plots.read_results",
    ):
        monkeypatch.setattr(target, started)


@pytest.mark.parametrize(
    "module", ["matplotlib", "matplotlib.figure", "matplotlib.patches", "matplotlib.lines"]
)
def test_the_helper_says_how_to_install_it(module, no_matplotlib):
    with pytest.raises(UserError, match="pip install matplotlib") as info:
        plots.matplotlib_module(module)
    assert info.value.problems[0].message.startswith("plots need matplotlib")
    with pytest.raises(UserError, match="pip install matplotlib"):
        plots.figure_class()


def test_a_broken_matplotlib_is_told_apart_from_a_missing_one(monkeypatch):
    def broken(name):
        raise ImportError("No module named 'kiwisolver'", name="kiwisolver")

    monkeypatch.setattr(style.importlib, "import_module", broken)
    with pytest.raises(
        UserError, match="matplotlib cannot be imported: No module named 'kiwisolver'"
    ):
        plots.matplotlib_module("matplotlib.figure")


def test_every_figure_module_imports_matplotlib_through_the_helper():
    """A `from matplotlib... import` in a figure would be a ModuleNotFoundError, not the hint."""
    strays = []
    for path in (PROJECT_ROOT / "simulator" / "report").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "matplotlib" for n in names):
                strays.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert strays == ["simulator/report/figures/style.py:" + str(_helper_import_line())]


def _helper_import_line() -> int:
    source = Path(style.__file__).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(source) if line.startswith("def matplotlib_module"))
    return (
        next(i for i in range(start, len(source)) if source[i].strip() == "import matplotlib") + 1
    )


def test_plot_without_matplotlib(tmp_path, capsys, no_matplotlib, no_work):
    assert main(["plot", str(tmp_path / "results.csv"), "--out", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert err == f"plot: {HINT}\n"


def test_sweep_plot_without_matplotlib_is_refused_before_the_sweep(
    tmp_path, capsys, no_matplotlib, no_work
):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        json.dumps(
            {
                "base": {"model": {"preset": "gpt3-125m"}, "cluster": {"topology": "dgx-a100"}},
                "axes": {"cluster.num_gpus": [1, 2]},
            }
        ),
        encoding="utf-8",
    )
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "r.csv"), "--plot"]) == 2
    assert capsys.readouterr().err == f"--plot: {HINT}\n"
    assert not (tmp_path / "r.csv").exists()


def test_calibrate_plot_without_matplotlib_is_refused_before_the_fit(
    tmp_path, capsys, no_matplotlib, no_work
):
    assert (
        main(
            [
                "calibrate",
                "--nccl-tests",
                f"{NCCL}:dgx-a100",
                "--out",
                str(tmp_path / "p.yaml"),
                "--plot",
                str(tmp_path / "fit.png"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == f"--plot: {HINT}\n"
    assert not (tmp_path / "p.yaml").exists()


def test_matplotlib_is_installed_with_clustersim():
    """The README's install (`pip install -e .`) brings it; the `plot` extra stays, so that
    `pip install 'clustersim[plot]'` still works."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]
    assert any(d.replace(" ", "").startswith("matplotlib") for d in project["dependencies"])
    assert "plot" in project["optional-dependencies"]
