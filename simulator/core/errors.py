"""User errors: every problem in an input, each with where it is, what was wrong, what would do.

`UserError` is the one type for every user mistake - a scenario, topology, sweep or golden
file, a field in one, a command-line flag: the CLI prints it and exits with code 2, no
traceback. Anything else is a bug and keeps its traceback; `assert` guards internal
invariants, and a predicted OOM is a result, not an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem in one input: where (dotted path or flag), what was wrong, what would be valid."""

    path: str
    message: str
    hint: str = ""
    source: str = ""  # the file it is in, when not the file of the error carrying it

    def render(self, source: str = "") -> str:
        source = self.source or source
        where = f"{source}: " if source else ""
        field = self.path or "(top level)"
        text = f"{where}{field}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class UserError(ValueError):
    """Invalid user input; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem] | Problem | str, source: str = ""):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self.render())

    def with_source(self, source: str) -> UserError:
        return UserError(self.problems, source or self.source)

    def sourced(self) -> list[Problem]:
        """The problems, each naming this error's file (to carry them into another file's error)."""
        return [Problem(p.path, p.message, p.hint, p.source or self.source) for p in self.problems]

    def at(self, prefix: str) -> UserError:
        """The same problems, nested under `prefix` (a dotted path)."""
        moved = [
            Problem(f"{prefix}.{p.path}" if p.path else prefix, p.message, p.hint, p.source)
            for p in self.problems
        ]
        return UserError(moved, self.source)

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


def lookup(name: str, table: dict, path: str, what: str, aliases: dict | None = None):
    """`table[name]` by a case-insensitive name or alias; a UserError at `path` naming the
    closest valid names otherwise. One rule for every catalog (strategies, precisions, GPUs...)."""
    key = str(name).strip().lower()
    key = (aliases or {}).get(key, key)
    if key in table:
        return table[key]
    valid = [*table, *(aliases or {})]
    raise UserError(Problem(path, f"unknown {what} {name!r}", did_you_mean(str(name), valid)))
