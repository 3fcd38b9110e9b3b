"""User-input errors: every problem in a file, each with its dotted field path and a hint.

A `ScenarioError` is a user mistake (exit code 2, no traceback); `assert` is kept for
internal invariants, and a predicted OOM is a result, not an error.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from collections.abc import Iterable


@dataclass(frozen=True)
class Problem:
    """One problem in one input: where (dotted path), what was wrong, what would be valid."""

    path: str
    message: str
    hint: str = ""

    def render(self, source: str = "") -> str:
        where = f"{source}: " if source else ""
        field = self.path or "(top level)"
        text = f"{where}{field}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ScenarioError(ValueError):
    """Invalid user input; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem] | Problem | str, source: str = ""):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self.render())

    def with_source(self, source: str) -> "ScenarioError":
        return ScenarioError(self.problems, source or self.source)

    def at(self, prefix: str) -> "ScenarioError":
        """The same problems, nested under `prefix` (a dotted path)."""
        moved = [
            Problem(f"{prefix}.{p.path}" if p.path else prefix, p.message, p.hint)
            for p in self.problems
        ]
        return ScenarioError(moved, self.source)

    def render(self) -> str:
        return "\n".join(p.render(self.source) for p in self.problems)


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to a misspelt one (difflib ratio >= 0.6), best first."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A hint naming the closest valid names, or listing the valid names when none is close."""
    choices = sorted(choices)
    hits = closest(name, choices)
    if hits:
        return "did you mean " + " or ".join(repr(h) for h in hits) + "?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"valid names: {shown}"
