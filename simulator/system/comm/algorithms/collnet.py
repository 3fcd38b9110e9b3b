"""CollNet (NCCL's CollNetDirect) on a fabric with InfiniBand SHARP: the switches reduce.

Inside each node the GPUs reduce-scatter and all-gather over NVSwitch (each sends and
receives (k-1)/k S per half); across nodes each GPU sends its S/k shard once up its rail and
receives the reduced shard once, the rail's switches summing the nodes' shards in the network
(maintainer, NVIDIA/nccl#457: CollNet moves 2S per GPU inside the node and S per node across
the network, vs. 2S per GPU for a ring). The aggregation tree of rail r climbs from each
node's NIC to its leaf and, when the group spans leaves (pods), to one spine (core) per rail;
each of those links carries the shard once each way.
"""

from __future__ import annotations

import numpy as np

from simulator.system.comm.algorithms.base import PhasePlan, host_matrix, loads_plan, switch_links
from simulator.system.topology.graph import Topology


def plan_collnet(topo: Topology, op: str, group: tuple[int, ...]) -> tuple[PhasePlan, ...]:
    mat = np.array(host_matrix(topo, group)[0])
    h, k = mat.shape
    f = topo.fabric
    assert f is not None, "collnet needs SHARP, which only fabric topologies have"
    hosts, local = np.divmod(mat, topo.gpus_per_host)
    up, down = switch_links(topo, mat.ravel())
    edges, loads = [up, down], [2.0 * (k - 1) / k] * 2
    for c in range(k):
        rail = int(f.rail_of_gpu[local[0, c]])
        edges += [
            _gpu_nic_edges(topo, hosts[:, c], int(local[0, c]), rail),
            f.nic_up[hosts[:, c], rail],
            f.nic_down[hosts[:, c], rail],
            _aggregation_edges(f, hosts[:, c], rail),
        ]
        loads += [1.0 / k] * 4
    _, pair, share = topo.routes(np.array([mat[0, 0]]), np.array([mat[-1, 0]]))
    path = 2 * float((topo.latency_s[pair] * share).sum()) + float(
        topo.latency_s[up].mean() + topo.latency_s[down].mean()
    )
    sent = np.full(h * k, 2.0 * (k - 1) / k + 1.0 / k)
    return (loads_plan("collnet", group, edges, loads, 3, 1, path, sent, sent.copy()),)


def _gpu_nic_edges(topo: Topology, hosts: np.ndarray, gpu: int, rail: int) -> np.ndarray:
    """The PCIe edges from GPU `gpu` to NIC `rail` and back, in every host of `hosts`."""
    router, f = topo.router, topo.fabric
    assert f is not None, "collnet needs SHARP, which only fabric topologies have"
    there = np.asarray(router.local.vertex_path(router.gpu_v[gpu], router.nic_v[rail]), np.int64)
    back = np.asarray(router.local.vertex_path(router.nic_v[rail], router.gpu_v[gpu]), np.int64)
    local = np.concatenate([there, back])
    return (hosts[:, None] * f.host_edge_count + local[None, :]).ravel()


def _aggregation_edges(f, hosts: np.ndarray, rail: int) -> np.ndarray:
    """Leaf -> spine -> leaf (and spine -> core -> spine across pods) of rail `rail`'s tree."""
    leaves = np.unique(f.leaf_of(hosts, np.full(len(hosts), rail)))
    if len(leaves) < 2 or f.leaf_spine.shape[1] == 0:
        return np.zeros(0, np.int64)
    spine = rail % f.leaf_spine.shape[1]
    out = [f.leaf_spine[leaves, spine], f.spine_leaf[leaves, spine]]
    pods = np.unique(hosts // f.hosts_per_pod)
    if len(pods) > 1 and f.spine_core.shape[2]:
        core = rail % f.spine_core.shape[2]
        out += [f.spine_core[pods, spine, core], f.core_spine[pods, spine, core]]
    return np.concatenate(out)
