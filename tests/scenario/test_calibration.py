"""Calibration profiles: written, read back exactly, refused when wrong, and applied to a scenario
that names one (collective constants through its CommContext, compute constants through its GPU)."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.core.yamlio import dump_yaml, read_yaml
from simulator.execution.step import simulate_step
from simulator.scenario.calibration import load_profile, read_profile
from simulator.scenario.load import load_scenario, scenario_from_dict
from simulator.studies.calibrate.profile import write_profile
from simulator.system.comm.calibration import NCCL_CALIBRATION
from simulator.system.knobs import with_comm

SCENARIO = {
    "name": "c",
    "model": {"preset": "gpt3-125m"},
    "training": {"strategy": "ddp", "micro_batch_size": 2, "seq_len": 1024},
    "cluster": {"topology": "dgx-a100"},
}


def test_round_trip_applies_exactly_the_fitted_constants(a100_result, a100_profile):
    spec = load_profile(a100_profile)
    (part,) = a100_result.parts
    assert dict(spec.values) == {n: part.values[n] for n in part.selection.chosen}
    assert spec.comm == with_comm(NCCL_CALIBRATION, dict(spec.values))
    profile = read_profile(a100_profile)
    assert {c.name for c in profile.constants if c.status == "default"} == {
        n for n, _ in part.selection.held
    }
    assert len(profile.residuals) == 24 and profile.inputs[0].measurements == 24


def test_writing_is_deterministic_and_never_overwrites(a100_result, tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write_profile(a100_result, a)
    write_profile(a100_result, b)
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(UserError, match="exists.*--force"):
        write_profile(a100_result, a)
    write_profile(a100_result, a, force=True)


def _edited(src, tmp_path, edit, name="edited.yaml"):
    data = read_yaml(src)
    edit(data)
    path = tmp_path / name
    path.write_text(dump_yaml(data))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(constant=[]), "constant: unknown key (did you mean 'constants'?)"),
        (
            lambda d: d["constants"][0].update(valu=1),
            "constants.0.valu: unknown key (did you mean 'value'?)",
        ),
        (
            lambda d: d["constants"][0].update(name="nccl.ampere.nvlnk_efficiency"),
            "unknown constant 'nccl.ampere.nvlnk_efficiency' (did you mean 'nccl.ampere.nvlink_efficiency'",
        ),
        (
            lambda d: d["constants"][0].update(value=1.3),
            "1.3 is outside nccl.bandwidth_scale's physical bounds [0.3, 1.2] (ratio)",
        ),
        (
            lambda d: d.update(clustersim_calibration=2),
            "clustersim_calibration: profile format 2 is not one this clustersim reads (it reads 1)",
        ),
        (
            lambda d: d["constants"].append(dict(d["constants"][0])),
            "nccl.bandwidth_scale is listed twice",
        ),
        (lambda d: d.pop("clustersim_calibration"), "not a calibration profile"),
    ],
)
def test_a_wrong_profile_is_refused_naming_file_and_field(a100_profile, tmp_path, edit, message):
    path = _edited(a100_profile, tmp_path, edit)
    with pytest.raises(UserError) as err:
        load_profile(path)
    assert message in err.value.render() and str(path) in err.value.render()


def _kernels_s(step) -> float:
    """The compute stream's kernel time of a one-class step, less what collectives holding SMs
    added to it (that depends on the collectives' times, not on the compute constants)."""
    (added,) = step.interference_s
    return step.compute_s - added


def test_a_scenario_names_a_profile_relative_to_its_folder(a100_profile, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "a100.yaml").write_bytes(a100_profile.read_bytes())
    (tmp_path / "s.yaml").write_text(dump_yaml({**SCENARIO, "calibration": "profiles/a100.yaml"}))
    s = load_scenario(tmp_path / "s.yaml")
    assert (
        s.calibration.source == str(tmp_path / "profiles" / "a100.yaml")
        and len(s.calibration.sha256) == 64
    )
    assert s.calibration.comm == load_profile(a100_profile).comm
    default = scenario_from_dict(SCENARIO)
    assert default.calibration.is_default
    calibrated, builtin = simulate_step(s), simulate_step(default)
    (ar,) = [c for c in calibrated.collectives if c["op"] == "all_reduce"][:1]
    (ar0,) = [c for c in builtin.collectives if c["op"] == "all_reduce"][:1]
    assert ar["time_s"] != ar0["time_s"]  # the profile's NVLink efficiency and latencies apply
    # no compute constant in this profile: the same kernels (the slowdown beside collectives
    # follows the profile's collective times)
    assert _kernels_s(calibrated) == pytest.approx(_kernels_s(builtin))


def test_compute_constants_divide_every_kernel(a100_profile, tmp_path):
    def add(d):
        d["constants"].append(
            {
                "name": "compute.a100-80gb.end_to_end",
                "value": 0.5,
                "default": 0.78,
                "lower": 0.02,
                "upper": 1.0,
                "unit": "fraction",
                "status": "fitted",
                "note": "test",
            }
        )
        d["constants"].append(
            {
                "name": "compute.h100-sxm-80gb.end_to_end",
                "value": 0.1,
                "default": 0.78,
                "lower": 0.02,
                "upper": 1.0,
                "unit": "fraction",
                "status": "fitted",
                "note": "test",
            }
        )

    path = _edited(a100_profile, tmp_path, add)
    s = scenario_from_dict({**SCENARIO, "calibration": str(path)})
    builtin = scenario_from_dict(SCENARIO)
    # compute.py: every kernel time / end_to_end, so the compute stream's busy time scales by
    # catalog factor / 0.5.
    e2e = builtin.cluster.gpu.efficiency.end_to_end
    assert _kernels_s(simulate_step(s)) == pytest.approx(
        _kernels_s(simulate_step(builtin)) * e2e / 0.5, rel=1e-9
    )
    # The catalog GPU is untouched; the step applies the profile.
    assert s.cluster.gpu.efficiency.end_to_end == e2e


def test_a_missing_or_broken_profile_is_a_scenario_problem(a100_profile, tmp_path):
    with pytest.raises(UserError) as err:
        scenario_from_dict({**SCENARIO, "calibration": "nowhere.yaml"}, base_dir=tmp_path)
    assert "calibration: no calibration profile" in err.value.render()
    broken = _edited(a100_profile, tmp_path, lambda d: d["constants"][0].update(value=-1))
    with pytest.raises(UserError) as err:
        scenario_from_dict({**SCENARIO, "calibration": str(broken)})
    assert f"{broken}: constants.0.value: -1 is outside" in err.value.render()


def test_the_report_names_the_profile(a100_profile, capsys):
    from simulator.report.text import render_text
    from simulator.studies.simulate import simulate

    report = simulate(scenario_from_dict({**SCENARIO, "calibration": str(a100_profile)}), runs=1)
    assert report["calibration"]["profile"] == str(a100_profile)
    assert set(report["calibration"]["constants"]) == {
        n for n, _ in load_profile(a100_profile).values
    }
    fitted = len(
        load_profile(a100_profile).values
    )  # the report counts the profile's fitted constants
    assert f"calibration {a100_profile}: {fitted} fitted constants" in render_text(report)
    assert "calibration" not in simulate(scenario_from_dict(SCENARIO), runs=1)


def test_a_sweep_varies_the_profile_and_notices_when_one_changes(a100_profile, tmp_path, capsys):
    from simulator.cli.main import main

    (tmp_path / "a.yaml").write_bytes(a100_profile.read_bytes())
    (tmp_path / "sweep.yaml").write_text(
        dump_yaml({"base": SCENARIO, "axes": {"calibration": ["a.yaml", None]}})
    )
    out = tmp_path / "r.csv"
    assert (
        main(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(out), "-q", "--jobs", "1"]) == 0
    )
    import csv

    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["step_time_s"] != rows[1][
        "step_time_s"
    ]
    with (tmp_path / "a.yaml").open("a") as fh:
        fh.write("# edited\n")
    assert (
        main(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(out), "-q", "--jobs", "1"]) == 2
    )
    assert "calibration profile" in capsys.readouterr().err
