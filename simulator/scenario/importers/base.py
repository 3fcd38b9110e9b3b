"""What every importer shares: the record of each source key (mapped to a scenario key, ignored
with why, refused with why) and the partial scenario document it builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.core.errors import did_you_mean

MAPPED, IGNORED, REFUSED = "mapped", "ignored", "refused"


@dataclass(frozen=True)
class Entry:
    """One key of one source file and what became of it."""

    source: str
    key: str
    status: str  # mapped | ignored | refused
    value: Any = None
    target: str = ""  # mapped: the dotted scenario key
    why: str = ""
    unknown: bool = False  # a key the importer does not know (a typo, a newer version's key)

    def render(self) -> str:
        shown = f"{self.key} = {_show(self.value)}" if self.value is not None else self.key
        if self.status == MAPPED:
            note = f" ({self.why})" if self.why else ""
            return f"{self.source}: {shown} -> {self.target}{note}"
        return f"{self.source}: {shown}: {self.status} ({self.why})"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Partial:
    """A partial scenario document from one source file: dotted assignments, in order, with the
    source key each comes from, and the record of every key."""

    source: str
    kind: str
    assignments: list[tuple[str, Any, str]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    pending: dict[str, Any] = field(default_factory=dict)  # resolved once the GPU count is known

    def map(self, key: str, value: Any, target: str, scenario_value: Any, why: str = "") -> None:
        self.assignments.append((target, scenario_value, key))
        self.entries.append(Entry(self.source, key, MAPPED, value, target, why))

    def note(self, key: str, value: Any, target: str, why: str = "") -> None:
        """A key read into a scenario key set elsewhere (e.g. a flag that chooses a strategy)."""
        self.entries.append(Entry(self.source, key, MAPPED, value, target, why))

    def ignore(self, key: str, value: Any, why: str) -> None:
        self.entries.append(Entry(self.source, key, IGNORED, value, why=why))

    def refuse(self, key: str, value: Any, why: str) -> None:
        self.entries.append(Entry(self.source, key, REFUSED, value, why=why))

    def unknown(self, key: str, value: Any, known: list[str]) -> None:
        hint = did_you_mean(key.rsplit(".", 1)[-1], known)
        why = "unknown key, not read" + (f"; {hint}" if hint.startswith("did you") else "")
        self.entries.append(Entry(self.source, key, IGNORED, value, why=why, unknown=True))


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) for every leaf of nested mappings (lists are leaves)."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flatten(value, path + ".")
        else:
            out.append((path, value))
    return out
