"""pytester (for the clustersim pytest plugin test), and a calibration profile for the tests that
need one."""

import pytest

from simulator.core.resources import data_dir
from simulator.studies.calibrate.collectives import NcclInput
from simulator.studies.calibrate.profile import write_profile
from simulator.studies.calibrate.study import calibrate

pytest_plugins = ["pytester"]

# A profile fitted to the shipped Azure ND A100 v4 table (without leave-one-out), for tests that need one.
AZURE_A100 = data_dir("calibration") / "azure-nd-a100-v4-all_reduce_perf.txt"


@pytest.fixture(scope="session")
def a100_result():
    return calibrate([NcclInput(path=str(AZURE_A100), topology="dgx-a100")], loo=False)


@pytest.fixture(scope="session")
def a100_profile(a100_result, tmp_path_factory):
    return write_profile(a100_result, tmp_path_factory.mktemp("profile") / "a100.yaml")
