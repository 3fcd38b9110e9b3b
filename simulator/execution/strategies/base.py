"""What a data-parallel strategy is: one object that owns, side by side, the validation of its
settings, its process groups, its memory accounting and its schedule.

Adding a strategy is a module with a `Strategy` subclass plus one line in the registry
(`strategies/__init__.py`); the schema's choices, the memory model, the step engine and the
planner all go through the registry.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

from simulator.core.errors import Problem
from simulator.execution.schedule import ScheduleBuilder
from simulator.execution.strategies.passes import StageSchedule
from simulator.spec.mesh import Group, Mesh, fold
from simulator.spec.specs import Scenario, TrainingSpec

if TYPE_CHECKING:
    from simulator.execution.layout import Block, Layout
    from simulator.execution.strategies.common import Context
    from simulator.execution.strategies.passes import Session


@dataclass(frozen=True, kw_only=True)
class StateBytes:
    """Per-rank model states: (params, grads, optimizer) bytes."""

    params: int
    grads: int
    optimizer: int


class PassEdges(NamedTuple):
    """Where a pass begins, while the previous backward pass's last reduce-scatter may still
    hold its unsharded gradient: the first moment of a forward and of a backward pass of the
    chunk, as (label, activations, transient buffers), and the gradient bytes a backward pass
    of the chunk leaves in flight when it ends."""

    forward: tuple[str, int, int] | None = None
    backward: tuple[str, int, int] | None = None
    pending_bytes: int = 0


class Strategy(ABC):
    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str]
    # ZeRO stage: 0 replicates everything, 1 shards optimizer states, 2 also gradients, 3 also
    # parameters (Rajbhandari et al. 2020, Sec 5); orders strategies by memory for suggestions.
    zero_stage: ClassVar[int]
    offload_optimizer: ClassVar[bool] = True  # ZeRO-Offload supported
    offload_params: ClassVar[bool] = False  # ZeRO-Infinity / FSDP CPUOffload supported
    # Context parallelism (training.parallelism.cp > 1) and experts split or folded over other
    # ranks (ep > 1, or an MoE model with tp x cp > 1): gradients then reduce over dp x cp, and
    # expert gradients over the expert-data-parallel group, which only these strategies model.
    context_parallel: ClassVar[bool] = False
    expert_parallel: ClassVar[bool] = False
    # A framework's own refusal of an offload it does not model: "params" / "optimizer" -> (why, instead).
    offload_refusals: ClassVar[dict[str, tuple[str, str]]] = {}

    # ---- validation and groups

    def validate(self, t: TrainingSpec, dp: int) -> list[Problem]:
        """Problems with this strategy's settings, at their field paths."""
        problems = []
        if t.offload.params and not self.offload_params:
            why, instead = self.offload_refusals.get(
                "params",
                (
                    f"parameter offload needs sharded parameters (ZeRO-Infinity / FSDP CPUOffload), not {self.name}",
                    "use strategy: zero3 or hsdp",
                ),
            )
            problems.append(Problem("training.offload.params", why, instead))
        if t.offload.optimizer and not self.offload_optimizer:
            why, instead = self.offload_refusals.get(
                "optimizer",
                (
                    "optimizer offload needs a ZeRO stage (ZeRO-Offload)",
                    "use strategy: zero1, zero2 or zero3",
                ),
            )
            problems.append(Problem("training.offload.optimizer", why, instead))
        return problems

    def dp_dims(self, s: Scenario) -> tuple[tuple[str, int], ...]:
        """This strategy's mesh dimensions (innermost first); one `dp` dimension by default."""
        return (("dp", s.training.parallel.dp),)

    def mesh(self, s: Scenario) -> Mesh:
        """The device mesh: tensor, context (cp > 1 only), data-parallel (these dimensions)
        and pipeline, in the layout's order (innermost first); cp, unless placed, sits right
        after tp (Megatron-Core's rank order tp-cp-ep-dp-pp)."""
        par = s.training.parallel
        order = list(par.order)
        if "cp" not in order:
            order.insert(order.index("tp") + 1, "cp")
        dims: list[tuple[str, int]] = []
        for name in order:
            if name in ("tp", "pp") or (name == "cp" and par.cp > 1):
                dims.append((name, getattr(par, name)))
            elif name != "cp":
                dims.extend(self.dp_dims(s))
        return Mesh(dims=tuple(dims))

    def expert_mesh(self, s: Scenario) -> Mesh:
        """The same ranks folded for the expert layers (Megatron-Core MoE parallel folding):
        etp x ep x edp carved, innermost first, from the tensor, context and data-parallel
        dimensions; pp stays."""
        par = s.training.parallel
        mesh = self.mesh(s)
        over = tuple(d for d, _ in mesh.dims if d != "pp")
        parts = (("etp", par.etp), ("ep", par.ep), ("edp", par.edp))
        return fold(mesh, parts, over)

    def ep_per_host(self, s: Scenario) -> int:
        """Ranks of an expert-parallel group on one host (ranks fill hosts in order: rank r on
        host r // gpus_per_host), the same for every instance of the group; ValueError where the
        hosts hold unequal shares, in one instance or between instances."""
        par = s.training.parallel
        group = self.expert_mesh(s).group("ep")
        hosts = group.ranks_of(list(range(group.count))) // s.cluster.gpus_per_host
        counts: set[int] = set()
        for row in hosts:
            counts.update(np.unique(row, return_counts=True)[1].tolist())
        if len(counts) != 1:
            raise ValueError(
                f"the ep group of {par.ep} ranks spreads unevenly over hosts of "
                f"{s.cluster.gpus_per_host} GPUs (ranks per host: {sorted(counts)})"
            )
        return counts.pop()

    def dispatch_mesh(self, s: Scenario) -> Mesh:
        """The expert mesh with ep split into its ranks on one host (ep_local) and one rank per
        host (ep_node): the two hops of a dispatcher that forwards over NVLink (DeepEP)."""
        par = s.training.parallel
        mesh = self.mesh(s)
        over = tuple(d for d, _ in mesh.dims if d != "pp")
        g = self.ep_per_host(s)
        parts = (
            ("etp", par.etp),
            ("ep_local", g),
            ("ep_node", par.ep // g),
            ("edp", par.edp),
        )
        return fold(mesh, parts, over)

    def moe_groups(self, s: Scenario) -> dict[str, Group]:
        """The expert layers' groups by the mesh dimension a layer's collective names
        (model/ops_common.py COMM_DIMS): ep, etp, edp, their product ep_etp (the allgather
        dispatcher's), and with the deepep dispatcher its two hops ep_local and ep_node."""
        experts = self.expert_mesh(s)
        groups = {d: experts.group(d) for d in ("ep", "etp", "edp")}
        groups["ep_etp"] = experts.group("etp", "ep")
        if s.training.moe.dispatcher == "deepep":
            hops = self.dispatch_mesh(s)
            groups |= {d: hops.group(d) for d in ("ep_local", "ep_node")}
        return groups

    def grad_group(self, s: Scenario) -> Group:
        """The group gradients are reduced (or reduce-scattered) over first: the data-parallel
        ranks, and with context parallelism the cp ranks too, which hold the same parameters
        and other tokens (torchtitan dp_shard_cp; Megatron-Core's data-parallel group with
        context parallelism)."""
        return self.mesh(s).group("dp", *(("cp",) if s.training.parallel.cp > 1 else ()))

    def collectives(self, s: Scenario) -> list[tuple[str, Group]]:
        """The (operation, group) pairs this strategy's step issues (for validating a forced algorithm)."""
        return []

    def shard_degree(self, s: Scenario) -> int:
        """How many ranks share one copy of the sharded states (1: nothing sharded)."""
        par = s.training.parallel
        return par.dp * par.cp if self.zero_stage > 0 else 1

    # ---- memory (the ZeRO paper's accounting; see execution/memory.py)

    def state_bytes(self, params: int, n: int, pb: int, gb: int, k: float) -> StateBytes:
        """Rajbhandari et al. 2020, Table 1: each stage shards one more state over n ranks.
        Shards are ceil(P / n) elements (frameworks pad the flat buffer to n equal parts)."""
        shard = math.ceil(params / n)
        return StateBytes(
            params=(shard if self.zero_stage >= 3 else params) * pb,
            grads=(shard if self.zero_stage >= 2 else params) * gb,
            optimizer=math.ceil((shard if self.zero_stage >= 1 else params) * k),
        )

    def states(self, s: Scenario, lay: Layout, k: float) -> StateBytes:
        """This rank's model states for a stage's parameters (a framework may count its own)."""
        p = s.training.precision
        return self.state_bytes(lay.params, self.shard_degree(s), p.weight_bytes, p.grad_bytes, k)

    @abstractmethod
    def static_buffer_bytes(self, s: Scenario, lay: Layout, pb: int, gb: int) -> int:
        """Buffers held for the whole step."""

    def buffers_at_backward_start(
        self, s: Scenario, blocks: tuple[Block, ...], pb: int, gb: int
    ) -> int:
        """Transient buffers (beyond the static ones) live when a chunk's backward starts at its head."""
        return 0

    def buffers_at_block_backward(
        self, s: Scenario, blocks: tuple[Block, ...], i: int, pb: int, gb: int
    ) -> int:
        """Transient buffers (beyond the static ones) live during block i's backward (of a chunk)."""
        return 0

    def step_transient_bytes(self, s: Scenario, lay: Layout, pb: int, gb: int) -> int:
        """Buffers held during the optimizer step only (after every backward, no activations)."""
        return 0

    def chunk_moments(
        self, s: Scenario, lay: Layout, chunk, acts, pb: int, gb: int
    ) -> list[tuple[str, int, int]] | None:
        """A framework's own peak candidates within one backward pass of a chunk, as (label,
        activations, transient buffers); None: the walk of execution/memory.py with the
        buffers_at_* methods above. `acts` are the chunk's (embedding, kept per block, working
        per block, output) activation bytes."""
        return None

    def grad_elem_bytes(self, s: Scenario) -> int:
        """Bytes per gradient element as this strategy reduces them (the precision's by default)."""
        return s.training.precision.grad_bytes

    def pass_edges(self, s: Scenario, lay: Layout, chunk, acts, pb: int, gb: int) -> PassEdges:
        """A framework's candidates where a pass of the chunk begins, for the walk of
        execution/memory.py to add what the previous pass may leave in flight; none by default."""
        return PassEdges()

    # ---- schedule

    @abstractmethod
    def session(self, ctx: Context, b: ScheduleBuilder) -> Session:
        """This strategy's hooks while one stage's schedule is built."""

    def schedule(self, ctx: Context) -> ScheduleBuilder:
        """One rank's tasks for one optimizer step: the stage's pipeline passes with this
        strategy's communication."""
        b = ScheduleBuilder()
        session = self.session(ctx, b)
        if ctx.scenario.training.finetune.adapters:
            # LoRA / QLoRA: FSDP also gathers the frozen base (strategies/finetune_fsdp.py).
            from simulator.execution.strategies.finetune_fsdp import finetune_session

            session = finetune_session(session, ctx, b)
        StageSchedule(ctx, b, self.grad_elem_bytes(ctx.scenario)).run(session)
        return b
