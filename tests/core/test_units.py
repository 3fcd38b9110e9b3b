"""Unit parsing: decimal vs binary prefixes, bits vs bytes (ARCHITECTURE.md conventions)."""

import pytest
from hypothesis import given, strategies as st

from simulator.core.units import (
    UnitError, fmt_bytes, parse_bandwidth, parse_bytes, parse_duration, parse_flops_rate, parse_size_range,
)


@pytest.mark.parametrize("text, expected", [
    ("80 GiB", 80 * 2**30),
    ("80GiB", 80 * 2**30),
    ("25 MB", 25_000_000),
    ("512 KiB", 512 * 1024),
    ("1.5 GB", 1_500_000_000),
    ("8 Gb", 1_000_000_000),   # lowercase b: bits
    (1024, 1024),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("400 Gb/s", 400e9 / 8),    # NDR InfiniBand: 50 GB/s per direction
    ("200 Gbps", 25e9),         # HDR
    ("450 GB/s", 450e9),
    ("300GB/s", 300e9),
])
def test_parse_bandwidth(text, expected):
    assert parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize("text, expected", [("2 us", 2e-6), ("1.5 ms", 1.5e-3), ("30 days", 30 * 86400.0),
                                            ("700 ns", 7e-7)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


def test_parse_flops_rate():
    assert parse_flops_rate("312 TFLOP/s") == pytest.approx(312e12)


@pytest.mark.parametrize("bad", ["80 GiBs", "eighty GB", "-5 GB", "", "80 parsecs", True])
def test_bad_sizes_say_what_was_expected(bad):
    with pytest.raises(UnitError, match="expected"):
        parse_bytes(bad)


def test_bandwidth_needs_a_rate():
    with pytest.raises(UnitError, match="400 Gb/s"):
        parse_bandwidth("400 GiB")
    with pytest.raises(UnitError):
        parse_bandwidth("0 GB/s")


def test_nccl_size_range_doubles_with_binary_prefixes():
    # nccl-tests -b 1K -e 8K -f 2 -> 1024, 2048, 4096, 8192
    assert parse_size_range("1K..8K") == [1024, 2048, 4096, 8192]
    assert parse_size_range("1024,65536") == [1024, 65536]
    assert parse_size_range("1K..8G")[-1] == 8 * 2**30


@given(st.integers(min_value=0, max_value=10**15))
def test_byte_counts_round_trip(n):
    assert parse_bytes(str(n)) == n
    assert parse_bytes(f"{n} B") == n


def test_fmt_bytes():
    assert fmt_bytes(120e9) == "120.00 GB"
    assert fmt_bytes(80 * 2**30, binary=True) == "80.00 GiB"
