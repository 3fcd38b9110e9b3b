"""The caches of a process's simulations, owned by one explicit object passed where needed.

Building a topology and routing its collectives dominate a cold run at scale; steps of one
cluster (a sweep's points, the planner's candidates) reuse them. A `SimContext` keeps the
built topologies by (file, modification time, host count, degraded links) and one
`CommContext` (plans, costs, network rates) per topology and calibration. Nothing is cached
in module globals or inside frozen objects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from simulator.core.cache import Memo
from simulator.spec.specs import ClusterSpec, DegradedLink
from simulator.system.comm.calibration import NCCL_CALIBRATION, Calibration
from simulator.system.comm.cost import CommContext
from simulator.system.topology.graph import Topology
from simulator.system.topology.loader import TopologyInfos, load_topology


class SimContext:
    def __init__(self, max_topologies: int = 8):
        self._topologies: Memo[Topology] = Memo(max_topologies)
        self._comms: Memo[CommContext] = Memo(2 * max_topologies)
        # The topology files' validation and size, for resolving scenarios (scenario/resolve.py).
        self.topology_infos = TopologyInfos()

    @staticmethod
    def _key(cluster: ClusterSpec) -> tuple:
        path = Path(cluster.topology_ref)
        mtime = path.stat().st_mtime_ns if path.is_file() else 0
        return (cluster.topology_ref, mtime, cluster.num_hosts, cluster.degraded_links)

    def topology(self, cluster: ClusterSpec) -> Topology:
        """The cluster's topology, built once, with its degraded links applied."""
        return self._topologies.get(
            self._key(cluster),
            lambda: degrade(
                load_topology(cluster.topology_ref, num_hosts=cluster.num_hosts),
                cluster.degraded_links,
            ),
        )

    def comm(
        self, cluster: ClusterSpec, calibration: Calibration = NCCL_CALIBRATION, nvls: bool = True
    ) -> CommContext:
        """The collective-cost caches of the cluster's topology under a calibration, for its GPUs'
        architecture, with NVLink SHARP on or off (NCCL_NVLS_ENABLE)."""
        arch = cluster.gpu.arch
        return self._comms.get(
            (self._key(cluster), calibration, arch, nvls),
            lambda: CommContext(self.topology(cluster), calibration, arch=arch, nvls=nvls),
        )


def degrade(topo: Topology, links: tuple[DegradedLink, ...]) -> Topology:
    """A copy of the topology with some links at a fraction of their bandwidth."""
    if not links:
        return topo
    index = {edge: i for i, edge in enumerate(topo.edges)}
    bw = topo.bw_bytes_per_s.copy()
    for link in links:
        pairs = [(link.source, link.target)] + (
            [(link.target, link.source)] if link.both_directions else []
        )
        for pair in pairs:
            if pair in index:
                bw[index[pair]] *= link.bandwidth_factor
    return dataclasses.replace(topo, bw_bytes_per_s=bw)
