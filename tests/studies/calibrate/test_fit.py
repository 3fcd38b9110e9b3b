"""Fitting: identifiability on a toy model (checkable by hand), and the acceptance check that
synthetic nccl-tests files written from known constants give those constants back within 2%."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.studies.calibrate.collectives import NcclInput
from simulator.studies.calibrate.fit import Dataset, fit, leave_one_out, select
from simulator.studies.calibrate.study import calibrate
from simulator.system.comm.calibration import NCCL_CALIBRATION, busbw_factor
from simulator.system.comm.cost import CommContext
from simulator.system.knobs import with_comm
from simulator.system.topology.loader import load_topology
from tests.studies.calibrate.nccl_format import dgx_ranks, footer, header, row, timing

E2E, MEM, GEMM, ATT = (
    "compute.toy.end_to_end",
    "compute.toy.memory",
    "compute.toy.gemm",
    "compute.toy.attention",
)
A = np.array([1.0, 2.0, 0.5, 3.0, 1.5])  # GEMM-bound seconds at fraction 1 (toy)
B = np.array([0.2, 0.1, 0.6, 0.3, 0.05])  # memory-bound seconds at fraction 1


def toy(v: dict[str, float]) -> np.ndarray:
    # t = A / (gemm x e2e) + B / (memory x e2e): gemm and end_to_end only appear as a product;
    # attention appears nowhere.
    return A / (v[GEMM] * v[E2E]) + B / (v[MEM] * v[E2E])


DEFAULTS = {E2E: 0.75, MEM: 0.8, GEMM: 0.87, ATT: 0.6}
TRUTH = {**DEFAULTS, E2E: 0.6, MEM: 0.5}


def toy_data() -> Dataset:
    return Dataset(
        ids=tuple(f"r{i}" for i in range(5)),
        groups=tuple(f"r{i}" for i in range(5)),
        measured=toy(TRUTH),
        predict=toy,
    )


def test_selection_says_why_constants_stay_at_their_defaults():
    sel = select(toy_data(), [E2E, MEM, GEMM, ATT], DEFAULTS)
    assert sel.chosen == (E2E, MEM)
    held = dict(sel.held)
    assert held[GEMM].startswith(f"not separable from {E2E}")
    assert held[ATT].startswith("no measurement depends on it")


def test_fit_recovers_the_toy_constants_and_leave_one_out_is_exact_on_exact_data():
    data = toy_data()
    values = fit(data, (E2E, MEM), DEFAULTS, start={E2E: 0.9, MEM: 0.3})
    assert values[E2E] == pytest.approx(0.6, rel=1e-4) and values[MEM] == pytest.approx(
        0.5, rel=1e-4
    )
    assert values[GEMM] == DEFAULTS[GEMM]
    loo = leave_one_out(data, (E2E, MEM), DEFAULTS)
    np.testing.assert_allclose(loo, data.measured, rtol=1e-4)


def test_fit_stays_within_physical_bounds():
    data = Dataset(
        ids=("a",),
        groups=("a",),
        measured=np.array([0.5]),
        predict=lambda v: np.array([1.0 / v[E2E]]),
    )
    # 1 / e2e = 0.5 would need e2e = 2: the bound (1.0) holds.
    assert fit(data, (E2E,), DEFAULTS)[E2E] == pytest.approx(1.0)


# ------------------------------------------------------------------ synthetic nccl-tests files

KNOWN = {
    "nccl.ampere.nvlink_efficiency": 0.72,
    "nccl.ampere.step_latency": 2.5e-6,
    "nccl.ring_fill_steps": 5.0,
    "nccl.ampere.ib_efficiency": 0.88,
    "nccl.ampere.net_step_latency": 4.0e-6,
}


def _write(path, op: str, binary: str, hosts: int, cal) -> None:
    """nccl-tests output of `op` on `hosts` DGX A100 hosts, timed by the model under `cal`."""
    topo = load_topology("dgx-a100", hosts if hosts > 1 else None)
    ctx = CommContext(topo, cal)
    if op == "send":  # sendrecv_perf between one GPU on each of two hosts
        ranks, groups, factor = (
            [("node00", 0, "A100"), ("node01", 0, "A100")],
            ((0, 8), (8, 0)),
            1.0,
        )
    else:
        ranks, groups, factor = (
            dgx_ranks(hosts),
            (tuple(range(8 * hosts)),),
            busbw_factor(op, 8 * hosts),
        )
    lines = [f"# Collective test starting: {binary}", *header(len(ranks) // hosts, 8, 2**33, ranks)]
    for k in range(3, 34):
        t = ctx.cost_together(op, groups, 2**k, "p2p" if op == "send" else "auto").time_s
        tm = timing(2**k, t, factor)
        lines.append(
            row(2**k, 2**k // 4, "float", "none" if op == "all_gather" else "sum", -1, tm, tm)
        )
    path.write_text("\n".join([*lines, *footer(1.0)]) + "\n")


def test_synthetic_nccl_tests_recover_the_constants_they_were_written_with(tmp_path):
    cal = with_comm(NCCL_CALIBRATION, KNOWN)
    files = [
        ("ar.txt", "all_reduce", "all_reduce_perf", 1),
        ("ag.txt", "all_gather", "all_gather_perf", 1),
        ("ar2.txt", "all_reduce", "all_reduce_perf", 2),
        ("sr.txt", "send", "sendrecv_perf", 2),
    ]
    for name, op, binary, hosts in files:
        _write(tmp_path / name, op, binary, hosts, cal)
    # Start away from the truth, on both sides (IB at 1.0 is on the flat side: PCIe is the bottleneck).
    start = {k: v * (1.15 if i % 2 else 0.87) for i, (k, v) in enumerate(KNOWN.items())}
    result = calibrate(
        [NcclInput(path=str(tmp_path / f[0]), topology="dgx-a100") for f in files],
        loo=False,
        start=start,
    )
    (part,) = result.parts
    # The bandwidth scale comes first and spans every link kind: of NVLink and IB, the data pin the
    # scale and one efficiency (the other is their combination), so the achieved efficiency of each
    # link (efficiency x scale) is what the files were written with.
    scale = part.values["nccl.bandwidth_scale"]
    for name, value in KNOWN.items():
        if name.endswith("_efficiency"):
            assert part.values[name] * scale == pytest.approx(value, rel=0.02), name
            continue
        assert name in part.selection.chosen
        assert part.values[name] == pytest.approx(value, rel=0.02), name
    assert np.abs(part.after).max() < 0.01
