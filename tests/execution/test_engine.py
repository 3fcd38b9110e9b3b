"""The simpy engine on hand-built schedules with round numbers."""

from __future__ import annotations

import pytest

from simulator.execution.engine import run
from simulator.execution.schedule import Collective, ScheduleBuilder
from simulator.execution.timeline import RankClass
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


def _overlapped(sm_count: int, ctas: int):
    """A 1 s compute task beside a 0.25 s all-reduce that starts at 0.5 s (after a 0.5 s task
    on the host stream); the step's result with `ctas` CTAs per collective on `sm_count` SMs."""
    b = ScheduleBuilder()
    b.add("compute", "compute", "forward", duration_s=1.0)
    wait = b.add("host work", "host", "forward", duration_s=0.5)
    b.add(
        "all_reduce",
        "comm",
        "comm",
        deps=(wait,),
        collective=Collective(op="all_reduce", group=DP, size_bytes=1),
    )
    rc = RankClass("r", b.build(0), 8, sm_count=sm_count)
    return run([rc], fixed_network(0.25), lambda coll, scope: ctas)


def test_compute_slows_while_a_collective_holds_sms():
    # 100 SMs, 20 held by the all-reduce from 0.5 to 0.75 s: compute runs at 80/100 there.
    # Progress: 0.5 s of work by 0.5 s, 0.25 x 0.8 = 0.2 s more by 0.75 s, the last 0.3 s at
    # full rate: it ends at 1.05 s, 0.05 s (0.25 x 20/100) later than alone.
    result = _overlapped(100, 20)
    iv = {i.name: (i.start_s, i.end_s) for i in result.timelines[0].intervals}
    assert iv["all_reduce"] == (0.5, 0.75)
    assert iv["compute"][1] == pytest.approx(1.05, rel=1e-12)
    assert result.interference_s == pytest.approx((0.05,), rel=1e-12)


def test_no_ctas_or_no_sm_count_leaves_compute_alone():
    for sm_count, ctas in ((100, 0), (0, 20)):
        result = _overlapped(sm_count, ctas)
        iv = {i.name: (i.start_s, i.end_s) for i in result.timelines[0].intervals}
        assert iv["compute"] == (0.0, 1.0)
        assert result.interference_s == (0.0,)


def test_two_collectives_at_once_hold_the_sum_of_their_ctas():
    # Two all-reduces of 10 CTAs each from 0.5 to 0.75 s on 100 SMs: 80 left, as one of 20.
    b = ScheduleBuilder()
    b.add("compute", "compute", "forward", duration_s=1.0)
    wait = b.add("host work", "host", "forward", duration_s=0.5)
    for stream in ("comm", "comm_rs"):
        b.add(
            f"all_reduce on {stream}",
            stream,
            "comm",
            deps=(wait,),
            collective=Collective(op="all_reduce", group=DP, size_bytes=1, tag=stream),
        )
    rc = RankClass("r", b.build(0), 8, sm_count=100)
    result = run([rc], fixed_network(0.25), lambda coll, scope: 10)
    iv = {i.name: (i.start_s, i.end_s) for i in result.timelines[0].intervals}
    assert iv["compute"][1] == pytest.approx(1.05, rel=1e-12)


def test_a_run_of_compute_tasks_is_slowed_task_by_task_where_a_collective_lands():
    # Four 0.25 s compute tasks nobody waits for (one span) with memory on each, beside a
    # 0.25 s all-reduce from 0.375 s to 0.625 s holding 20 of 100 SMs (rate 0.8). By hand:
    # c0 ends at 0.25; c1 does 0.125 s of work by 0.375, the other 0.125 at 0.8 takes
    # 0.15625 s: it ends at 0.53125, inside the collective; c2 does 0.09375 x 0.8 = 0.075 s
    # of work by 0.625, the other 0.175 at full rate: it ends at 0.8; c3 ends at 1.05.
    b = ScheduleBuilder()
    for k in range(4):
        b.add(
            f"c{k}",
            "compute",
            "forward",
            duration_s=0.25,
            alloc_bytes=10 * (k + 1),
            free_bytes=10 * (k + 1),
        )
    wait = b.add("host work", "host", "forward", duration_s=0.375)
    b.add(
        "all_reduce",
        "comm",
        "comm",
        deps=(wait,),
        collective=Collective(op="all_reduce", group=DP, size_bytes=1),
    )
    rc = RankClass("r", b.build(0), 8, sm_count=100)
    result = run([rc], fixed_network(0.25), lambda coll, scope: 20)
    iv = {i.name: (i.start_s, i.end_s) for i in result.timelines[0].intervals}
    expected = {"c0": (0.0, 0.25), "c1": (0.25, 0.53125), "c2": (0.53125, 0.8), "c3": (0.8, 1.05)}
    for name, (start, end) in expected.items():
        assert iv[name] == (pytest.approx(start, rel=1e-12), pytest.approx(end, rel=1e-12))
    # 0.25 s of the collective at 20/100: 0.05 s added, as for one long task
    assert result.interference_s == pytest.approx((0.05,), rel=1e-12)
    # each task's memory is allocated at its start and freed at its end: the peak is c3's
    assert result.timelines[0].peak(b.tasks)[:2] == (40, pytest.approx(0.8, rel=1e-12))
