"""What the data cannot determine stays at its default, and constants never cross GPUs.

The issue's probe: a 2x8 H100 all_reduce_perf file in which NVLS did not run (written here by the
model with NCCL_NVLS_ENABLE=0 from the built-in constants) made the fit turn NVLS off by moving
its constants to where the model stops choosing it, and called that fitted; the profile then cut a
single-node DGX H100 all-reduce from 459 to ~369 GB/s. Expected values come from the constants the
files were written with, never from the fit."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.yamlio import dump_yaml, read_yaml
from simulator.scenario.calibration import load_profile
from simulator.scenario.load import scenario_from_dict
from simulator.studies.calibrate.collectives import NcclInput, parse_inputs
from simulator.studies.calibrate.fit import Dataset, fit_determined, select
from simulator.studies.calibrate.gpus import device_gpus
from simulator.studies.calibrate.profile import write_profile
from simulator.studies.calibrate.study import calibrate
from simulator.system.comm.calibration import NCCL_CALIBRATION, busbw_factor
from simulator.system.comm.cost import CommContext
from simulator.system.knobs import with_comm
from simulator.system.topology.loader import load_topology
from tests.conftest import AZURE_A100
from tests.studies.calibrate.nccl_format import dgx_ranks, footer, header, row, timing

H100 = "NVIDIA H100 80GB HBM3"
NVLS_EFF = "nccl.hopper.nvls_efficiency"
NOT_IDENTIFIED = "not identified by the data (default kept)"


def _write(path, hosts: int, cal, nvls: bool, topology: str = "dgx-h100", gpu: str = H100) -> None:
    """all_reduce_perf output on `hosts` 8-GPU hosts, 8 B to 8 GiB, timed by the model under `cal`."""
    ctx = CommContext(load_topology(topology, hosts if hosts > 1 else None), cal, nvls=nvls)
    ranks = dgx_ranks(hosts, gpu=gpu)
    lines = ["# Collective test starting: all_reduce_perf", *header(8, 8, 2**33, ranks)]
    for k in range(3, 34):
        t = ctx.cost_together("all_reduce", (tuple(range(8 * hosts)),), 2**k, "auto").time_s
        tm = timing(2**k, t, busbw_factor("all_reduce", 8 * hosts))
        lines.append(row(2**k, 2**k // 4, "float", "sum", -1, tm, tm))
    path.write_text("\n".join([*lines, *footer(1.0)]) + "\n")


def _single_node_busbw(comm) -> float:
    """8 GiB all-reduce bus bandwidth on one DGX H100 (NVLS runs there)."""
    return (
        CommContext(load_topology("dgx-h100"), comm)
        .cost("all_reduce", tuple(range(8)), 2**33)
        .busbw_Bps
    )


@pytest.mark.timeout(60)
def test_nvls_the_data_do_not_identify_keeps_its_default_and_single_node_is_unchanged(tmp_path):
    path = tmp_path / "all_reduce_perf_2x8.txt"
    _write(
        path, 2, NCCL_CALIBRATION, nvls=False
    )  # NVLS did not run; every other constant is the default
    result = calibrate([NcclInput(path=str(path), topology="dgx-h100")], loo=False)
    (part,) = result.parts
    held = dict(part.selection.held)
    assert NVLS_EFF not in part.selection.chosen and NOT_IDENTIFIED in held[NVLS_EFF]
    for name in ("nccl.nvls_round_latency", "nccl.nvls_tree.Simple.base_latency"):
        assert name not in part.selection.chosen
    assert any("nvls: false" in n for n in result.notes)  # the remedy is named
    profile = load_profile(write_profile(result, tmp_path / "h100.yaml"))
    assert NVLS_EFF not in dict(profile.values) and profile.gpus == ("h100-sxm-80gb",)
    rows = {c["name"]: c for c in read_yaml(tmp_path / "h100.yaml")["constants"]}
    assert (
        rows[NVLS_EFF]["status"] == "default" and rows[NVLS_EFF]["value"] == 0.85
    )  # knobs.py's default
    # Nothing the data identify touches one host's NVLS all-reduce: the built-in figure stands
    # (not the ring's ~369 GB/s that turning NVLS off gave).
    assert _single_node_busbw(profile.comm) == pytest.approx(
        _single_node_busbw(NCCL_CALIBRATION), rel=1e-9
    )


@pytest.mark.timeout(60)
def test_the_same_file_declared_without_nvls_recovers_its_constants(tmp_path):
    truth = {"nccl.hopper.nvlink_efficiency": 0.75}
    path = tmp_path / "all_reduce_perf_2x8.txt"
    _write(path, 2, with_comm(NCCL_CALIBRATION, truth), nvls=False)
    (tmp_path / "m.yaml").write_text(
        dump_yaml(
            {
                "nccl_tests": [
                    {"file": path.name, "topology": "dgx-h100", "nvls": False, "gpu": "h100"}
                ]
            }
        )
    )
    (part,) = calibrate(parse_inputs([str(tmp_path / "m.yaml")], None), loo=False).parts
    # One link kind carries the data: the bandwidth scale stands for it (the efficiency is held,
    # not separable from it) and the NVLink bandwidth reached is what the file was written with.
    achieved = part.values["nccl.hopper.nvlink_efficiency"] * part.values["nccl.bandwidth_scale"]
    assert achieved == pytest.approx(0.75, rel=0.02)
    assert NVLS_EFF not in part.selection.chosen


@pytest.mark.timeout(60)
def test_nvls_that_ran_is_still_fitted(tmp_path):
    path = tmp_path / "all_reduce_perf_2x8.txt"
    _write(path, 2, with_comm(NCCL_CALIBRATION, {NVLS_EFF: 0.75}), nvls=True)
    (part,) = calibrate([NcclInput(path=str(path), topology="dgx-h100")], loo=False).parts
    assert NVLS_EFF in part.selection.chosen
    assert part.values[NVLS_EFF] == pytest.approx(0.75, rel=0.02)


E2E, MEM = "compute.toy.end_to_end", "compute.toy.memory"
DEFAULTS = {E2E: 0.75, MEM: 0.8}


def _toy(predict, measured) -> Dataset:
    n = len(measured)
    return Dataset(
        ids=tuple(f"r{i}" for i in range(n)),
        groups=tuple(f"r{i}" for i in range(n)),
        measured=np.asarray(measured, float),
        predict=predict,
    )


def test_a_constant_pushed_to_its_bound_keeps_its_default():
    # t = 1 / e2e measured 1 / 1.05 would need e2e = 1.05: the fit stops at the bound 1.0, which the
    # data do not identify (they say only "1.0 or more"). memory: t = a / memory, identified (truth 0.5).
    a = np.array([1.0, 2.0, 3.0])
    defaults = {E2E: 0.97, MEM: 0.8}
    data = _toy(
        lambda v: np.concatenate([[1.0 / v[E2E]] * 3, a / v[MEM]]), [1 / 1.05] * 3 + list(a / 0.5)
    )
    selection, values, _ = fit_determined(data, select(data, [E2E, MEM], defaults), defaults, None)
    assert selection.chosen == (MEM,) and values[MEM] == pytest.approx(0.5, rel=1e-4)
    assert values[E2E] == defaults[E2E]
    assert dict(selection.held)[E2E].startswith(
        f"at its bound; {NOT_IDENTIFIED}: the fit put it at 1"
    )


def test_a_constant_the_data_bound_from_one_side_only_keeps_its_default():
    # t = max(1, 0.9 / e2e): any e2e >= 0.9 gives the measured 1.0 (a kink: below 0.9 it is the
    # bottleneck, above it nothing depends on it). The fit moves it past 0.9 and the loss is flat.
    a = np.array([1.0, 2.0, 3.0])
    data = _toy(
        lambda v: np.concatenate([[max(1.0, 0.9 / v[E2E])] * 3, a / v[MEM]]),
        [1.0] * 3 + list(a / 0.5),
    )
    selection, values, _ = fit_determined(data, select(data, [E2E, MEM], DEFAULTS), DEFAULTS, None)
    assert values[E2E] == DEFAULTS[E2E] and E2E not in selection.chosen
    assert "moving it up moves no prediction by 0.1%" in dict(selection.held)[E2E]
    assert values[MEM] == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize(
    "device, gpus",
    [
        ("NVIDIA A100-SXM4-80GB", ("a100-80gb",)),
        ("A100-SXM4-40GB", ("a100-40gb",)),
        ("A100", ("a100-40gb", "a100-80gb")),  # the name does not tell them apart
        (H100, ("h100-sxm-80gb",)),
        ("NVIDIA H100 PCIe", ("h100-pcie-80gb",)),
        ("NVIDIA H100 NVL", ("h100-nvl-94gb",)),
        ("NVIDIA H200", ("h200-141gb",)),
        ("Tesla V100-SXM2-32GB", ("v100-32gb",)),
        ("NVIDIA GB200", ("gb200-186gb",)),
        ("AMD Instinct MI300X", ("mi300x-192gb",)),
        ("NVIDIA L40S", None),
    ],
)
def test_device_names_as_nccl_tests_prints_them(device, gpus):
    assert device_gpus(device) == gpus


def test_data_from_another_gpu_is_refused(tmp_path, capsys):
    path = tmp_path / "all_reduce_perf.txt"
    _write(path, 1, NCCL_CALIBRATION, nvls=True)  # 8x H100 output
    argv = ["calibrate", "--nccl-tests", f"{path}:dgx-a100", "--out", str(tmp_path / "p.yaml")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        str(path) in err
        and f"the data ran on '{H100}' (h100-sxm-80gb)" in err
        and "has a100-80gb" in err
    )
    assert "Traceback" not in err and not (tmp_path / "p.yaml").exists()
    (tmp_path / "m.yaml").write_text(
        dump_yaml({"nccl_tests": [{"file": path.name, "topology": "dgx-h100", "gpu": "h200"}]})
    )
    with pytest.raises(
        UserError, match="the data ran on h200-141gb, but topology dgx-h100 has h100-sxm-80gb"
    ):
        calibrate(parse_inputs([str(tmp_path / "m.yaml")], None), loo=False)


def test_an_unknown_device_name_is_noted_not_refused(tmp_path):
    path = tmp_path / "all_reduce_perf.txt"
    _write(path, 1, NCCL_CALIBRATION, nvls=True, gpu="Some Future GPU")
    result = calibrate([NcclInput(path=str(path), topology="dgx-h100")], loo=False)
    assert any("'Some Future GPU' is not one clustersim's catalog names" in n for n in result.notes)


SCENARIO = {
    "model": {"preset": "gpt3-125m"},
    "training": {"strategy": "ddp", "micro_batch_size": 2, "seq_len": 1024},
}


def test_a_profile_applies_to_the_gpu_it_was_fitted_on_alone(a100_profile, tmp_path, capsys):
    assert load_profile(a100_profile).gpus == ("a100-80gb",)  # fitted on dgx-a100's GPU
    scenario_from_dict(
        {**SCENARIO, "cluster": {"topology": "dgx-a100"}, "calibration": str(a100_profile)}
    )
    with pytest.raises(UserError) as err:
        scenario_from_dict(
            {**SCENARIO, "cluster": {"topology": "dgx-h100"}, "calibration": str(a100_profile)}
        )
    assert (
        f"calibration: profile {a100_profile} was fitted on a100-80gb, not on h100-sxm-80gb"
        in err.value.render()
    )
    assert (
        main(
            [
                "collective",
                "--topology",
                "dgx-h100",
                "--sizes",
                "1M",
                "--calibration",
                str(a100_profile),
            ]
        )
        == 2
    )
    assert "--calibration: profile" in capsys.readouterr().err


def test_a_profile_that_names_no_gpu_is_refused(a100_profile, tmp_path):
    data = read_yaml(a100_profile)
    data.pop("gpus")
    (tmp_path / "old.yaml").write_text(dump_yaml(data))
    with pytest.raises(
        UserError, match="gpus: the profile does not say which GPU it was fitted on"
    ):
        load_profile(tmp_path / "old.yaml")


def test_the_shipped_a100_table_still_fits_its_link_bandwidth(a100_result):
    # The Azure ND A100 v4 table is NVLink-bound at large sizes: its bandwidth stays identified, as
    # the bandwidth scale (NVLink is the one link kind it covers, so its efficiency is not separable).
    (part,) = a100_result.parts
    assert "nccl.bandwidth_scale" in part.selection.chosen
    assert (
        "not separable from nccl.bandwidth_scale"
        in dict(part.selection.held)["nccl.ampere.nvlink_efficiency"]
    )
    assert str(AZURE_A100) in {i.path for i in a100_result.inputs}
