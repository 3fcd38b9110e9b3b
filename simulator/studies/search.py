"""The one minimum-GPU search: the smallest GPU count on which a scenario is valid and fits.

Used by `plan min-gpus` and by `run`'s OOM suggestions, so they agree. Every candidate is a
derived scenario validated like any other (a straggler on rank 15 makes counts below 16
invalid, not a phantom); per-GPU memory never grows with the GPU count (shards shrink), so
the search scans within a host and bisects over whole hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.core.errors import UserError
from simulator.execution.memory import memory_breakdown
from simulator.scenario.load import with_gpus
from simulator.spec.specs import Scenario
from simulator.system.topology.loader import MAX_GPUS

# How far below a count that is not valid (e.g. an HSDP shard group that does not divide it)
# the search looks for one that is.
_VALID_LOOKBACK = 64


@dataclass(frozen=True, kw_only=True)
class MinGpus:
    count: int | None  # smallest valid count that fits; None: none up to the cap
    invalid_note: str = ""  # why some smaller counts were not valid, if any were


def gpu_count_candidates(gpus_per_host: int, cap: int = MAX_GPUS) -> list[int]:
    """GPU counts a job can use: 1, 2, 4, ... within a host, then whole hosts."""
    small = [n for n in (2**i for i in range(20)) if n < gpus_per_host]
    return small + list(range(gpus_per_host, cap + 1, gpus_per_host))


class _Probe:
    def __init__(self, scenario: Scenario, cands: list[int]):
        self.scenario, self.cands = scenario, cands
        self.results: dict[int, bool | None] = {}
        self.note = ""

    def fits_at(self, i: int) -> bool | None:
        """Fits on cands[i]? None if that count is not valid for the scenario."""
        if i not in self.results:
            try:
                self.results[i] = memory_breakdown(with_gpus(self.scenario, self.cands[i])).fits
            except UserError as exc:
                self.results[i] = None
                if not self.note:
                    self.note = f"{self.cands[i]} GPUs: " + "; ".join(
                        p.render() for p in exc.problems
                    )
        return self.results[i]

    def valid_below(self, i: int) -> int | None:
        """The largest index <= i whose count is valid."""
        for j in range(i, max(-1, i - _VALID_LOOKBACK), -1):
            if self.fits_at(j) is not None:
                return j
        return None

    def p(self, i: int) -> bool:
        """Monotone in i: the nearest valid count at or below cands[i] fits."""
        j = self.valid_below(i)
        return j is not None and bool(self.fits_at(j))


def min_gpus(scenario: Scenario, cap: int = MAX_GPUS) -> MinGpus:
    """Smallest usable GPU count on which the scenario is valid and fits (memory only)."""
    cands = gpu_count_candidates(scenario.cluster.gpus_per_host, cap)
    probe = _Probe(scenario, cands)
    small = sum(1 for n in cands if n < scenario.cluster.gpus_per_host)
    for i in range(small):
        if probe.fits_at(i):
            return MinGpus(count=cands[i], invalid_note=probe.note)
    if small == len(cands):
        return MinGpus(count=None, invalid_note=probe.note)
    lo, hi = (
        small - 1,
        small,
    )  # cands[lo] does not satisfy p (or is before the hosts), cands[hi] probed
    while not probe.p(hi):
        if hi == len(cands) - 1:
            return MinGpus(count=None, invalid_note=probe.note)
        lo, hi = hi, min(len(cands) - 1, 2 * hi - small + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if probe.p(mid) else (mid, hi)
    j = probe.valid_below(hi)
    assert j is not None  # probe.p(hi) holds
    return MinGpus(count=cands[j], invalid_note=probe.note)
