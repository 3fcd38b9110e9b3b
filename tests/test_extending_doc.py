"""docs/extending.md is true as written: every file it names exists; a Python block headed by a
file's path is an excerpt of that file (each line is in it); every other Python block runs, and
its test functions pass; every YAML block is a valid scenario, a topology that builds, or
validation cases that are in the shipped set with the same figures; the registry entries,
classes, attributes, functions and scenario fields it names in backticks resolve."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

import pytest
import yaml
from pydantic import BaseModel

import simulator.execution.strategies.base as strategy_base
import simulator.report.document as report_document
import simulator.scenario.framework as scenario_framework
import simulator.system.comm.algorithms.base as plan_base
from simulator.core import layers
from simulator.execution import frameworks
from simulator.execution.frameworks import fsdp2, megatron
from simulator.execution.step import stage_context
from simulator.execution.strategies import STRATEGIES, block_run
from simulator.execution.strategies.fsdp import Zero3
from simulator.execution.strategies.passes import StageSchedule
from simulator.model import ops_common
from simulator.scenario import parallel, resolve, schema, schema_cluster, schema_framework
from simulator.scenario.load import scenario_from_dict
from simulator.spec import mesh, specs
from simulator.studies import frameworks as framework_study
from simulator.studies.cases import COLLECTIVE_KEYS, OPTIONAL, REQUIRED, load_cases, shipped_files
from simulator.system import hardware, knobs
from simulator.system.comm import algorithms, calibration, cost, selection
from simulator.system.comm.algorithms import all_to_all, direct, ring
from simulator.system.hardware import attention_table, gemm_table
from simulator.system.topology import builders, loader, routing
from simulator.system.topology.builders.built import Sketch
from simulator.system.topology.builders.params import Params
from tests.helpers import PROJECT_ROOT

TEXT = (PROJECT_ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
BLOCKS = [(lang, body) for lang, body in FENCE.findall(TEXT)]
PROSE = FENCE.sub("", TEXT)
PYTHON = [body for lang, body in BLOCKS if lang == "python"]
EXCERPTS = [b for b in PYTHON if re.match(r"# [\w/.]+\.py\n", b)]
RUNNABLE = [b for b in PYTHON if b not in EXCERPTS]
YAML = [body for lang, body in BLOCKS if lang == "yaml"]
SPANS = re.findall(r"`([^`\n]+)`", PROSE)


# ---- files


def _paths() -> set[str]:
    found = set()
    for span in SPANS:
        for word in span.split():
            word = word.strip(",;:()")
            if "<" in word or "*" in word or word.startswith("../"):
                continue  # a pattern, or a file outside the repository
            if re.fullmatch(r"[\w./-]+\.(py|md|yaml|csv|svg)|[\w.-]+(/[\w.-]+)*/|\.ci/run", word):
                found.add(word)
    return found


PATHS = sorted(_paths())


@pytest.mark.parametrize("path", PATHS)
def test_every_file_named_exists(path):
    """A path from the repository root, or the tail of one (`builders/shapes.py`, `ring.py`)."""
    if (PROJECT_ROOT / path).exists() or (PROJECT_ROOT / "simulator" / path).exists():
        return
    tail = path.rstrip("/")
    hits = [
        p
        for p in (PROJECT_ROOT / "simulator").rglob(tail.split("/")[-1])
        if p.as_posix().endswith(tail)
    ]
    assert hits, f"{path} names no file of the repository"


# ---- Python blocks


@pytest.mark.parametrize("block", EXCERPTS, ids=[b.split("\n")[0][2:] for b in EXCERPTS])
def test_each_excerpt_is_taken_from_its_file(block):
    head, *lines = block.splitlines()
    source = {ln.strip() for ln in (PROJECT_ROOT / head[2:]).read_text().splitlines()}
    missing = [ln for ln in lines if ln.strip() and ln.strip() not in source]
    assert not missing, f"not in {head[2:]}: {missing}"


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"example{i}" for i in range(len(RUNNABLE))])
def test_each_worked_example_runs_and_its_tests_pass(block, monkeypatch):
    namespace: dict[str, typing.Any] = {"__name__": "extending_doc_example"}
    # The guide's own example code, from this repository.
    exec(compile(block, "docs/extending.md", "exec"), namespace)  # noqa: S102
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert tests, "a runnable block defines at least one test"
    for test in tests:
        assert list(inspect.signature(test).parameters) == ["monkeypatch"]
        with monkeypatch.context() as mp:
            test(mp)


def test_the_examples_leave_the_registries_as_they_were():
    assert "one_shot" not in algorithms.ALGORITHMS and "line" not in builders.TOPOLOGY_BUILDERS
    assert "my-trainer" not in frameworks.FRAMEWORKS


# ---- YAML blocks


def _shipped_cases() -> dict:
    return {c.id: c for f in shipped_files() for c in load_cases(f)}


@pytest.mark.parametrize("block", YAML, ids=[f"yaml{i}" for i in range(len(YAML))])
def test_each_yaml_block_is_valid(block, tmp_path):
    data = yaml.safe_load(block)
    if {"model", "cluster"} <= set(data):
        assert scenario_from_dict(data).name == data["name"]
    elif "builder" in data:
        assert loader.topology_from_dict(data).num_gpus > 0
    elif set(data) == {"cases"}:
        (tmp_path / "cases.yaml").write_text(block)
        shipped = _shipped_cases()
        for case in load_cases(tmp_path / "cases.yaml"):
            real = shipped[case.id]
            for field in ("role", "metric", "published", "tolerance", "collective", "scenario"):
                assert getattr(case, field) == getattr(real, field), (case.id, field)
    else:
        pytest.fail(f"a YAML block of an unknown kind: {sorted(data)}")


def test_every_kind_of_yaml_block_is_present():
    kinds = [set(yaml.safe_load(b)) for b in YAML]
    assert any({"model", "cluster"} <= k for k in kinds)
    assert any("builder" in k for k in kinds) and any(k == {"cases"} for k in kinds)


# ---- names in backticks

REGISTRIES = {
    "GPU_CATALOG": hardware.GPU_CATALOG,
    "ALGORITHMS": algorithms.ALGORITHMS,
    "FRAMEWORKS": frameworks.FRAMEWORKS,
    "STRATEGIES": STRATEGIES,
    "TOPOLOGY_BUILDERS": builders.TOPOLOGY_BUILDERS,
    "FRAMEWORK_SECTIONS": schema_framework.FRAMEWORK_SECTIONS,
}
# The modules the guide talks about: a name in backticks is one of theirs.
MODULES = (
    hardware,
    gemm_table,
    attention_table,
    algorithms,
    plan_base,
    calibration,
    cost,
    selection,
    ring,
    direct,
    all_to_all,
    frameworks,
    megatron,
    fsdp2,
    strategy_base,
    builders,
    loader,
    routing,
    layers,
    mesh,
    specs,
    parallel,
    resolve,
    schema,
    schema_cluster,
    schema_framework,
    scenario_framework,
    framework_study,
    report_document,
    knobs,
    ops_common,
    block_run,
)
NAMESPACE: dict[str, typing.Any] = {
    **{k: v for m in MODULES for k, v in vars(m).items() if not k.startswith("__")},
    "Zero3": Zero3,
    "StageSchedule": StageSchedule,
    "stage_context": stage_context,
    "Sketch": Sketch,
    "p": Params,
    "monkeypatch": pytest.MonkeyPatch,
}
# Scenario fields by their first part.
SECTIONS: dict[str, type[BaseModel]] = {
    "training": schema.TrainingSection,
    "cluster": schema_cluster.ClusterSection,
    "model": schema.ModelSection,
    "efficiency": schema_cluster.EfficiencySection,
}
# Fields and methods of the classes whose entries the guide describes, named bare.
MEMBERS = {
    name
    for cls in (
        algorithms.Algorithm,
        plan_base.PhasePlan,
        frameworks.Framework,
        hardware.GPU,
        hardware.Efficiency,
        strategy_base.Strategy,
    )
    for name in (
        {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    )
    | set(dir(cls))
}
# Words in backticks that are not Python names: keys of topology files, cases and the
# `routing:` section, values, and names of other projects.
WORDS = {
    *ops_common.COMM_DIMS,  # the mesh dimensions a layer's collectives name
    *REQUIRED,
    *OPTIONAL,
    *COLLECTIVE_KEYS,
    *MEMBERS,
    "builder",
    "gpu",
    "policy",
    "flows_per_pair",
    "ecmp",
    "adaptive",
    "auto",
    "direct",
    "hierarchical",
    "explicit",
    "ring",
    "tp",
    "dp",
    "pp",
    "ddp",
    "zero1",
    "send",
    "sharp",
    "nvls",
    "None",
    "parallel_state",
    "ParallelDims",
}


def _field_type(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The pydantic model a field holds (through Optional, unions and Annotated), if any."""
    todo = [model.model_fields[name].annotation]
    while todo:
        t = todo.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        todo += list(typing.get_args(t))
    return None


