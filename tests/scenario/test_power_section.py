"""`cluster.power` and a custom GPU's `power`: units, defaults and overrides resolved into
ClusterSpec.power and the GPU's GPUPower (figures: system/hardware/power.py)."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.system.hardware.power import DEFAULT_PUE
from tests.helpers import make_scenario

CUSTOM = {
    "name": "my-gpu",
    "memory": "80 GiB",
    "hbm_bandwidth": "2 TB/s",
    "peak_flops": {"bf16": "300 TFLOP/s"},
}


def test_defaults_are_the_catalog_figures_and_pue():
    s = make_scenario(cluster={"topology": "dgx-a100"})
    p = s.cluster.gpu.power
    # A100 SXM4: 400 W; compute-bound at the TDP, memory 60%, comm 30%, waiting 10%.
    assert (p.tdp_w, p.compute_w, p.memory_w, p.comm_w, p.idle_w) == (400, 400, 240, 120, 40)
    assert s.cluster.power.pue == DEFAULT_PUE and s.cluster.power.host_w is None


def test_overrides_resolve_into_the_specs():
    s = make_scenario(
        cluster={
            "topology": "dgx-a100",
            "power": {
                "host": "2.5 kW",
                "pue": 1.3,
                "electricity_usd_per_kwh": 0.08,
                "grid_kg_co2_per_kwh": 0.4,
                "gpu": {"idle": "55 W", "comm": "150 W"},
            },
        }
    )
    c = s.cluster
    assert (c.power.host_w, c.power.pue) == (2500.0, 1.3)
    assert (c.power.electricity_usd_per_kwh, c.power.grid_kg_co2_per_kwh) == (0.08, 0.4)
    # the catalog's others kept: A100 400 W TDP, memory-bound 240 W
    assert (c.gpu.power.idle_w, c.gpu.power.comm_w, c.gpu.power.memory_w) == (55, 150, 240)


def test_custom_gpu_power_from_its_tdp():
    s = make_scenario(
        cluster={"topology": "dgx-a100", "gpu": {**CUSTOM, "power": {"tdp": "500 W"}}}
    )
    p = s.cluster.gpu.power
    assert (p.compute_w, p.memory_w, p.comm_w, p.idle_w) == (500, 300, 150, 50)
    assert make_scenario(cluster={"topology": "dgx-a100", "gpu": CUSTOM}).cluster.gpu.power is None


def test_power_needs_units_and_a_tdp_where_there_is_no_base():
    with pytest.raises(UserError) as info:
        make_scenario(cluster={"topology": "dgx-a100", "power": {"host": 2500}})
    assert "cluster.power.host" in {p.path for p in info.value.problems}
    with pytest.raises(UserError) as info:
        make_scenario(
            cluster={"topology": "dgx-a100", "gpu": {**CUSTOM, "power": {"idle": "50 W"}}}
        )
    assert "cluster.gpu.power" in {p.path for p in info.value.problems}
