"""pytest plugin: predicted-timing regressions in a user's own test suite.

Enable it in the top-level conftest.py with `pytest_plugins = ["simulator.studies.pytest_plugin"]`
(or `pytest -p simulator.studies.pytest_plugin`), then:

    def test_my_cluster(clustersim_prediction):
        clustersim_prediction("scenarios/my-cluster.yaml", "golden/my-cluster.json")

`pytest --clustersim-update` (or CLUSTERSIM_UPDATE_GOLDEN=1) writes the golden files instead.
Without the plugin, `simulator.studies.regress.assert_prediction` does the same in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.studies.regress import DEFAULT_RTOL, assert_prediction


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("clustersim").addoption(
        "--clustersim-update",
        action="store_true",
        default=False,
        help="rewrite clustersim golden files instead of comparing against them",
    )


@pytest.fixture
def clustersim_prediction(request: pytest.FixtureRequest) -> Callable[..., None]:
    """check(scenario, golden, rtol=1e-6): fail with a diff table when the predictions moved.

    Relative paths are taken from the test file's directory."""
    update = True if request.config.getoption("--clustersim-update") else None
    base = Path(request.path).parent

    def check(scenario: str | Path, golden: str | Path, rtol: float = DEFAULT_RTOL) -> None:
        assert_prediction(base / scenario, base / golden, rtol=rtol, update=update)

    return check
