"""One version: what pip records for the installed package is what `clustersim --version` prints."""

from __future__ import annotations

from importlib.metadata import version

from simulator import __version__
from simulator.cli.main import main


def test_installed_metadata_and_cli_agree(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"clustersim {version('clustersim')}"
    assert version("clustersim") == __version__
