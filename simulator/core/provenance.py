"""Provenance: which code and which input files produced a result.

A sweep's results record and a golden file's header carry `version_string()` - the package
version plus a hash of the package's code and shipped data - and sweeps also record a hash
of every input file (scenario, topology, calibration), so results from other code or other
inputs are recognized, and what changed can be said.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from simulator import __version__

_PACKAGE = Path(__file__).resolve().parent.parent
_HASHED = ("*.py", "*.yaml")


@lru_cache(maxsize=1)  # a constant of the installed package, computed once per process
def code_fingerprint() -> str:
    """sha256 over the package's source and shipped data files (paths and contents), 12 hex digits."""
    h = hashlib.sha256()
    for pattern in _HASHED:
        for path in sorted(_PACKAGE.rglob(pattern)):
            h.update(path.relative_to(_PACKAGE).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def version_string() -> str:
    """'0.2.0.dev0+code.1a2b3c4d5e6f': the version and the code it was computed with."""
    return f"{__version__}+code.{code_fingerprint()}"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, 16 hex digits ('missing' if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
