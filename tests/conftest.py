"""pytester (for the clustersim pytest plugin test)."""

pytest_plugins = ["pytester"]

import pytest  # noqa: E402

from simulator.core.resources import data_dir  # noqa: E402
from simulator.studies.calibrate.collectives import NcclInput  # noqa: E402
from simulator.studies.calibrate.profile import write_profile  # noqa: E402
from simulator.studies.calibrate.study import calibrate  # noqa: E402

# A profile fitted to the shipped Azure ND A100 v4 table (without leave-one-out), for tests that need one.
AZURE_A100 = data_dir("calibration") / "azure-nd-a100-v4-all_reduce_perf.txt"


@pytest.fixture(scope="session")
def a100_result():
    return calibrate([NcclInput(path=str(AZURE_A100), topology="dgx-a100")], loo=False)


@pytest.fixture(scope="session")
def a100_profile(a100_result, tmp_path_factory):
    return write_profile(a100_result, tmp_path_factory.mktemp("profile") / "a100.yaml")
