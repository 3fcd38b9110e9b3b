"""Measured runs: the YAML and CSV formats, their mistakes, memory rows, and the acceptance check
that step times written from known compute factors give those factors back within 2%."""

from __future__ import annotations

import pytest

from simulator.core.errors import UserError
from simulator.core.yamlio import dump_yaml
from simulator.scenario.load import scenario_from_dict
from simulator.studies.calibrate.runs import Run, RunData, read_runs
from simulator.studies.calibrate.study import calibrate

SMALL = {
    "model": {"preset": "gpt3-125m"},
    "training": {"strategy": "ddp", "micro_batch_size": 4, "seq_len": 1024},
    "cluster": {"topology": "dgx-a100"},
}


def test_yaml_runs_with_units_inline_and_file_scenarios(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.yaml").write_text(dump_yaml(SMALL))
    (tmp_path / "runs.yaml").write_text(
        dump_yaml(
            {
                "runs": [
                    {
                        "id": "a",
                        "scenario": "sub/s.yaml",
                        "step_time": "250 ms",
                        "max_memory_allocated": "12.5 GiB",
                    },
                    {"scenario": SMALL, "tokens_per_s_per_gpu": 40000},
                    {"scenario": SMALL, "max_memory_reserved": "14 GB"},
                ]
            }
        )
    )
    a, b, c = read_runs(tmp_path / "runs.yaml")
    assert (a.id, a.metric, a.measured, a.memory) == (
        "a",
        "step_time_s",
        0.25,
        (("max_memory_allocated", int(12.5 * 2**30)),),
    )
    assert (b.id, b.metric, b.measured) == ("runs.yaml:runs.1", "tokens_per_s_per_gpu", 40000.0)
    assert (c.metric, c.memory) == (None, (("max_memory_reserved", 14 * 10**9),))


def test_csv_runs(tmp_path):
    (tmp_path / "s.yaml").write_text(dump_yaml(SMALL))
    (tmp_path / "runs.csv").write_text(
        "id,scenario,step_time_s,tokens_per_s,max_memory_allocated\n"
        "x,s.yaml,0.31,,\n"
        "y,s.yaml,,262144,11 GiB\n"
    )
    x, y = read_runs(tmp_path / "runs.csv")
    assert (x.line, x.metric, x.measured) == (2, "step_time_s", 0.31)
    assert (y.line, y.metric, y.measured, y.memory) == (
        3,
        "tokens_per_s",
        262144.0,
        (("max_memory_allocated", 11 * 2**30),),
    )


def test_mistakes_are_reported_at_their_rows(tmp_path):
    (tmp_path / "runs.yaml").write_text(
        dump_yaml(
            {
                "runs": [
                    {"scenario": SMALL, "step_tme": "1 s"},
                    {"scenario": SMALL, "step_time": "1 s", "tokens_per_s": 5},
                    {"scenario": SMALL, "step_time": "fast"},
                    {"step_time": "1 s"},
                    {"scenario": {**SMALL, "training": {"strategy": "zero4"}}, "step_time": "1 s"},
                ]
            }
        )
    )
    with pytest.raises(UserError) as err:
        read_runs(tmp_path / "runs.yaml")
    text = err.value.render()
    assert "runs.0.step_tme: unknown key (did you mean 'step_time' or 'step_time_s'?)" in text
    assert "runs.1.tokens_per_s: give one measured speed, not step_time and tokens_per_s" in text
    assert "runs.2.step_time: expected a duration such as '2 us'" in text and "got 'fast'" in text
    assert "runs.3.scenario: required key is missing" in text
    assert "runs.4.scenario.training.strategy" in text and "zero3" in text
    (tmp_path / "bad.csv").write_text("scenario,step_time_z\nx.yaml,1\n")
    with pytest.raises(UserError, match="column 'step_time_z': unknown column"):
        read_runs(tmp_path / "bad.csv")


def test_a_run_must_not_name_a_profile(tmp_path, a100_profile):
    (tmp_path / "runs.yaml").write_text(
        dump_yaml(
            {
                "runs": [
                    {"scenario": {**SMALL, "calibration": str(a100_profile)}, "step_time": "1 s"}
                ]
            }
        )
    )
    with pytest.raises(UserError, match="names a calibration profile"):
        read_runs(tmp_path / "runs.yaml")


def test_memory_rows_are_pytorch_figures_of_the_peak():
    s = scenario_from_dict(SMALL)
    data = RunData(
        [
            Run(
                id="m",
                line=1,
                scenario=s,
                metric=None,
                measured=None,
                memory=(("max_memory_allocated", 2**30), ("max_memory_reserved", 2**30)),
            )
        ]
    )
    allocated, reserved = data.memory_checks()
    mem = data._memory["m"][0]
    tensors = mem.model_states_bytes + mem.activations_bytes + mem.buffers_bytes
    # allocated: the tensors (no CUDA context); reserved: x (1 + allocator_reserve = 0.05).
    assert allocated.predicted_bytes == tensors == mem.total_bytes - mem.overhead_bytes
    assert reserved.predicted_bytes == tensors + round(0.05 * tensors)
    assert allocated.error == pytest.approx(tensors / 2**30 - 1)


COMPUTE_TRUTH = {
    "compute.a100-80gb.end_to_end": 0.68,
    "compute.a100-80gb.attention": 0.52,
    "compute.a100-80gb.memory": 0.78,
}
# Models and sequence lengths that share their time differently between GEMMs, attention and
# memory-bound kernels, so each factor shows.
GRID = [
    ("mpt-125m", 16, 2048),
    ("mpt-125m", 64, 512),
    ("mpt-350m", 8, 2048),
    ("mpt-1b", 8, 1024),
    ("llama3-8b", 1, 8192),
    ("mpt-3b", 4, 2048),
    ("llama2-7b", 2, 4096),
]


def _scenario(preset: str, micro_batch: int, seq: int) -> dict:
    return {
        "model": {"preset": preset},
        "training": {
            "strategy": "zero3",
            "micro_batch_size": micro_batch,
            "seq_len": seq,
            "dropout": False,
        },
        "cluster": {"topology": "dgx-a100"},
    }


def test_synthetic_step_times_recover_the_compute_factors_they_were_written_with(tmp_path):
    runs = [
        Run(
            id=f"r{i}",
            line=i + 1,
            scenario=scenario_from_dict(_scenario(*g)),
            metric="step_time_s",
            measured=1.0,
            memory=(),
        )
        for i, g in enumerate(GRID)
    ]
    times = RunData(runs).predict(COMPUTE_TRUTH)
    (tmp_path / "runs.yaml").write_text(
        dump_yaml(
            {
                "runs": [
                    {"id": f"r{i}", "scenario": _scenario(*g), "step_time_s": float(t)}
                    for i, (g, t) in enumerate(zip(GRID, times))
                ]
            }
        )
    )
    start = {k: v * (1.1 if i % 2 else 0.9) for i, (k, v) in enumerate(COMPUTE_TRUTH.items())}
    result = calibrate([], str(tmp_path / "runs.yaml"), loo=False, start=start)
    (part,) = result.parts
    for name, value in COMPUTE_TRUTH.items():
        assert part.values[name] == pytest.approx(value, rel=0.02), name
    held = dict(part.selection.held)
    assert held["compute.a100-80gb.gemm"].startswith("only its product with end_to_end shows")
