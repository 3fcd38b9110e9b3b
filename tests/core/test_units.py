"""Unit parsing: decimal vs binary prefixes, bits vs bytes (ARCHITECTURE.md conventions), and
no quantity without its unit (a bare 80 or "80": GiB? GB? bytes?), except nccl-tests' --sizes,
where a bare number is bytes and the letters are binary, as nccl-tests reads -b/-e."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core.units import (
    UnitError,
    fmt_bytes,
    parse_bandwidth,
    parse_bytes,
    parse_duration,
    parse_flops_rate,
    parse_size_range,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("80 GiB", 80 * 2**30),
        ("80GiB", 80 * 2**30),
        ("25 MB", 25_000_000),
        ("512 KiB", 512 * 1024),
        ("1.5 GB", 1_500_000_000),
        ("8 Gb", 1_000_000_000),  # lowercase b: bits
        ("1024 B", 1024),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("400 Gb/s", 400e9 / 8),  # NDR InfiniBand: 50 GB/s per direction
        ("200 Gbps", 25e9),  # HDR
        ("450 GB/s", 450e9),
        ("300GB/s", 300e9),
    ],
)
def test_parse_bandwidth(text, expected):
    assert parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [("2 us", 2e-6), ("1.5 ms", 1.5e-3), ("30 days", 30 * 86400.0), ("700 ns", 7e-7)],
)
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
    assert parse_bytes(f"{n} B") == n
    assert parse_bytes(f"{n} bytes") == n


@given(st.integers(min_value=1, max_value=2**50))
def test_nccl_bare_sizes_are_bytes(n):
    assert parse_size_range(str(n)) == [n]


# ---- no quantity without its unit -------------------------------------------------------


@pytest.mark.parametrize(
    "parse, bare, unit",
    [
        (parse_bytes, "80", "GiB"),
        (parse_bytes, 80, "GiB"),
        (parse_bytes, 80.0, "GiB"),
        (parse_bytes, "1e9", "GiB"),
        (parse_bandwidth, "400", "Gb/s"),
        (parse_bandwidth, 400, "Gb/s"),
        (parse_bandwidth, "1e9", "Gb/s"),
        (parse_duration, "2", "us"),
        (parse_duration, 2, "us"),
        (parse_duration, 0.5, "us"),
        (parse_flops_rate, "312", "TFLOP/s"),
        (parse_flops_rate, 312e12, "TFLOP/s"),
    ],
)
def test_bare_numbers_are_refused_naming_the_unit(parse, bare, unit):
    with pytest.raises(UnitError) as err:
        parse(bare)
    assert "no unit" in str(err.value) and unit in str(err.value)


def test_the_refusal_shows_the_number_with_a_unit():
    with pytest.raises(UnitError, match="e.g. '400 Gb/s'"):
        parse_bandwidth(400)
    with pytest.raises(UnitError, match="e.g. '80 GiB'"):
        parse_bytes("80")


@pytest.mark.parametrize(
    "parse, text",
    [
        (parse_bytes, "80 G"),
        (parse_bytes, "80 Gi"),
        (parse_bandwidth, "400 G"),
        (parse_bandwidth, "400 Gb"),
        (parse_duration, "2 parsecs"),
        (parse_flops_rate, "312 T"),
    ],
)
def test_a_prefix_is_not_a_unit(parse, text):
    with pytest.raises(UnitError, match="expected"):
        parse(text)


@pytest.mark.parametrize(
    "parse, text",
    [
        (parse_bytes, "1e999 GB"),
        (parse_bandwidth, "1e999 GB/s"),
        (parse_duration, "1e999 s"),
        (parse_flops_rate, "1e999 TFLOP/s"),
    ],
)
def test_infinite_quantities_are_refused(parse, text):
    with pytest.raises(UnitError, match="finite"):
        parse(text)


@pytest.mark.parametrize("parse", [parse_bytes, parse_bandwidth, parse_duration, parse_flops_rate])
@pytest.mark.parametrize("value", [None, [80, "GiB"], {"GiB": 80}, True])
def test_non_text_is_refused(parse, value):
    with pytest.raises(UnitError, match="expected"):
        parse(value)


# ---- prefixes and bits, by hand ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 kB", 1000),
        ("1 KB", 1000),
        ("1 KiB", 1024),
        ("1 MB", 1000 * 1000),
        ("1 MiB", 1024 * 1024),
        ("1 GB", 1000**3),
        ("1 GiB", 1024**3),
        ("1 TB", 1000**4),
        ("1 TiB", 1024**4),
        ("1 PB", 1000**5),
        ("1 PiB", 1024**5),
        ("16 b", 2),
        ("1 kb", 125),
        ("1 Kib", 128),
        ("1 Gbit", 125_000_000),
    ],
)
def test_binary_and_decimal_prefixes_bits_and_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 Gb/s", 125e6),
        ("1 GB/s", 1e9),
        ("1 GiB/s", 1024**3),
        ("8 Mbit/s", 1e6),
        ("100 Gbps", 12.5e9),
        ("1 TB/s", 1e12),
    ],
)
def test_bandwidths_bits_and_bytes(text, expected):
    assert parse_bandwidth(text) == pytest.approx(expected)


# ---- nccl-tests --sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1K", 1024),
        ("1k", 1024),
        ("1M", 1024**2),
        ("1m", 1024**2),
        ("1G", 1024**3),
        ("8G", 8 * 1024**3),
        ("1T", 1024**4),
        ("1P", 1024**5),
        ("4096", 4096),
        # a unit written out is taken as written
        ("1 MB", 1000**2),
        ("1 MiB", 1024**2),
        ("1 kB", 1000),
    ],
)
def test_nccl_size_letters_are_binary(text, expected):
    assert parse_size_range(text) == [expected]


@pytest.mark.parametrize("text", ["1X", "1e9", "1.5K", "2P", "1E", "-1K", "K", "1KK"])
def test_nccl_sizes_refuse_unknown_suffixes_and_more_than_1P(text):
    with pytest.raises(UnitError):
        parse_size_range(text)


def test_nccl_range_to_1P_is_every_doubling():
    sizes = parse_size_range("1..1P")
    assert len(sizes) == 51 and sizes[0] == 1 and sizes[-1] == 2**50


def test_collective_cli_refuses_an_unknown_size_letter(capsys):
    from simulator.cli.main import main

    assert main(["collective", "--topology", "dgx-a100", "--sizes", "1K..1X"]) == 2
    assert "--sizes" in capsys.readouterr().err


def test_fmt_bytes():
    assert fmt_bytes(120e9) == "120.00 GB"
    assert fmt_bytes(80 * 2**30, binary=True) == "80.00 GiB"