def _resolves(span: str) -> bool:
    m = re.fullmatch(r'(\w+)\["([\w-]+)"\]', span)
    if m:
        return m[1] in REGISTRIES and m[2] in REGISTRIES[m[1]]
    span = re.sub(r"\(.*\)$", "", span)  # a call: its function
    head, *rest = span.split(".")
    if head in SECTIONS:
        model: type[BaseModel] | None = SECTIONS[head]
        for part in rest:
            if model is None or part not in model.model_fields:
                return False
            model = _field_type(model, part)
        return True
    if head not in NAMESPACE:
        return head in WORDS and not rest
    obj = NAMESPACE[head]
    for part in rest:
        fields = (
            {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
        )
        if part not in fields and not hasattr(obj, part):
            return False
        obj = getattr(obj, part, None)
    return True


NAMES = sorted(
    {
        s
        for s in SPANS
        if re.fullmatch(r'\w+(\.\w+)*(\(.*\))?|\w+\["[\w-]+"\]', s)
        and not re.search(r"\.(py|md|yaml)$", s)
    }
)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_in_backticks_resolves(name):
    assert _resolves(name), (
        f"`{name}` names nothing in the code (or add it to WORDS if it is a key)"
    )


def test_the_registries_table_lists_every_registry():
    for registry in REGISTRIES:
        if registry != "FRAMEWORK_SECTIONS":
            assert f"| `{registry}` |" in TEXT
