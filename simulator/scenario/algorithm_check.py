"""A forced collective algorithm (training.collective_algorithm) checked against every collective
the step issues - the strategy's data-parallel ones and the tensor-parallel ones - on this
interconnect (NVLS needs NVLink SHARP, collnet in-network reduction), as the run would cost them:
`validate` refuses what `run` would."""

from __future__ import annotations

import numpy as np

from simulator.core.errors import Problem, UserError, closest
from simulator.core.yamlio import read_yaml
from simulator.execution.frameworks import strategy_for
from simulator.spec.mesh import Group
from simulator.spec.specs import ClusterSpec, Scenario, TrainingSpec
from simulator.system.comm.algorithms import ALGORITHMS, Features
from simulator.system.comm.calibration import Calibration
from simulator.system.topology.loader import load_topology, topology_from_dict


def _stub(t: TrainingSpec, c: ClusterSpec) -> Scenario:
    """A scenario without its model: the collectives and the mesh read only the training and
    the cluster."""
    return Scenario(name="", model=None, training=t, cluster=c)  # type: ignore[arg-type]


def step_collectives(t: TrainingSpec, c: ClusterSpec) -> list[tuple[str, Group]]:
    """The (operation, group) pairs a step issues with the forced algorithm: the strategy's
    data-parallel ones and, with tp > 1, the tensor-parallel all-reduce, all-gather and
    reduce-scatter the step costs on every stage (execution/step.py stage_context)."""
    stub = _stub(t, c)
    strategy = strategy_for(t)
    found = list(strategy.collectives(stub))
    if t.parallel.tp > 1:
        tp = strategy.mesh(stub).group("tp")
        found += [(op, tp) for op in ("all_reduce", "all_gather", "reduce_scatter")]
    return found


def features(t: TrainingSpec, c: ClusterSpec, comm: Calibration) -> Features:
    """What the run's collectives may use, as CommContext decides it: NVLink SHARP where the
    topology has it, the GPUs' architecture supports it and NCCL_NVLS_ENABLE is on; IB SHARP
    on a switched fabric. The flags are the file's: two hosts are built, not the cluster."""
    data = read_yaml(c.topology_ref)
    try:
        topo = topology_from_dict(data, source=c.topology_ref, num_hosts=min(c.num_hosts, 2))
    except UserError:  # a file that does not scale by host count: as the run builds it
        topo = load_topology(c.topology_ref, num_hosts=c.num_hosts)
    return Features(
        nvls=t.nvls and topo.nvls and comm.arch(c.gpu.arch).nvls_efficiency > 0,
        sharp=topo.sharp and not topo.mesh,
    )


def check_algorithm(
    t: TrainingSpec, c: ClusterSpec, comm: Calibration, problems: list[Problem]
) -> None:
    """A forced collective algorithm must apply to every collective the step issues, on this
    interconnect (NVLS needs NVLink SHARP, collnet in-network reduction)."""
    if t.collective_algorithm == "auto":
        return
    algo = ALGORITHMS[t.collective_algorithm]
    feats = features(t, c, comm) if algo.needs else None
    for op, group in step_collectives(t, c):
        if group.size < 2:
            continue
        for instance in dict.fromkeys(
            (0, group.count - 1)
        ):  # the first and the last of its instances
            hosts = np.asarray(group.ranks(instance)) // c.gpus_per_host
            counts = np.unique(hosts, return_counts=True)[1]
            shape = (len(counts), bool((counts == counts[0]).all()), int(counts[0]))
            why = algo.why_not(op, *shape, feats)
            if why:
                ok = [a.name for a in ALGORITHMS.values() if a.applies(op, *shape, feats)]
                problems.append(
                    Problem(
                        "training.collective_algorithm",
                        f"{why}; {t.strategy} runs {op} on the {group.name} group ({group.size} GPUs "
                        f"on {shape[0]} host(s)) of topology {c.topology_name}",
                        f"use auto or one of {ok}" + _closest(t.collective_algorithm, ok),
                    )
                )
                return


def _closest(name: str, valid: list[str]) -> str:
    """ "; closest: 'nvls_tree'" when a valid name is close to the refused one."""
    hits = closest(name, valid)
    return f"; closest: {' or '.join(map(repr, hits))}" if hits else ""


def check_dispatch_placement(t: TrainingSpec, c: ClusterSpec, problems: list[Problem]) -> None:
    """The deepep dispatcher forwards each token over NVLink to the expert-parallel ranks of one
    host (strategies/base.py dispatch_mesh): every ep group must hold the same number of ranks
    on each of its hosts."""
    if t.moe.dispatcher != "deepep" or t.parallel.ep == 1:
        return
    try:
        strategy_for(t).ep_per_host(_stub(t, c))
    except ValueError as exc:
        problems.append(
            Problem(
                "training.moe.dispatcher",
                f"deepep: {exc}",
                "choose ep dividing (or a multiple of) the GPUs per host, or dispatcher alltoall",
            )
        )
