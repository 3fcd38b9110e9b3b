"""Test helpers: build scenarios from dicts with round numbers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from simulator.scenario.load import Scenario, scenario_from_dict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A multi-host A100 cluster (8 GPUs per host) big enough for 1,024-GPU cases.
CLUSTER_TOPOLOGY = "a100-hdr-superpod"


def make_scenario(
    model: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    name: str = "test",
) -> Scenario:
    data = {
        "name": name,
        "model": copy.deepcopy(model) if model else {"preset": "gpt3-125m"},
        "training": copy.deepcopy(training) or {},
        "cluster": copy.deepcopy(cluster) or {"topology": "dgx-a100"},
    }
    return scenario_from_dict(data)


def case_param(case: Any) -> Any:
    """A shipped validation case as a pytest parameter: slow ones marked slow, one with a
    stated known deviation a strict xfail (if it starts to pass, the note is stale)."""
    import pytest

    marks = [pytest.mark.slow] if case.slow else []
    if case.known_deviation:
        marks.append(pytest.mark.xfail(reason=case.known_deviation, strict=True))
    return pytest.param(case, id=case.id, marks=marks)


def power_cluster(num_gpus: int, gpus_per_host: int, power: Any) -> Any:
    """A bare H100 ClusterSpec of num_gpus GPUs with the given PowerSpec (no topology built)."""
    from simulator.spec.specs import ClusterSpec
    from simulator.system.hardware import get_gpu

    return ClusterSpec(
        topology_name="t",
        topology_ref="t",
        gpu=get_gpu("h100"),
        num_hosts=-(-num_gpus // gpus_per_host),
        gpus_per_host=gpus_per_host,
        num_gpus=num_gpus,
        power=power,
    )


def cluster_of(num_gpus: int, gpu: str | None = None) -> dict[str, Any]:
    """A cluster section with exactly num_gpus GPUs (hosts of 8 A100s)."""
    hosts = max(1, -(-num_gpus // 8))
    c: dict[str, Any] = {
        "topology": "dgx-a100" if hosts == 1 else CLUSTER_TOPOLOGY,
        "num_hosts": hosts,
        "num_gpus": num_gpus,
    }
    if gpu:
        c["gpu"] = gpu
    return c


IMPORT_FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "import"


def import_fixture(name: str) -> Path:
    """A real framework config by file name: shipped with clustersim (simulator/data/configs,
    sources and licenses in its README) or, where its license does not let it ship, kept for
    the tests alone (tests/fixtures/import)."""
    from simulator.scenario.importers import configs_dir

    shipped = configs_dir() / name
    return shipped if shipped.is_file() else IMPORT_FIXTURES / name
