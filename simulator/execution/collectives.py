"""The step's collectives on the topology's network model: each collective's cost on its group
instances (memoized), the fluid or analytic network it runs on, and the SMs its NCCL kernel
holds (nccl_tables). The engine starts collectives through `Comm.start`."""

from __future__ import annotations

from simulator.execution.schedule import Collective
from simulator.system.comm import nccl_tables
from simulator.system.comm.cost import CollectiveCost, CommContext
from simulator.system.comm.network import AnalyticNetwork, FluidNetwork, make_network
from simulator.system.topology.builders.built import VERTEX_CODE

# Concurrent instances of one collective (e.g. the 8 rail groups of HSDP's replica all-reduce,
# or every pipeline's send at a stage boundary) go on the network together as one transfer, up
# to this many (routing them all is one vectorized plan); beyond it the first ones stand for all.
MAX_INSTANCES = 4096


class Comm:
    """The step's collectives on the topology's network model (fluid sharing or analytic)."""

    def __init__(self, comm: CommContext, algorithm: str, backend: str):
        self.ctx, self.algorithm, self.backend = comm, algorithm, backend
        # made on the first collective, for the engine's environment
        self.network: FluidNetwork | AnalyticNetwork | None = None
        # (op, group, size, peers, scope, together) -> its cost
        self._costs: dict[tuple, CollectiveCost] = {}
        self._instances: dict[tuple, list[int]] = {}
        self._one_host: dict = {}
        self._nics: int | None = None  # NICs per host, counted once
        self._ctas: dict[tuple, int] = {}

    def instances(self, coll: Collective, scope: tuple) -> list[int]:
        """The instances of the group that run the collective together: those in its pipeline
        stage (unless it spans stages), at most MAX_INSTANCES of them."""
        key = (coll.group, scope)
        if key not in self._instances:
            mesh_dims = dict(coll.group.mesh.dims)
            fixed = {"pp": scope[0]} if "pp" in mesh_dims and "pp" not in coll.group.dims else {}
            self._instances[key] = coll.group.instances_at(fixed)[:MAX_INSTANCES]
        return self._instances[key]

    def cost(self, coll: Collective, scope: tuple = (0,), together: bool = True) -> CollectiveCost:
        """The collective on its group instances in the scope, as one transfer (or on the first only)."""
        key = (
            coll.op,
            coll.group,
            coll.size_bytes,
            coll.peers,
            scope,
            together,
            coll.algorithm,
        )  # a send's tag does not matter
        if key not in self._costs:  # a dict hit avoids re-hashing big group tuples
            chosen = self.instances(coll, scope) if together else self.instances(coll, scope)[:1]
            ranks = coll.group.ranks_of(chosen)
            if coll.peers is not None:  # two stages of one pipeline: their ranks in each instance
                ranks = ranks[:, list(coll.peers)]
            algorithm = "p2p" if coll.op == "send" else coll.algorithm or self.algorithm
            groups = tuple(map(tuple, ranks.tolist()))
            self._costs[key] = self.ctx.cost_together(coll.op, groups, coll.size_bytes, algorithm)
        return self._costs[key]

    def start(self, env, coll: Collective, scope: tuple = (0,)):
        if self.network is None or self.network.env is not env:
            self.network = make_network(self.backend, env, self.ctx)
        if coll.group.dims == ("tp",) and self._in_one_host(coll):
            # A tensor-parallel group inside one NVLink domain shares no link with the other
            # stages' or the data-parallel traffic (which leaves through the NICs), so its
            # standalone time is its time.
            return env.timeout(self.cost(coll, scope, together=False).time_s)
        # Every group instance in the scope runs together, pipelines' sends included: their
        # transfers share the fabric's links, spread by the topology's routing policy.
        return self.network.start(self.cost(coll, scope))

    def ctas(self, coll: Collective, scope: tuple = (0,)) -> int:
        """The CTAs the collective's NCCL kernel holds on each GPU while it runs (nccl_tables);
        memoized by names, which hash faster than the group."""
        key = (coll.op, coll.group.name, coll.size_bytes, coll.peers, scope, coll.algorithm)
        if key not in self._ctas:
            self._ctas[key] = self._count_ctas(coll, scope)
        return self._ctas[key]

    def _count_ctas(self, coll: Collective, scope: tuple) -> int:
        cost = self.cost(coll, scope, together=False)
        if cost.algorithm == "none":
            return 0
        if cost.algorithm == "p2p":
            return nccl_tables.P2P_CTAS
        if cost.algorithm in ("nvls", "nvls_tree"):
            return self.ctx.figures.nvls_channels[0 if cost.algorithm == "nvls" else 1]
        if self._in_one_host(coll):
            return nccl_tables.COLL_CTAS
        return min(nccl_tables.COLL_CTAS, nccl_tables.CTAS_PER_NIC * self._nics_per_host())

    def _nics_per_host(self) -> int:
        if self._nics is None:
            topo = self.ctx.topology
            nics = int((topo.vertex_kind == VERTEX_CODE["nic"]).sum())
            self._nics = max(nics // topo.num_hosts, 1)
        return self._nics

    def _in_one_host(self, coll: Collective) -> bool:
        if coll.group not in self._one_host:
            hosts = self.ctx.topology.hosts[list(coll.group.ranks(0))]
            self._one_host[coll.group] = bool((hosts == hosts[0]).all())
        return self._one_host[coll.group]
