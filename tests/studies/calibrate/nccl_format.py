"""Writing nccl-tests output for tests: the layout of nccl-tests v2.13 (src/common.cu,
writeDeviceReport / the result header / BenchTime / the footer), so synthetic tables look like
the real thing, byte for byte in their column widths."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    time_us: float
    algbw: float
    busbw: float
    wrong: int | str = 0  # "N/A" when the data check is off


def _time(us: float) -> str:
    # common.cu BenchTime: %7.0f from 10 ms, %7.1f from 100 us, %7.2f below.
    if us >= 10000.0:
        return f"{us:7.0f}"
    if us >= 100.0:
        return f"{us:7.1f}"
    return f"{us:7.2f}"


def block(t: Timing | None) -> str:
    if t is None:
        return " " * 32  # util.cu writeBenchMarkLineNullBody: no out-of-place run
    wrong = f"{t.wrong:>5}" if isinstance(t.wrong, str) else f"{t.wrong:5g}"
    return f"  {_time(t.time_us)}  {t.algbw:6.2f}  {t.busbw:6.2f}  {wrong}"


def row(
    size: int, count: int, dtype: str, redop: str, root: int, oop: Timing | None, ip: Timing | None
) -> str:
    return (
        f"{size:12d}  {count:12d}  {dtype:>8s}  {redop:>6s}  {root:6d}"
        + block(oop)
        + (block(ip) if ip else "")
    )


def header(
    ngpus: int,
    min_bytes: int,
    max_bytes: int,
    ranks: list[tuple[str, int, str]],
    iters: int = 20,
    nthread: int = 1,
) -> list[str]:
    lines = [
        (
            f"# nThread {nthread} nGpus {ngpus} minBytes {min_bytes} maxBytes {max_bytes} step: 2(factor) "
            f"warmup iters: 5 iters: {iters} agg iters: 1 validation: 1 graph: 0"
        ),
        "#",
        "# Using devices",
    ]
    lines += [
        f"#  Rank {r:2d} Group  0 Pid {1000 + r:6d} on {host:>10s} device {dev:2d} [0x{0x07 + 16 * dev:02x}] {gpu}"
        for r, (host, dev, gpu) in enumerate(ranks)
    ]
    lines += [
        "#",
        (
            "#                                                              out-of-place                       "
            "in-place          "
        ),
        (
            f"# {'size':>10s}  {'count':>12s}  {'type':>8s}  {'redop':>6s}  {'root':>6s}  {'time':>7s}  "
            f"{'algbw':>6s}  {'busbw':>6s} {'#wrong':>6s}  {'time':>7s}  {'algbw':>6s}  {'busbw':>6s} {'#wrong':>6s}"
        ),
        (
            f"# {'(B)':>10s}  {'(elements)':>12s}  {'':>8s}  {'':>6s}  {'':>6s}  {'(us)':>7s}  {'(GB/s)':>6s}  "
            f"{'(GB/s)':>6s}  {'':>5s}  {'(us)':>7s}  {'(GB/s)':>6s}  {'(GB/s)':>6s}  {'':>5s}"
        ),
    ]
    return lines


def footer(avg_busbw: float, wrong: int = 0) -> list[str]:
    return [
        f"# Out of bounds values : {wrong} {'FAILED' if wrong else 'OK'}",
        f"# Avg bus bandwidth    : {avg_busbw:g} ",
        "#",
    ]


def timing(size: int, time_s: float, busbw_factor: float) -> Timing:
    """nccl-tests' figures for one timed run: algbw = S / t, busbw = algbw x the op's factor."""
    algbw = size / time_s / 1e9
    return Timing(time_s * 1e6, algbw, algbw * busbw_factor)


def dgx_ranks(
    hosts: int = 1, per_host: int = 8, gpu: str = "NVIDIA A100-SXM4-80GB"
) -> list[tuple[str, int, str]]:
    return [(f"node{h:02d}", d, gpu) for h in range(hosts) for d in range(per_host)]
