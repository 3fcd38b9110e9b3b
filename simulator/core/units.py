"""Human quantities <-> internal units, in one place.

Internally: int bytes, float seconds, float bytes/s, float FLOP/s. At the YAML and report
edges: strings such as "80 GiB", "25 MB", "400 Gb/s", "450 GB/s", "2 us", "312 TFLOP/s".
Decimal prefixes are powers of 1000 (GB = 1e9), binary ones powers of 1024 (GiB = 2**30),
as in the ZeRO paper / nccl-tests (GB) and DeepSpeed / nvidia-smi (GiB, MiB).
A lowercase "b" means bits ("400 Gb/s" = 50e9 bytes/s), an uppercase "B" bytes.

Every quantity needs its unit: a bare number (80, 1e9, or the string "80") is refused, since
it is ambiguous (80 GiB? 80 GB? 80 bytes?). The one exception is `--sizes` of `clustersim
collective`, which follows nccl-tests: a bare number there is bytes (nccl-tests' -b/-e).
"""

from __future__ import annotations

import math
import re

_DECIMAL = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}

_NUMBER = r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_BYTES_RE = re.compile(
    _NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|Pi|[kKMGTPE]?)(?P<unit>B|b|bit|bits|byte|bytes)$"
)
_RATE_RE = re.compile(
    _NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|Pi|[kKMGTPE]?)(?P<unit>B/s|Bps|b/s|bps|bit/s|bits/s)$"
)
_TIME_RE = re.compile(_NUMBER + r"\s*(?P<unit>ns|us|µs|ms|s|sec|min|h|hr|d|day|days)$")
_FLOPS_RE = re.compile(_NUMBER + r"\s*(?P<prefix>[kKMGTPE]?)(?:FLOP/s|FLOPS|flop/s|flops)$")
_BARE_RE = re.compile(r"[-+]?" + _NUMBER)

_TIME_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

# nccl-tests' size letters (its parsesize(): K, M, G, either case) are binary: 1K = 1024.
# T and P follow the same rule here (nccl-tests stops at G), so every letter is a power of 1024.
_NCCL_LETTERS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_NCCL_RE = re.compile(r"(?P<num>[0-9]+)\s*(?P<letter>[KMGTPkmgtp]?)")
# The largest --sizes value: 1 PiB, thousands of times any GPU's memory (B200: 180 GB), so
# only a typo goes past it; it also keeps a LOW..HIGH range to at most 51 doublings.
MAX_COLLECTIVE_BYTES = 2**50


class UnitError(ValueError):
    """A quantity string that does not parse; the message says what was expected."""


def _prefix_factor(prefix: str) -> int:
    return _BINARY[prefix] if prefix in _BINARY else _DECIMAL[prefix]


def _text(value: object, what: str, examples: str, unit: str) -> str:
    """`value` as a stripped string; UnitError for a bare number (80, 1e9 or "80": which unit?)
    or anything that is not text, saying which unit is expected with an example."""
    number: int | float | str | None = (
        value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    )
    if isinstance(value, str) and _BARE_RE.fullmatch(value.strip()):
        number = value.strip()
    if number is not None:
        plain = re.fullmatch(r"[0-9]{1,5}(\.[0-9]+)?", str(number))
        example = f"'{number} {unit}'" if plain else examples.split(" or ")[0].split(", ")[0]
        raise UnitError(
            f"{value!r} has no unit: give {what} with its unit, e.g. {example} "
            f"(written like {examples})"
        )
    if not isinstance(value, str):
        raise UnitError(f"expected {what} such as {examples}, got {value!r}")
    return value.strip()


def _finite(amount: float, value: object, what: str) -> float:
    if not math.isfinite(amount):
        raise UnitError(f"expected a finite {what}, got {value!r}")
    return amount


def parse_bytes(value: str) -> int:
    """'80 GiB' -> 85899345920; '25 MB' -> 25000000; '8 Gb' (bits) -> 1000000000."""
    examples = "'80 GiB', '25 MB' or '512 KiB'"
    m = _BYTES_RE.match(_text(value, "a size", examples, "GiB"))
    if not m:
        raise UnitError(f"expected a size such as {examples}, got {value!r}")
    amount = float(m["num"]) * _prefix_factor(m["prefix"])
    if m["unit"] in ("b", "bit", "bits"):
        amount /= 8
    return round(_finite(amount, value, "size"))


