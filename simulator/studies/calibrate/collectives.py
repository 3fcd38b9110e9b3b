"""nccl-tests files -> timed collectives on a topology, and what the collective model predicts for
them under a calibration.

A file is given as FILE[:TOPOLOGY] on the command line or as an entry of a manifest (YAML:
`nccl_tests: [{file, topology, num_hosts, op, nvls, algorithm, gpu}]`, paths relative to it). The
group is the ranks' own (host, device) pairs from the "#  Rank" lines, the k-th host named in
the file being the topology's host k; where every process sees its GPU as device 0
(CUDA_VISIBLE_DEVICES per rank), a host's ranks take its GPUs in rank order. Each row's
out-of-place and in-place timings are two measurements of one leave-one-out group (the row).
The GPU the file's rank lines name (and a manifest's `gpu`) must be the topology's (gpus.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.core.errors import Problem, UserError, did_you_mean
from simulator.core.yamlio import read_yaml
from simulator.studies.calibrate.gpus import canonical, catalog_gpu, check_gpu
from simulator.studies.calibrate.nccl_tests import (
    BINARIES,
    NcclFile,
    Section,
    binary_of,
    read_nccl_tests,
)
from simulator.system.comm.algorithms import ALGORITHMS
from simulator.system.comm.calibration import OPS, Calibration
from simulator.system.comm.cost import CommContext
from simulator.system.topology.graph import Topology
from simulator.system.topology.groups import resolve_group
from simulator.system.topology.loader import load_topology

MANIFEST_KEYS = ("file", "topology", "num_hosts", "op", "nvls", "algorithm", "gpu")


@dataclass(frozen=True, kw_only=True)
class NcclInput:
    """One nccl-tests output file and the setup it ran on."""

    path: str
    topology: str
    num_hosts: int | None = None
    op: str | None = None  # the collective, when the file does not say
    nvls: bool = True  # NCCL_NVLS_ENABLE
    algorithm: str = "auto"  # NCCL_ALGO, as clustersim names it
    gpu: str | None = None  # the GPU it ran on, as the manifest declares it (catalog name)


@dataclass(frozen=True, kw_only=True)
class Timed:
    """One timed collective: what ran, where, and the measured time."""

    id: str
    input: str
    line: int
    group: str  # the leave-one-out group
    op: str
    size: int
    ranks: tuple[
        tuple[int, ...], ...
    ]  # the group (or, for sendrecv, every sender -> receiver pair)
    algorithm: str
    context: tuple  # which CommContext costs it: (input index)
    measured_s: float


def parse_inputs(specs: list[str], default_topology: str | None) -> list[NcclInput]:
    """`FILE[:TOPOLOGY]` arguments and manifests (.yaml) -> inputs; UserError for each problem."""
    inputs, problems = [], []
    for spec in specs:
        path, topology = _split(spec)
        if path.suffix in (".yaml", ".yml"):
            inputs += _manifest(path)
            continue
        topology = topology or default_topology
        if topology is None:
            problems.append(
                Problem(
                    "--nccl-tests",
                    f"{spec}: which topology did it run on?",
                    f"write {spec}:dgx-a100 (a shipped name or a topology YAML), or pass --topology",
                )
            )
            continue
        inputs.append(NcclInput(path=str(path), topology=topology))
    if problems:
        raise UserError(problems)
    return inputs


def _split(spec: str) -> tuple[Path, str | None]:
    if Path(spec).exists() or ":" not in spec:
        return Path(spec), None
    path, topology = spec.rsplit(":", 1)
    return Path(path), topology or None


def _manifest(path: Path) -> list[NcclInput]:
    data = read_yaml(path)
    entries = data.get("nccl_tests")
    problems = [
        Problem(k, "unknown key", did_you_mean(k, ["nccl_tests", "about"]))
        for k in data
        if k not in ("nccl_tests", "about")
    ]
    if not isinstance(entries, list) or not entries:
        problems.append(Problem("nccl_tests", "expected a list of {file, topology, ...} entries"))
        raise UserError(problems, str(path))
    inputs = []
    for i, e in enumerate(entries):
        where = f"nccl_tests.{i}"
        if not isinstance(e, dict):
            problems.append(Problem(where, "expected a mapping with file and topology"))
            continue
        problems += [
            Problem(f"{where}.{k}", "unknown key", did_you_mean(k, MANIFEST_KEYS))
            for k in e
            if k not in MANIFEST_KEYS
        ]
        problems += [
            Problem(f"{where}.{k}", "required key is missing")
            for k in ("file", "topology")
            if k not in e
        ]
        problems += _entry_problems(where, e)
        if "file" in e and "topology" in e:
            inputs.append(
                NcclInput(
                    path=str(path.parent / str(e["file"])),
                    topology=str(e["topology"]),
                    num_hosts=e.get("num_hosts"),
                    op=e.get("op"),
                    nvls=e.get("nvls", True),
                    algorithm=e.get("algorithm", "auto"),
                    gpu=_declared_gpu(where, e, problems),
                )
            )
    if problems:
        raise UserError(problems, str(path))
    return inputs


def _declared_gpu(where: str, e: dict, problems: list[Problem]) -> str | None:
    if "gpu" not in e:
        return None
    try:
        return catalog_gpu(str(e["gpu"]), f"{where}.gpu")
    except UserError as exc:
        problems.extend(exc.problems)
        return None


def _entry_problems(where: str, e: dict) -> list[Problem]:
    found = []
    if "num_hosts" in e and (
        not isinstance(e["num_hosts"], int)
        or isinstance(e["num_hosts"], bool)
        or e["num_hosts"] < 1
    ):
        found.append(
            Problem(f"{where}.num_hosts", f"expected a host count >= 1, got {e['num_hosts']!r}")
        )
    if "op" in e and e["op"] not in (*OPS, "sendrecv"):
        found.append(
            Problem(
                f"{where}.op", f"unknown collective {e['op']!r}", did_you_mean(str(e["op"]), OPS)
            )
        )
    if "nvls" in e and not isinstance(e["nvls"], bool):
        found.append(Problem(f"{where}.nvls", f"expected true or false, got {e['nvls']!r}"))
    if "algorithm" in e and e["algorithm"] not in (*ALGORITHMS, "auto"):
        found.append(
            Problem(
                f"{where}.algorithm",
                f"unknown algorithm {e['algorithm']!r}",
                did_you_mean(str(e["algorithm"]), [*ALGORITHMS, "auto"]),
            )
        )
    return found


class CollectiveData:
    """The timed collectives of some nccl-tests files, and their predictions under a calibration."""

    def __init__(self, inputs: list[NcclInput]):
        self.inputs = inputs
        self.files: list[NcclFile] = []
        self.topologies: list[Topology] = []
        self.timed: list[Timed] = []
        self._gpu_notes: list[str] = []
        problems: list[Problem] = []
        for index, inp in enumerate(inputs):
            try:
                self._read(index, inp)
            except UserError as exc:
                problems += exc.sourced()
        if problems:
            raise UserError(problems)
        self._shared: list[dict] = [
            {} for _ in inputs
        ]  # per topology, shared by every calibration's context

    def _read(self, index: int, inp: NcclInput) -> None:
        parsed = read_nccl_tests(inp.path)
        hosts = max(len({r.host for r in s.ranks}) for s in parsed.sections)
        try:  # as many hosts as the file names (one: the topology file's own count)
            topo = load_topology(inp.topology, inp.num_hosts or (hosts if hosts > 1 else None))
        except UserError as exc:
            raise UserError(
                [Problem("topology", p.message, p.hint) for p in exc.problems], inp.path
            ) from None
        try:
            devices = [r.gpu for s in parsed.sections for r in s.ranks if r.gpu]
            notes = check_gpu(devices, topo.gpu, inp.topology, inp.gpu)
        except UserError as exc:
            raise exc.with_source(inp.path) from None
        self._gpu_notes += [f"{inp.path}: {n}" for n in notes]
        self.files.append(parsed)
        self.topologies.append(topo)
        for section in parsed.sections:
            self._section(index, inp, parsed, section, topo)

    def _section(
        self, index: int, inp: NcclInput, parsed: NcclFile, section: Section, topo: Topology
    ) -> None:
        op = inp.op or BINARIES.get(binary_of(section, inp.path))
        where = f"line {section.start_line}"
        if op is None:
            raise UserError(
                Problem(
                    where,
                    "which collective is this? The output has no '# Collective test "
                    "starting:' line and the file name names no nccl-tests binary",
                    f"name the file after the binary ({', '.join(BINARIES)}) or give op in a "
                    "manifest",
                ),
                inp.path,
            )
        if not section.ranks:
            raise UserError(
                Problem(
                    where,
                    "no '#  Rank N Group G Pid P on HOST device D' lines: which GPUs ran?",
                    "give the whole output, header included",
                ),
                inp.path,
            )
        group = _group(topo, section, inp.path)
        if len(group) < 2:
            raise UserError(
                Problem(
                    where,
                    "a run on one rank moves nothing between GPUs: no collective to model",
                    "calibrate on runs of 2 or more ranks",
                ),
                inp.path,
            )
        name = Path(inp.path).name
        for row in section.rows:
            ranks = _ranks(op, group, row.root)
            for block in row.blocks:
                self.timed.append(
                    Timed(
                        id=f"{name}:{row.line} {op} {_size(row.size)} {block.name}",
                        input=inp.path,
                        line=row.line,
                        group=f"{name}:{row.line}",
                        op="send" if op == "sendrecv" else op,
                        size=row.size,
                        ranks=ranks,
                        algorithm="p2p" if op == "sendrecv" else inp.algorithm,
                        context=(index,),
                        measured_s=block.time_us * 1e-6,
                    )
                )

    def contexts(self, cal: Calibration) -> dict[tuple, CommContext]:
        return {
            (i,): CommContext(topo, cal, nvls=inp.nvls, shared=self._shared[i])
            for i, (inp, topo) in enumerate(zip(self.inputs, self.topologies))
        }

    def predict(self, cal: Calibration) -> np.ndarray:
        """Predicted time (s) of every timed collective, in order."""
        ctxs = self.contexts(cal)
        return np.array(
            [
                ctxs[t.context].cost_together(t.op, t.ranks, t.size, t.algorithm).time_s
                for t in self.timed
            ]
        )

    def describe(self, cal: Calibration) -> dict[str, str]:
        """Which (algorithm/protocol) the model runs for each measurement."""
        ctxs = self.contexts(cal)
        out = {}
        for t in self.timed:
            c = ctxs[t.context].cost_together(t.op, t.ranks, t.size, t.algorithm)
            out[t.id] = f"{c.algorithm}/{c.protocol}"
        return out

    def archs(self) -> list[str]:
        return sorted({CommContext(topo).arch for topo in self.topologies})

    def link_kinds(self) -> list[str]:
        from simulator.system.topology.builders.built import LINK_KINDS

        return sorted(
            {LINK_KINDS[c] for topo in self.topologies for c in np.unique(topo.link_code)}
        )

    def multi_host(self) -> bool:
        """Whether any measured collective crosses hosts."""
        return any(
            len({int(self.topologies[t.context[0]].hosts[r]) for g in t.ranks for r in g}) > 1
            for t in self.timed
        )

    def skipped(self) -> list[tuple[str, int, str]]:
        return [
            (inp.path, k.line, k.reason)
            for inp, f in zip(self.inputs, self.files)
            for k in f.skipped
        ]

    def notes(self) -> list[str]:
        return [
            f"{inp.path}: {n}" for inp, f in zip(self.inputs, self.files) for n in f.notes()
        ] + self._gpu_notes

    def gpus(self) -> list[str]:
        """The catalog GPUs the files ran on (their topologies')."""
        return sorted({canonical(topo.gpu) for topo in self.topologies})

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per input: (measurements used, rows or blocks skipped)."""
        used: dict[str, int] = defaultdict(int)
        for t in self.timed:
            used[t.input] += 1
        return {
            inp.path: (used[inp.path], len(f.skipped)) for inp, f in zip(self.inputs, self.files)
        }


def _size(n: int) -> str:
    """nccl-tests' power-of-two sizes as it names them on the command line: 1K, 64M, 8G."""
    for unit, factor in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def _group(topo: Topology, section: Section, path: str) -> tuple[int, ...]:
    """The topology's GPUs of the file's ranks, in rank order."""
    hosts = list(dict.fromkeys(r.host for r in section.ranks))
    names = {}
    for h, host in enumerate(hosts):
        mine = sorted((r for r in section.ranks if r.host == host), key=lambda r: r.rank)
        devices = [r.device for r in mine]
        if len(set(devices)) < len(devices):  # one GPU per process, each seen as device 0
            devices = list(range(len(mine)))
        names.update({r.rank: f"h{h}.gpu{d}" for r, d in zip(mine, devices)})
    order = [names[r] for r in sorted(names)]
    try:
        return resolve_group(topo, order)
    except UserError as exc:
        raise UserError(
            Problem(
                f"line {section.start_line}",
                f"the file's ranks do not fit {topo.name} "
                f"({topo.num_hosts} host(s) of {topo.num_gpus // topo.num_hosts} GPUs): "
                f"{exc.problems[0].message}",
                "give the topology it ran on, and num_hosts in a manifest",
            ),
            path,
        ) from None


def _ranks(op: str, group: tuple[int, ...], root: int) -> tuple[tuple[int, ...], ...]:
    """What to cost: the group (root first for broadcast / reduce), or sendrecv's pairs."""
    if op == "sendrecv":
        n = len(group)
        return tuple((group[i], group[(i + 1) % n]) for i in range(n))
    if op in ("broadcast", "reduce") and 0 < root < len(group):
        return (group[root:] + group[:root],)
    return (group,)
