"""Host-local all-to-alls of many groups (DeepEP's NVLink hop) are routed in one call
(all_to_all._plan_direct_in_hosts): each group's phase is plan_direct's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.system.comm.algorithms.all_to_all import (
    _plan_direct_in_hosts,
    plan_all_to_all_together,
)
from simulator.system.comm.algorithms.base import merge_phases
from simulator.system.comm.algorithms.direct import plan_direct
from simulator.system.topology.loader import load_topology


def _same(a, b) -> None:
    assert a.name == b.name
    np.testing.assert_array_equal(a.edge_ids, b.edge_ids)
    assert a.unit_load.tobytes() == b.unit_load.tobytes()
    assert (a.n_steps, a.net_steps, a.path_latency_s) == (b.n_steps, b.net_steps, b.path_latency_s)
    assert a.sent_per_rank.tobytes() == b.sent_per_rank.tobytes()
    assert a.recv_per_rank.tobytes() == b.recv_per_rank.tobytes()


@pytest.mark.parametrize("topology", ["h100-ndr-cluster", "h800-ib-cluster"])
@pytest.mark.parametrize("per_group", [2, 4, 8])
def test_each_groups_phase_is_plan_directs(topology, per_group):
    topo = load_topology(topology, 4)
    # groups in their hosts, GPUs out of order, two groups on one host where they fit
    rng = np.random.default_rng(per_group)
    groups = []
    for host in range(4):
        gpus = rng.permutation(np.arange(host * 8, host * 8 + 8)).tolist()
        groups += [tuple(gpus[i : i + per_group]) for i in range(0, 8, per_group)][:2]
    mine = _plan_direct_in_hosts(topo, "all_to_all", groups)
    assert len(mine) == len(groups)
    for got, g in zip(mine, groups):
        _same(got, plan_direct(topo, "all_to_all", g)[0])
    (together,) = plan_all_to_all_together(topo, "all_to_all", groups)
    _same(together, merge_phases([plan_direct(topo, "all_to_all", g)[0] for g in groups]))
