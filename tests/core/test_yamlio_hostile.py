"""Hostile YAML: alias bombs, self-reference, deep nesting, huge files and numbers are refused at
once with a UserError naming the file (exit 2 from the CLI), never a hang or a traceback."""

from __future__ import annotations

import pytest

from simulator.cli.main import main
from simulator.core.errors import UserError
from simulator.core.yamlio import (
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    MAX_FILE_BYTES,
    load_yaml,
    read_yaml,
)

pytestmark = pytest.mark.timeout(10)


def _laughs(levels: int, fan_out: int = 9) -> str:
    """The "billion laughs" file: each level lists `fan_out` aliases of the level below."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * fan_out) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


def _expanded_items(levels: int, fan_out: int = 9) -> int:
    """Nodes once expanded, by hand: level 0 is a list of fan_out strings (1 + fan_out nodes);
    level i is a list node holding fan_out copies of level i-1; plus the top mapping and its keys."""
    size = 1 + fan_out
    total = size
    for _ in range(levels):
        size = 1 + fan_out * size
        total += size
    return 1 + (levels + 1) + total


@pytest.mark.parametrize("levels", [7, 9, 30])
def test_alias_bomb_refused_quickly(levels):
    assert _expanded_items(levels) > MAX_EXPANDED_NODES
    with pytest.raises(UserError, match="aliases"):
        load_yaml(_laughs(levels), "bomb.yaml")


def test_doubling_bomb_of_many_levels_refused():
    # 2^60 items from 60 lines: the check must not expand anything.
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 61)]
    with pytest.raises(UserError, match="aliases"):
        load_yaml("\n".join(lines), "bomb.yaml")


def test_small_alias_use_is_read_as_written():
    # 4 levels of 3: (hand count) well below the bound, and each alias is the same value.
    assert _expanded_items(4, 3) < MAX_EXPANDED_NODES
    data = load_yaml(_laughs(4, 3), "ok.yaml")
    assert data["a4"][0][0][0][0] == ["lol", "lol", "lol"]
    merged = load_yaml("base: &b {seq_len: 2048, tp: 2}\npoint: {<<: *b, tp: 4}\n", "ok.yaml")
    assert merged["point"] == {"seq_len": 2048, "tp": 4}


def test_self_reference_refused():
    with pytest.raises(UserError, match="refers to the node that contains it"):
        load_yaml("a: &a [1, *a]\n", "self.yaml")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_nesting_refused(depth):
    with pytest.raises(UserError, match="nested more than"):
        load_yaml("a: " + "[" * depth + "]" * depth + "\n", "deep.yaml")


def test_nesting_at_the_bound_is_read():
    # The top mapping is level 1, so MAX_DEPTH - 1 brackets reach exactly MAX_DEPTH.
    data = load_yaml("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", "ok.yaml")
    assert isinstance(data["a"], list)


def test_huge_integer_refused():
    with pytest.raises(UserError, match="cannot be read"):
        load_yaml("params: " + "9" * 5000 + "\n", "big.yaml")


def test_oversized_file_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(UserError, match="larger than"):
        read_yaml(path)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_cli_refuses_bomb_with_exit_2(tmp_path, capsys, command):
    path = tmp_path / "bomb.yaml"
    path.write_text(_laughs(9))
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "aliases" in err and "Traceback" not in err


def test_duplicate_keys_still_refused_beside_a_merge():
    with pytest.raises(UserError, match="appears twice"):
        load_yaml("base: &b {tp: 2}\npoint: {<<: *b, tp: 4, tp: 8}\n", "dup.yaml")
