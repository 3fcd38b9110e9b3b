"""Reading YAML files: the only module that imports yaml.

Every way a file can be unreadable becomes a `UserError` naming the file: missing, a
directory, not UTF-8, too large, malformed (with line and column), nested too deeply, a key
given twice in one mapping, or not a mapping at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulator.core.errors import Problem, UserError

# Input files are hand-written YAML of a few kB; anything this large is a mistake (a results
# file or a binary given by accident), refused before parsing.
MAX_FILE_BYTES = 16 * 2**20
# Deeper nesting than any scenario, sweep or topology file needs; beyond it PyYAML's recursive
# constructor would exhaust the interpreter stack.
MAX_DEPTH = 64


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML 1.2 requires unique keys; PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (first at line "
                    f"{seen[key].line + 1}); give each key once", mark)
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _depth(node: yaml.Node) -> int:
    """Nesting depth of a composed YAML node, iteratively (no recursion on hostile input)."""
    best, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(n, yaml.SequenceNode):
            stack.extend((c, d + 1) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            stack.extend((v, d + 1) for _, v in n.value)
    return best


def read_text(path: str | Path, what: str = "YAML file") -> str:
    """A small UTF-8 text file's content; a UserError naming the file for anything else."""
    path = Path(path)
    if path.is_dir():
        raise UserError(Problem("", "is a directory", f"give the path of a {what}"), str(path))
    if not path.is_file():
        raise UserError(Problem("", "file not found", f"give the path of a {what}"), str(path))
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(Problem("", f"larger than {MAX_FILE_BYTES // 2**20} MiB; not a {what}"), str(path))
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = "save it as UTF-8"
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "it looks like UTF-16; save it as UTF-8"
        raise UserError(Problem("", f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})",
                                hint), str(path)) from None


def load_yaml(text: str, source: str = "") -> Any:
    """Parse YAML text strictly (duplicate keys and deep nesting refused)."""
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
        if node is not None and _depth(node) > MAX_DEPTH:
            raise UserError(Problem("", f"nested more than {MAX_DEPTH} levels deep"), source)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UserError(Problem("", f"invalid YAML at {where}: {exc.problem}"), source) from None
    except yaml.YAMLError as exc:
        raise UserError(Problem("", f"invalid YAML: {exc}"), source) from None
    except RecursionError:
        raise UserError(Problem("", f"nested more than {MAX_DEPTH} levels deep"), source) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file; a clear error if it is unreadable or not a mapping."""
    source = str(path)
    data = load_yaml(read_text(path), source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(
            Problem("", f"expected a mapping of keys at the top of the file, got {type(data).__name__}"),
            source,
        )
    return data


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (mappings keep their order; block style; unicode as is)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=110)