def parse_bandwidth(value: str) -> float:
    """'400 Gb/s' -> 5e10 bytes/s; '450 GB/s' -> 4.5e11."""
    examples = "'400 Gb/s' or '450 GB/s'"
    m = _RATE_RE.match(_text(value, "a bandwidth", examples, "Gb/s"))
    if not m:
        raise UnitError(f"expected a bandwidth such as {examples}, got {value!r}")
    rate = float(m["num"]) * _prefix_factor(m["prefix"])
    if not m["unit"].startswith("B"):
        rate /= 8
    if rate <= 0:
        raise UnitError(f"expected a positive bandwidth, got {value!r}")
    return _finite(rate, value, "bandwidth")


def parse_duration(value: str) -> float:
    """'2 us' -> 2e-6 s; '30 days' -> 2592000.0 s."""
    examples = "'2 us', '1.5 ms' or '30 days'"
    m = _TIME_RE.match(_text(value, "a duration", examples, "us"))
    if not m:
        raise UnitError(f"expected a duration such as {examples}, got {value!r}")
    return _finite(float(m["num"]) * _TIME_S[m["unit"]], value, "duration")


def parse_flops_rate(value: str) -> float:
    """'312 TFLOP/s' -> 3.12e14 FLOP/s."""
    examples = "'312 TFLOP/s' or '2.25 PFLOP/s'"
    m = _FLOPS_RE.match(_text(value, "a FLOP rate", examples, "TFLOP/s"))
    if not m:
        raise UnitError(f"expected a rate such as {examples}, got {value!r}")
    rate = float(m["num"]) * _DECIMAL[m["prefix"]]
    if rate <= 0:
        raise UnitError(f"expected a positive FLOP rate, got {value!r}")
    return _finite(rate, value, "FLOP rate")


def parse_size_range(text: str) -> list[int]:
    """nccl-tests style sizes: '1K..8G' (doubling from LOW while <= HIGH, as -b 1K -e 8G -f 2)
    or a list '1024,4096'. Letters K, M, G, T, P are binary (1K = 1024) and a bare number is
    bytes, as nccl-tests reads -b/-e; '1 MB' or '1 MiB' are taken as written (decimal, binary)."""
    text = text.strip()
    if ".." in text:
        lo_s, hi_s = text.split("..", 1)
        lo, hi = _nccl_size(lo_s), _nccl_size(hi_s)
        if lo <= 0 or hi < lo:
            raise UnitError(f"expected LOW..HIGH with 0 < LOW <= HIGH, got {text!r}")
        sizes = []
        size = lo
        while size <= hi:
            sizes.append(size)
            size *= 2
        return sizes
    return [_nccl_size(part) for part in text.split(",") if part.strip()]


def _nccl_size(text: str) -> int:
    """'1K' -> 1024, '8G' -> 8 GiB, '4096' -> 4096 bytes; '25 MB', '1 MiB' as written; at most 1 PiB."""
    text = text.strip()
    m = _NCCL_RE.fullmatch(text)
    if m:
        size = int(m["num"]) * _NCCL_LETTERS[m["letter"].upper()]
    else:
        try:
            size = parse_bytes(text)
        except UnitError:
            raise UnitError(
                f"expected a size such as 1024 (bytes), 1K, 8M, 2G (binary: 1K = 1024) or "
                f"'25 MB', got {text!r}"
            ) from None
    if size > MAX_COLLECTIVE_BYTES:
        raise UnitError(f"{text!r} is {size:,} bytes; sizes go up to 1P (2^50 bytes)")
    return size


def fmt_bytes(n: float, binary: bool = False) -> str:
    """12345678901 -> '12.35 GB' (or '11.50 GiB' with binary=True)."""
    base, units = (
        (1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
        if binary
        else (1000.0, ["B", "kB", "MB", "GB", "TB", "PB"])
    )
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{sign}{n:.0f} {units[i]}" if i == 0 else f"{sign}{n:.2f} {units[i]}"


def fmt_bandwidth(bw_bytes_per_s: float) -> str:
    return f"{bw_bytes_per_s / 1e9:.1f} GB/s"
