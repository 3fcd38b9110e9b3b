"""The collective-algorithm registry: name -> (planner, the ops it implements, where it applies).

A new algorithm is one module with a planner `(topology, op, group) -> phases` plus one entry
here; `auto` (selection.py lists the applicable ones, cost.py prices them) tries every applicable
NCCL algorithm with every protocol it supports,
as NCCL's tuner does (src/graph/tuning.cc, src/enqueue.cc), and keeps the fastest. Where
NCCL enables each algorithm (research notes of the issue, from NCCL v2.30 source):
  ring            every collective, every protocol
  tree            all-reduce across nodes (double binary tree)
  nvls            all-reduce, all-gather, reduce-scatter inside one NVLink-SHARP domain
                  (Hopper+ with NVSwitch, NCCL_NVLS_ENABLE); Simple protocol only
  nvls_tree       all-reduce across nodes of NVLS domains; Simple only
  collnet         all-reduce across nodes on a fabric with in-network reduction (IB SHARP)
  pat             all-gather / reduce-scatter with one GPU per node; Simple only
clustersim's own `hierarchical` all-reduce is not NCCL's: it runs only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.system.comm.algorithms.all_to_all import (
    plan_all_to_all,
    plan_all_to_all_together,
)
from simulator.system.comm.algorithms.base import PhasePlan
from simulator.system.comm.algorithms.collnet import plan_collnet
from simulator.system.comm.algorithms.hierarchical import plan_hierarchical
from simulator.system.comm.algorithms.nvls import plan_nvls, plan_nvls_tree
from simulator.system.comm.algorithms.p2p import plan_p2p, plan_p2p_together
from simulator.system.comm.algorithms.pat import plan_pat, plan_pat_together
from simulator.system.comm.algorithms.ring import plan_ring, plan_ring_together
from simulator.system.comm.algorithms.tree import plan_tree


@dataclass(frozen=True, kw_only=True)
class Features:
    """What the interconnect offers beyond links: NVLink SHARP (enabled) and IB SHARP."""

    nvls: bool = False
    sharp: bool = False


# NCCL's p2p runs LL or Simple, never LL128 (calibration.P2P_*).
P2P_PROTOCOLS = ("LL", "Simple")


@dataclass(frozen=True, kw_only=True)
class Algorithm:
    name: str
    plan: Callable[..., tuple[PhasePlan, ...]]
    ops: tuple[str, ...]
    family: str = "ring"  # its row in the calibration tables (NCCL's)
    protocols: tuple[str, ...] = ("LL", "LL128", "Simple")
    # All instances at once (the same plan as merging each group's, routed in one pass).
    plan_together: Callable[..., tuple[PhasePlan, ...]] | None = None
    min_hosts: int = 1  # hosts the group must span
    max_hosts: int = 0  # at most this many (0: any)
    needs_uniform_hosts: bool = False  # every host holds the same number (>= 2) of the group's GPUs
    one_per_host: bool = False  # every host holds one of the group's GPUs
    max_per_host: tuple[tuple[str, int], ...] = ()  # per op: at most this many GPUs per host
    needs: str = ""  # "nvls" or "sharp": a feature of the interconnect
    auto: bool = True  # one of NCCL's algorithms, tried by `auto`
    # (op, twin): op's plan is twin's, phases renamed (same flows, steps and bytes), so a
    # context routes them once; a 131k-GPU ring takes longer to route than to simulate.
    same_flows: tuple[tuple[str, str], ...] = ()

    def applies(
        self, op: str, hosts: int, uniform: bool, per_host: int, features: Features | None = None
    ) -> bool:
        return not self.why_not(op, hosts, uniform, per_host, features)

    def why_not(
        self, op: str, hosts: int, uniform: bool, per_host: int, features: Features | None = None
    ) -> str:
        """Why the algorithm does not apply to this group shape ('' if it does). Without
        `features` the interconnect is not checked."""
        limit = dict(self.max_per_host).get(op, 0)
        rules = [
            (op not in self.ops, f"{self.name} does not implement {op}"),
            (
                hosts < self.min_hosts,
                (
                    f"{self.name} needs a group spanning >= {self.min_hosts} hosts (this one "
                    f"spans {hosts})"
                ),
            ),
            (
                bool(self.max_hosts) and hosts > self.max_hosts,
                f"{self.name} runs inside one host (NVLink domain); this group spans {hosts}",
            ),
            (
                self.needs_uniform_hosts and not (uniform and per_host >= 2),
                f"{self.name} needs the same number (>= 2) of the group's GPUs on every host",
            ),
            (
                self.one_per_host and not (uniform and per_host == 1),
                f"{self.name} needs one GPU per host",
            ),
            (
                bool(limit) and per_host > limit,
                f"{self.name} {op} takes at most {limit} GPUs per host",
            ),
            (
                features is not None and self.needs == "nvls" and not features.nvls,
                f"{self.name} needs NVLink SHARP (a topology with `nvls: true`, Hopper or later, not disabled)",
            ),
            (
                features is not None and self.needs == "sharp" and not features.sharp,
                f"{self.name} needs in-network reduction (a fabric with `sharp: true`)",
            ),
        ]
        return next((why for bad, why in rules if bad), "")


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        # Ring reduce-scatter and all-gather: p-1 steps of S/p from every rank to its successor.
        Algorithm(
            name="ring",
            plan=plan_ring,
            plan_together=plan_ring_together,
            ops=("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce"),
            same_flows=(("reduce_scatter", "all_gather"),),
        ),
        Algorithm(name="tree", plan=plan_tree, ops=("all_reduce",), family="tree", min_hosts=2),
        Algorithm(
            name="nvls",
            plan=plan_nvls,
            ops=("all_reduce", "all_gather", "reduce_scatter"),
            family="nvls",
            protocols=("Simple",),
            max_hosts=1,
            needs="nvls",
            # NCCL v2.27 enqueue.cc: NVLS all-gather / reduce-scatter need localRanks <=
            # NCCL_MAX_NVLS_ARITY (32); all-reduce has no limit.
            max_per_host=(("all_gather", 32), ("reduce_scatter", 32)),
        ),
        Algorithm(
            name="nvls_tree",
            plan=plan_nvls_tree,
            ops=("all_reduce",),
            family="nvls_tree",
            protocols=("Simple",),
            min_hosts=2,
            needs_uniform_hosts=True,
            needs="nvls",
        ),
        Algorithm(
            name="collnet",
            plan=plan_collnet,
            ops=("all_reduce",),
            family="collnet",
            protocols=("Simple",),
            min_hosts=2,
            needs_uniform_hosts=True,
            needs="sharp",
        ),
        Algorithm(
            name="pat",
            plan=plan_pat,
            plan_together=plan_pat_together,
            ops=("all_gather", "reduce_scatter"),
            family="pat",
            protocols=("Simple",),
            min_hosts=2,
            one_per_host=True,
        ),
        Algorithm(
            name="hierarchical",
            plan=plan_hierarchical,
            ops=("all_reduce",),
            min_hosts=2,
            needs_uniform_hosts=True,
            auto=False,
        ),
        # All-to-all as grouped sends (NCCL: ncclGroupStart + send/recv to every peer), with the
        # ring's calibration row and its fitted fill, not a lone send's (p2p below): XLA's
        # measured H100 all-to-all table (collectives.yaml, xla-h100-alltoall-*) has a 47-75 us
        # intercept from 64 MiB to 2 GiB, the ring fill's size on H100's NVLink, where a
        # one-chunk fill gives ~13 us. Planned from per-host counts on fat trees
        # (all_to_all.py), from every pair's routed flow elsewhere (direct.py).
        Algorithm(
            name="direct",
            plan=plan_all_to_all,
            ops=("all_to_all",),
            plan_together=plan_all_to_all_together,
        ),
        # DeepEP's normal kernels (the deepep dispatcher's two hops): the all-to-all's flows,
        # pipelined in chunks of a few tokens rather than NCCL's ring-sized units, so with a
        # send's calibration row and its one-chunk fill. DeepEP V1's tests tune RDMA chunks of
        # 4-32 tokens and NVLink chunks of 4-44 (tests/legacy/test_internode.py; 16 tokens of
        # 7,168 FP8 bytes = 115 KB, about NCCL_P2P_NET_CHUNKSIZE's 128 KiB). Chosen on DeepEP's
        # published RDMA bandwidths (collectives.yaml, deepep-v1-h800-*: calibration).
        Algorithm(
            name="deepep",
            plan=plan_all_to_all,
            ops=("all_to_all",),
            plan_together=plan_all_to_all_together,
            family="p2p",
            protocols=P2P_PROTOCOLS,
            auto=False,
        ),
        Algorithm(
            name="p2p",
            plan=plan_p2p,
            ops=("send",),
            plan_together=plan_p2p_together,
            family="p2p",
            protocols=P2P_PROTOCOLS,
        ),
    )
}
