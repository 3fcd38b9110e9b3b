"""pydantic's validation errors -> Problems with dotted field paths and "did you mean" hints."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from simulator.core.errors import Problem, did_you_mean
from simulator.scenario.schema import ScenarioFile
from simulator.scenario.schema_framework import knob_home

# Labels pydantic puts into an error's location that are not field names: union branches,
# and the tags of the GPU field's discriminated union, which follow the `gpu` key only (a
# field called `name` elsewhere, as model.name, is a key).
_NOT_FIELDS = {"str", "int", "float", "CustomGPU"}
_GPU_TAGS = {"name", "custom"}


def _location(raw: tuple) -> list[str]:
    """An error's location as the keys the user wrote."""
    loc: list[str] = []
    for part in map(str, raw):
        if part.startswith(("function-", "literal[", "tagged-union")) or part in _NOT_FIELDS:
            continue
        if part in _GPU_TAGS and loc[-1:] == ["gpu"]:
            continue
        loc.append(part)
    return loc


def pydantic_problems(exc: ValidationError, root: Any = ScenarioFile) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = _location(err["loc"])
        path, etype, hint = ".".join(loc), err["type"], ""
        if etype == "extra_forbidden":
            parent = model_at(loc[:-1], root)
            msg = "unknown key"
            if parent is not None:
                hint = did_you_mean(loc[-1], parent.model_fields)
            home = knob_home(loc[-1]) if loc[:1] == ["training"] else None
            if home:
                hint = f"{loc[-1]} is an option of {home}" + (
                    f"; {hint}" if hint.startswith("did you") else ""
                )
        elif etype == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            msg = f"expected one of {expected}, got {err.get('input')!r}"
            choices = [c.strip(" '") for c in str(expected).replace(" or ", ",").split(",")]
            hint = did_you_mean(str(err.get("input")), [c for c in choices if c])
        elif etype == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(Problem(path, msg, hint))
    return list(dict.fromkeys(problems))


def model_at(loc: list[str], root: Any = ScenarioFile):
    """The pydantic model class at a dotted location of `root`, for key suggestions."""
    cls = root
    for part in loc:
        if part.isdigit():  # an item of a list: its model is the list's, already unwrapped
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        candidates, stack = [], [field.annotation]
        while stack:  # unwrap Optional / Annotated / unions to the first pydantic model
            ann = stack.pop()
            candidates.append(ann)
            stack.extend(getattr(ann, "__args__", ()))
            stack.extend(getattr(ann, "__origin__", None) and [ann.__origin__] or [])
        nxt = next(
            (c for c in candidates if isinstance(c, type) and hasattr(c, "model_fields")), None
        )
        if nxt is None:
            return None
        cls = nxt
    return cls


def text_at(data: Any, section: str, key: str) -> str | None:
    """A string value of the raw mapping, or None (to check names when the shape check failed)."""
    value = data.get(section, {}) if isinstance(data, dict) else {}
    value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None
