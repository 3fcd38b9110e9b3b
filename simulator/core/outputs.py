"""Writing a file the user named on the command line. An OSError at the moment of writing (a full
disk, a read-only file system, no permission, a path under a file) is the user's environment,
not a bug: it becomes a UserError naming the option and the path, which the CLI prints with exit
code 2 and no traceback. The checks before any work is done are in cli/output.py; these catch
what only the write itself can tell (a disk that fills up, /dev/full).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from simulator.core.errors import Problem, UserError

# What the user can do about each errno (the rest: give another path).
_SPACE = "free some space, or give a path on another disk"
_PERMISSION = "give a path in a folder you can write to"
# Keyed by int | None: an OSError built without an errno has errno None (get falls back).
HINTS: dict[int | None, str] = {
    errno.ENOSPC: _SPACE,
    errno.EDQUOT: _SPACE,
    errno.EFBIG: _SPACE,
    errno.EROFS: "the file system is read-only: give a path on another one",
    errno.EACCES: _PERMISSION,
    errno.EPERM: _PERMISSION,
    errno.ENOTDIR: "a part of the path is a file, not a folder: give another path",
    errno.ENOENT: "the folder does not exist: create it first",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENAMETOOLONG: "give a shorter name",
}


def write_error(option: str, path: str | Path, exc: OSError, kept: str = "") -> UserError:
    """The UserError for `exc` raised while writing `path` (or the file the error names) for
    `option`; `kept` says what was kept and how to go on."""
    target = exc.filename if isinstance(exc.filename, str) else str(path)
    reason = exc.strerror or str(exc)
    hint = HINTS.get(exc.errno, "give another path")
    return UserError(Problem(option, f"cannot write {target}: {reason}{kept}", hint))


@contextlib.contextmanager
def writing(option: str, path: str | Path) -> Iterator[None]:
    """Turn an OSError raised inside into write_error(option, path)."""
    try:
        yield
    except OSError as exc:
        raise write_error(option, path, exc) from None


def write_text(option: str, path: str | Path, text: str) -> Path:
    """Write `text` to `path`; a file this call created is removed again when the write fails, so
    no truncated output is left behind (an existing file or a device such as /dev/full is kept)."""
    path = Path(path)
    existed = path.exists() or path.is_symlink()
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        if not existed and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
        raise write_error(option, path, exc) from None
    return path
