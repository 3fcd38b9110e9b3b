"""Reading YAML files: the only module that imports yaml.

Every way a file can be unreadable becomes a `UserError` naming the file: missing, a
directory, not UTF-8, too large, malformed (with line and column), nested too deeply, an alias bomb, a key
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
# Items after expanding YAML aliases: a sweep over a large grid is ~10^4; the largest shipped file
# ~10^3. Beyond this, anchors and aliases are multiplying the file (a "billion laughs" bomb) and
# every reader of the data would walk the expansion.
MAX_EXPANDED_NODES = 1_000_000


# libyaml's parser (shipped in PyYAML's wheels) where present: the same events as the pure-Python
# parser, about ten times faster; the constructor below stays Python either way.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that refuses duplicate keys (YAML 1.2 requires unique keys; PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges a mapping; its keys may be overridden by explicit ones
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first at line "
                    f"{seen[key].line + 1}); give each key once",
                    mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _shape(root: yaml.Node) -> tuple[int, int] | None:
    """(nesting depth, node count with every alias expanded) of a composed YAML graph.

    Aliases make the composed graph a DAG whose expansion can be exponential (the "billion
    laughs" file: 9 levels of 9 aliases expand to 9^9 items), so both figures are computed once
    per distinct node, bottom-up and iteratively: linear in the file, whatever it expands to.
    None when a node contains itself (`&a [*a]`): it has no finite expansion."""
    shape: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            on_path.discard(key)
            kids = [shape[id(c)] for c in _children(node)]
            shape[key] = (1 + max((d for d, _ in kids), default=0), 1 + sum(n for _, n in kids))
            continue
        if key in shape:
            continue
        if key in on_path:
            return None
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in shape)
    return shape[id(root)]


def read_text(path: str | Path, what: str = "YAML file") -> str:
    """A small UTF-8 text file's content; a UserError naming the file for anything else."""
    path = Path(path)
    if path.is_dir():
        raise UserError(Problem("", "is a directory", f"give the path of a {what}"), str(path))
    if not path.is_file():
        raise UserError(Problem("", "file not found", f"give the path of a {what}"), str(path))
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(
            Problem("", f"larger than {MAX_FILE_BYTES // 2**20} MiB; not a {what}"), str(path)
        )
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = "save it as UTF-8"
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "it looks like UTF-16; save it as UTF-8"
        raise UserError(
            Problem("", f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})", hint),
            str(path),
        ) from None


def load_yaml(text: str, source: str = "") -> Any:
    """Parse YAML text strictly (duplicate keys and deep nesting refused)."""
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        shape = _shape(node) if node is not None else (0, 0)
        if shape is None:
            raise UserError(
                Problem(
                    "",
                    "an alias (*name) refers to the node that contains it",
                    "a value cannot contain itself; write it out",
                ),
                source,
            )
        depth, size = shape
        if depth > MAX_DEPTH:
            raise UserError(Problem("", f"nested more than {MAX_DEPTH} levels deep"), source)
        if size > MAX_EXPANDED_NODES:
            raise UserError(
                Problem(
                    "",
                    f"expands to more than {MAX_EXPANDED_NODES:,} items once its aliases (*name) are expanded",
                    "write the values out, or use fewer nested aliases",
                ),
                source,
            )
        # Construct from the node already composed: the text is parsed once.
        return loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own bound (1,000 levels)
            raise UserError(
                Problem("", f"nested more than {MAX_DEPTH} levels deep"), source
            ) from None
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UserError(Problem("", f"invalid YAML at {where}: {exc.problem}"), source) from None
    except yaml.YAMLError as exc:
        raise UserError(Problem("", f"invalid YAML: {exc}"), source) from None
    except UserError:
        raise
    except ValueError as exc:
        # Python refuses integers of more than 4,300 digits (CVE-2020-10735 limit); no field needs one.
        reason = str(exc).split(";")[0]
        raise UserError(
            Problem("", f"a number in the file cannot be read ({reason})"), source
        ) from None
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
            Problem(
                "", f"expected a mapping of keys at the top of the file, got {type(data).__name__}"
            ),
            source,
        )
    return data


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (mappings keep their order; block style; unicode as is)."""
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=110
    )
