"""The nccl-tests reader on hand-written outputs in the binaries' own layout (fixtures/): every row
used or skipped with its line and reason, failed runs and files without a table refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.core.errors import UserError
from simulator.core.resources import data_dir
from simulator.studies.calibrate.collectives import CollectiveData, NcclInput, parse_inputs
from simulator.studies.calibrate.nccl_tests import binary_of, parse_nccl_tests, read_nccl_tests

FIXTURES = Path(__file__).parent / "fixtures"


def test_single_node_table_both_blocks():
    f = read_nccl_tests(FIXTURES / "all_reduce_perf_8xa100.txt")
    (section,) = f.sections
    assert [r.size for r in f.rows] == [8, 128, 2048, 32768, 524288, 8388608, 134217728, 2147483648]
    first, last = f.rows[0], f.rows[-1]
    assert (first.line, first.count, first.dtype, first.redop, first.root) == (
        16,
        2,
        "float",
        "sum",
        -1,
    )
    assert [(b.name, b.time_us) for b in first.blocks] == [
        ("out-of-place", 31.52),
        ("in-place", 30.99),
    ]
    assert (last.blocks[1].time_us, last.blocks[1].algbw, last.blocks[1].busbw) == (
        16698.0,
        128.61,
        225.06,
    )
    assert len(section.ranks) == 8 and {r.host for r in section.ranks} == {"dgx-a100-01"}
    assert [r.device for r in section.ranks] == list(range(8))
    assert section.complete and section.wrong_total == 0 and not f.skipped and not f.notes()
    assert (
        binary_of(section, f.path) == "all_reduce_perf"
    )  # from the file name (no "starting" line)


def test_multi_node_newer_layout_with_log_lines():
    f = read_nccl_tests(FIXTURES / "all_gather_2x8xa100_mpi.txt")
    (section,) = f.sections
    assert section.binary == "all_gather_perf"  # "# Collective test starting: all_gather_perf"
    assert len(section.ranks) == 16 and [r.host for r in section.ranks[7:9]] == ["node-a", "node-b"]
    assert [r.size for r in f.rows] == [1024, 65536, 1048576, 16777216, 268435456, 4294967296]
    assert f.rows[-1].redop == "none" and f.rows[-1].blocks[0].time_us == 25530.0
    assert not f.failures and not f.skipped  # NCCL INFO lines are neither rows nor failures


def test_multi_node_group_maps_hosts_in_order():
    data = CollectiveData(
        [NcclInput(path=str(FIXTURES / "all_gather_2x8xa100_mpi.txt"), topology="dgx-a100")]
    )
    topo = data.topologies[0]
    assert topo.num_hosts == 2  # as many hosts as the file names
    t = data.timed[0]
    assert t.op == "all_gather" and t.size == 1024 and len(t.ranks[0]) == 16
    names = [topo.vertices[topo.gpu_vertex[i]][0] for i in t.ranks[0]]
    assert names[:2] == ["h0.gpu0", "h0.gpu1"] and names[8:10] == ["h1.gpu0", "h1.gpu1"]
    assert len(data.timed) == 12 and data.multi_host()  # 6 rows x (out-of-place, in-place)
    assert t.measured_s == pytest.approx(58.21e-6)


def test_tagged_mpirun_output_one_gpu_per_process():
    # mpirun --tag-output prefixes; each process sees its GPU as device 0 (CUDA_VISIBLE_DEVICES).
    data = CollectiveData(
        [NcclInput(path=str(FIXTURES / "sendrecv_perf_2nodes_tagged.txt"), topology="dgx-a100")]
    )
    topo = data.topologies[0]
    t = data.timed[-1]
    assert t.op == "send" and t.algorithm == "p2p" and t.size == 268435456
    pairs = [tuple(topo.vertices[topo.gpu_vertex[i]][0] for i in pair) for pair in t.ranks]
    assert pairs == [("h0.gpu0", "h1.gpu0"), ("h1.gpu0", "h0.gpu0")]  # each rank sends to the next
    assert t.measured_s == pytest.approx(11251e-6)


def test_failed_run_is_refused_naming_the_file_and_the_failure_lines():
    path = FIXTURES / "failed_all_reduce_perf.log"
    with pytest.raises(UserError) as err:
        read_nccl_tests(path)
    text = err.value.render()
    assert str(path) in text and "no usable nccl-tests row" in text
    assert (
        "line 13: the run failed: dgx-a100-07:71802:71842 [5] transport/p2p.cc:275 NCCL WARN Cuda failure"
        in text
    )
    assert "line 15: the run failed: dgx-a100-07: Test NCCL failure common.cu:958" in text


def test_wrong_values_skip_only_that_block():
    f = read_nccl_tests(FIXTURES / "wrong_values_all_reduce_perf.txt")
    assert [len(r.blocks) for r in f.rows] == [2, 1, 2, 2]
    (skip,) = f.skipped
    assert (
        skip.line == 13
        and skip.reason == "in-place: nccl-tests counted 4096 wrong values (its data check failed)"
    )
    assert any("nccl-tests counted 4096 wrong values" in n for n in f.notes())


def test_truncated_noisy_file_reports_every_dropped_piece():
    f = read_nccl_tests(FIXTURES / "truncated_all_reduce_perf.txt")
    assert [r.size for r in f.rows] == [
        1048576,
        2097152,
        4194304,
        8388608,
        16777216,
        33554432,
        67108864,
    ]
    by_line = {k.line: k.reason for k in f.skipped}
    assert by_line[18].startswith("out-of-place: time/algbw/busbw not numbers (-nan 40.51 70.89)")
    assert by_line[21].startswith(
        "out-of-place: time and algbw disagree (size / time = 93.70 GB/s, algbw 75.79)"
    )
    assert by_line[22].startswith("in-place: the line stops after the out-of-place block")
    assert by_line[23].startswith("6 columns where a row has 13")
    assert len(by_line) == 4
    assert [b.name for b in f.rows[-1].blocks] == ["out-of-place"]
    (note,) = f.notes()
    assert (
        note.startswith("line 23: the table stops without nccl-tests' closing lines")
        and "7 rows" in note
    )


def test_unchecked_data_is_used_and_said():
    f = read_nccl_tests(FIXTURES / "alltoall_perf_unchecked.txt")
    assert len(f.rows) == 3 and all(b.wrong is None for r in f.rows for b in r.blocks)
    assert any("6 timings with #wrong N/A" in n for n in f.notes())
    data = CollectiveData(
        [NcclInput(path=str(FIXTURES / "alltoall_perf_unchecked.txt"), topology="dgx-h100")]
    )
    assert {t.op for t in data.timed} == {"all_to_all"}


def test_in_place_only_rows_by_column_position():
    # The shipped Azure table has a blank out-of-place block (as nccl-tests prints one not run).
    f = read_nccl_tests(data_dir("calibration") / "azure-nd-a100-v4-all_reduce_perf.txt")
    assert len(f.rows) == 24 and all([b.name for b in r.blocks] == ["in-place"] for r in f.rows)
    assert f.rows[0].size == 1024 and f.rows[0].blocks[0].time_us == 44.80 and not f.skipped


def test_concatenated_runs_are_sections():
    text = (FIXTURES / "all_reduce_perf_8xa100.txt").read_text() + (
        FIXTURES / "alltoall_perf_unchecked.txt"
    ).read_text()
    f = parse_nccl_tests(text, "two-runs.txt")
    assert [len(s.rows) for s in f.sections] == [8, 3]
    assert [binary_of(s, "two-runs.txt") for s in f.sections] == ["", "alltoall_perf"]


def test_cputime_columns_are_refused_per_block():
    text = (
        (FIXTURES / "all_reduce_perf_8xa100.txt")
        .read_text()
        .replace("    time   algbw", " cputime   algbw")
    )
    f = parse_nccl_tests(text, "x.txt")
    assert not f.rows and all("cputime columns (-C 1)" in k.reason for k in f.skipped)


def test_a_file_that_is_no_nccl_output():
    with pytest.raises(UserError, match="no usable nccl-tests row"):
        read_nccl_tests(Path(__file__))


def test_unknown_collective_and_missing_topology_are_user_errors(tmp_path):
    anonymous = tmp_path / "run.txt"
    anonymous.write_text((FIXTURES / "all_reduce_perf_8xa100.txt").read_text())
    with pytest.raises(UserError, match="which collective is this"):
        CollectiveData([NcclInput(path=str(anonymous), topology="dgx-a100")])
    with pytest.raises(UserError, match="which topology did it run on"):
        parse_inputs([str(anonymous)], None)
    (inp,) = parse_inputs([f"{anonymous}:dgx-h100"], None)
    assert (inp.path, inp.topology) == (str(anonymous), "dgx-h100")


def test_ranks_that_do_not_fit_the_topology(tmp_path):
    with pytest.raises(UserError, match="the file's ranks do not fit"):
        CollectiveData(
            [
                NcclInput(
                    path=str(FIXTURES / "all_reduce_perf_8xa100.txt"),
                    topology="dgx-a100",
                    num_hosts=None,
                    op=None,
                ),
                NcclInput(
                    path=str(FIXTURES / "all_gather_2x8xa100_mpi.txt"),
                    topology="dgx-a100",
                    num_hosts=1,
                ),
            ]
        )


def test_manifest(tmp_path):
    (tmp_path / "m.yaml").write_text(
        f"nccl_tests:\n- file: {FIXTURES / 'all_reduce_perf_8xa100.txt'}\n  topology: dgx-a100\n  nvls: false\n"
        f"- file: {FIXTURES / 'alltoall_perf_unchecked.txt'}\n  topology: dgx-h100\n  algorithm: direct\n"
    )
    a, b = parse_inputs([str(tmp_path / "m.yaml")], None)
    assert (a.topology, a.nvls, b.algorithm) == ("dgx-a100", False, "direct")
    (tmp_path / "bad.yaml").write_text(
        "nccl_tests:\n- file: x.txt\n  topolgy: dgx-a100\n  op: allreduce\n"
    )
    with pytest.raises(UserError) as err:
        parse_inputs([str(tmp_path / "bad.yaml")], None)
    text = err.value.render()
    assert "nccl_tests.0.topolgy: unknown key (did you mean 'topology'?)" in text
    assert (
        "nccl_tests.0.topology: required key is missing" in text
        and "unknown collective 'allreduce'" in text
    )


def test_layout_before_nccl_tests_2_13():
    # Four preamble columns (no root), an "error" column (largest deviation, not a count) and rank
    # lines without "Group" (nccl-tests before v2.13, e.g. 2021 outputs).
    f = read_nccl_tests(FIXTURES / "all_reduce_perf_nccl_tests_2.10.txt")
    (section,) = f.sections
    assert section.columns[:5] == ("size", "count", "type", "redop", "time")
    assert [r.host for r in section.ranks] == ["gpu-node-3"] * 8 and section.ranks[7].device == 7
    assert [r.size for r in f.rows] == [8, 1024, 65536, 1048576, 16777216, 134217728]
    row = f.rows[4]
    assert (row.redop, row.root, len(row.blocks), row.blocks[1].time_us) == ("sum", -1, 2, 283.9)
    assert (
        not f.skipped and section.complete and not f.notes()
    )  # checked: the footer says 0 out of bounds
    # The rank lines name A100-SXM4-40GB: AWS p4d's GPU (dgx-a100 has the 80 GB part).
    data = CollectiveData(
        [NcclInput(path=str(FIXTURES / "all_reduce_perf_nccl_tests_2.10.txt"), topology="aws-p4d")]
    )
    assert len(data.timed) == 12 and data.timed[0].op == "all_reduce"


def test_columns_are_read_by_the_header_names():
    # A table cut down to the times (no algbw / busbw columns) still times its rows.
    text = (
        "#       size         count      type   redop    root     time #wrong     time #wrong\n"
        "     1048576        262144     float     sum      -1    51.20      0    50.66      0\n"
    )
    f = parse_nccl_tests(text, "all_reduce_perf.txt")
    (row,) = f.rows
    assert [(b.name, b.time_us) for b in row.blocks] == [
        ("out-of-place", 51.2),
        ("in-place", 50.66),
    ]
