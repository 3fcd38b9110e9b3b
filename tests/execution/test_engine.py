"""The simpy engine on hand-built schedules with round numbers."""

from __future__ import annotations

from simulator.execution.engine import RankClass, run
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.spec.mesh import Mesh

DP = Mesh(dims=(("dp", 8),)).group("dp")


def fixed_network(seconds_per_byte: float):
    """Every collective takes size x seconds_per_byte (no sharing)."""

    def start(env, coll, scope):
        return env.timeout(coll.size_bytes * seconds_per_byte)

    return start


def test_streams_overlap_and_dependencies_hold():
    b = ScheduleBuilder()
    f = b.add("forward", "compute", "forward", duration_s=1.0, alloc_bytes=100)
    bw1 = b.add("backward 1", "compute", "backward", duration_s=1.0, free_bytes=50)
    ar1 = b.add(
        "all_reduce 1",
        "comm",
        "comm",
        deps=(bw1,),
        collective=Collective(op="all_reduce", group=DP, size_bytes=3),
    )
    bw0 = b.add("backward 0", "compute", "backward", duration_s=1.0, free_bytes=50)
    ar0 = b.add(
        "all_reduce 0",
        "comm",
        "comm",
        deps=(bw0,),
        collective=Collective(op="all_reduce", group=DP, size_bytes=3),
    )
    b.add("optimizer", "compute", "optimizer", deps=(ar1, ar0), duration_s=0.5)
    result = run([RankClass("r", b.build(static_bytes=1000), 2)], fixed_network(1.0))
    iv = {i.name: (i.start_s, i.end_s) for i in result.timelines[0].intervals}
    assert iv["forward"] == (0.0, 1.0)
    assert iv["all_reduce 1"] == (2.0, 5.0)  # overlaps backward 0 (2..3)
    assert iv["backward 0"] == (2.0, 3.0)
    assert iv["all_reduce 0"] == (5.0, 8.0)  # the comm stream is FIFO
    assert iv["optimizer"] == (8.0, 8.5)  # waits for the last all-reduce
    assert result.step_time_s == 8.5
    peak, when, name = result.timelines[0].peak(b.tasks)
    assert (peak, when, name) == (1100, 0.0, "forward")
    del f


def test_collective_waits_for_the_slowest_rank_class():
    def schedule(compute_s):
        b = ScheduleBuilder()
        c = b.add("compute", "compute", "forward", duration_s=compute_s)
        b.add(
            "all_reduce",
            "comm",
            "comm",
            deps=(c,),
            collective=Collective(op="all_reduce", group=DP, size_bytes=2),
        )
        return b.build(0)

    fast, slow = RankClass("fast", schedule(1.0), 7), RankClass("slow", schedule(1.5), 1)
    result = run([fast, slow], fixed_network(1.0))
    assert list(result.collective_times.values()) == [(1.5, 3.5)]
    assert result.step_time_s == 3.5
    fast_iv = {i.name: i for i in result.timelines[0].intervals}
    assert fast_iv["all_reduce"].start_s == 1.0  # it arrived early and waited


def test_frees_apply_before_allocations_at_the_same_instant():
    b = ScheduleBuilder()
    b.add("a", "compute", "forward", duration_s=1.0, alloc_bytes=10, free_bytes=10)
    b.add("b", "compute", "forward", duration_s=1.0, alloc_bytes=10, free_bytes=10)
    result = run([RankClass("r", b.build(5), 1)], fixed_network(0.0))
    assert result.timelines[0].peak(b.tasks)[0] == 15
