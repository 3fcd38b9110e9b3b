"""Human quantities <-> internal units, in one place.

Internally: int bytes, float seconds, float bytes/s, float FLOP/s. At the YAML and report
edges: strings such as "80 GiB", "25 MB", "400 Gb/s", "450 GB/s", "2 us", "312 TFLOP/s".
Decimal prefixes are powers of 1000 (GB = 1e9), binary ones powers of 1024 (GiB = 2**30),
as in the ZeRO paper / nccl-tests (GB) and DeepSpeed / nvidia-smi (GiB, MiB).
A lowercase "b" means bits ("400 Gb/s" = 50e9 bytes/s), an uppercase "B" bytes.
"""

from __future__ import annotations

import math
import re

_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}

_NUMBER = r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_BYTES_RE = re.compile(_NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|Pi|[kKMGTPE]?)(?P<unit>B|b|bit|bits|byte|bytes)?$")
_RATE_RE = re.compile(_NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|Pi|[kKMGTPE]?)(?P<unit>B/s|Bps|b/s|bps|bit/s|bits/s)$")
_TIME_RE = re.compile(_NUMBER + r"\s*(?P<unit>ns|us|µs|ms|s|sec|min|h|hr|d|day|days)$")
_FLOPS_RE = re.compile(_NUMBER + r"\s*(?P<prefix>[kKMGTPE]?)(?:FLOP/s|FLOPS|flop/s|flops)$")

_TIME_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0,
           "h": 3600.0, "hr": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}


class UnitError(ValueError):
    """A quantity string that does not parse; the message says what was expected."""


def _prefix_factor(prefix: str) -> int:
    return _BINARY[prefix] if prefix in _BINARY else _DECIMAL[prefix]


def parse_bytes(value: str | float) -> int:
    """'80 GiB' -> 85899345920; '25 MB' -> 25000000; a bare number is a count of bytes."""
    if isinstance(value, bool):
        raise UnitError("expected a size such as '80 GiB' or '25 MB'")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise UnitError(f"expected a non-negative size, got {value}")
        return int(value)
    m = _BYTES_RE.match(str(value).strip())
    if not m:
        raise UnitError(f"expected a size such as '80 GiB', '25 MB' or '512 KiB', got {value!r}")
    amount = float(m["num"]) * _prefix_factor(m["prefix"])
    if m["unit"] in ("b", "bit", "bits"):
        amount /= 8
    return int(round(amount))


def parse_bandwidth(value: str | float) -> float:
    """'400 Gb/s' -> 5e10 bytes/s; '450 GB/s' -> 4.5e11; a bare number is bytes/s."""
    if isinstance(value, bool):
        raise UnitError("expected a bandwidth such as '400 Gb/s' or '450 GB/s'")
    if isinstance(value, (int, float)):
        if value <= 0 or not math.isfinite(value):
            raise UnitError(f"expected a positive bandwidth, got {value}")
        return float(value)
    m = _RATE_RE.match(str(value).strip())
    if not m:
        raise UnitError(f"expected a bandwidth such as '400 Gb/s' or '450 GB/s', got {value!r}")
    rate = float(m["num"]) * _prefix_factor(m["prefix"])
    if not m["unit"].startswith("B"):
        rate /= 8
    if rate <= 0:
        raise UnitError(f"expected a positive bandwidth, got {value!r}")
    return rate


def parse_duration(value: str | float) -> float:
    """'2 us' -> 2e-6 s; a bare number is seconds."""
    if isinstance(value, bool):
        raise UnitError("expected a duration such as '2 us' or '30 days'")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise UnitError(f"expected a non-negative duration, got {value}")
        return float(value)
    m = _TIME_RE.match(str(value).strip())
    if not m:
        raise UnitError(f"expected a duration such as '2 us', '1.5 ms' or '30 days', got {value!r}")
    return float(m["num"]) * _TIME_S[m["unit"]]


def parse_flops_rate(value: str | float) -> float:
    """'312 TFLOP/s' -> 3.12e14 FLOP/s; a bare number is FLOP/s."""
    if isinstance(value, bool):
        raise UnitError("expected a rate such as '312 TFLOP/s'")
    if isinstance(value, (int, float)):
        if value <= 0 or not math.isfinite(value):
            raise UnitError(f"expected a positive FLOP rate, got {value}")
        return float(value)
    m = _FLOPS_RE.match(str(value).strip())
    if not m:
        raise UnitError(f"expected a rate such as '312 TFLOP/s', got {value!r}")
    return float(m["num"]) * _DECIMAL[m["prefix"]]


def parse_size_range(text: str) -> list[int]:
    """nccl-tests style sizes: '1K..8G' (doubling, binary prefixes as nccl-tests uses) or '1024,4096'."""
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
    """nccl-tests reads '1K' as 1024 and '8G' as 8 GiB; 'MB'/'MiB' forms are accepted as written."""
    text = text.strip()
    m = re.fullmatch(r"([0-9]+)\s*([KMGT]?)", text)
    if m:
        return int(m[1]) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m[2]]
    return parse_bytes(text)


def fmt_bytes(n: float, binary: bool = False) -> str:
    """12345678901 -> '12.35 GB' (or '11.50 GiB' with binary=True)."""
    base, units = (1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]) if binary else (
        1000.0, ["B", "kB", "MB", "GB", "TB", "PB"])
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{sign}{n:.0f} {units[i]}" if i == 0 else f"{sign}{n:.2f} {units[i]}"


def fmt_bandwidth(bw_bytes_per_s: float) -> str:
    return f"{bw_bytes_per_s / 1e9:.1f} GB/s"
