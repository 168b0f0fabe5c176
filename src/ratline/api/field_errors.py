"""Turn pydantic validation errors into short messages at Istio-style field paths.

pydantic reports `('http', 0, 'route', 0, 'weight')` with "Value error, must be 0..100";
users want `spec.http[0].route[0].weight: must be 0..100`. Paths use the camelCase
names written in YAML; map keys are shown in brackets (`headers[end-user]`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "none_required": "must be empty",
}


def describe_error(error: ErrorDetails) -> str:
    """A short message for one pydantic error: `required`, `must be 0..100`, …"""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be one of: {expected.replace(' or ', ', ')}"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must have at least {count} item{'s' if count != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {op} {bound}"
    return _MESSAGES.get(kind, error["msg"])


def _strip(annotation: Any) -> Any:
    """Unwrap Annotated and Optional; leave real unions as they are."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _fields_by_alias(model: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def field_path(loc: Sequence[int | str], model: type[BaseModel] | None, prefix: str) -> str:
    """Render a pydantic `loc` as `prefix.a[0].b[key]`, dropping union-branch tags."""
    path = prefix
    node: Any = model
    for part in loc:
        node = _strip(node)
        origin = typing.get_origin(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = _fields_by_alias(node)
            node = fields.get(str(part))
            path = f"{path}.{part}" if path else str(part)
        elif origin in (tuple, list) and isinstance(part, int):
            node = typing.get_args(node)[0]
            path += f"[{part}]"
        elif origin in (dict, Mapping):
            args = typing.get_args(node)
            if part == "[key]":
                node = args[0] if args else None
                continue
            node = args[1] if len(args) == 2 else None
            path += f"[{part}]"
        elif origin in (typing.Union, types.UnionType):
            node = None  # `part` names the union branch; deeper parts follow the data
        elif node is None:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        # else: a tag such as `function-after[...]` on a leaf type: not part of the path
    return path


def errors_by_field(
    error: ValidationError, model: type[BaseModel] | None, prefix: str
) -> list[tuple[str, str]]:
    """(field path, message) pairs for a ValidationError, merged and de-duplicated.

    Errors from the branches of a union at the same path are merged
    (`must be 1..65535 or a string`); `too_short` on a list whose items also failed
    is dropped, since it only repeats them.
    """
    merged: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for detail in error.errors(include_url=False):
        path = field_path(detail["loc"], model, prefix)
        message = describe_error(detail)
        if detail["loc"] and detail["loc"][-1] == "[key]":
            message = f"key {message}"
        bucket = merged.setdefault(path, [])
        if message not in bucket:
            bucket.append(message)
        kinds.setdefault(path, detail["type"])
    result: list[tuple[str, str]] = []
    for path, messages in merged.items():
        if kinds[path] == "too_short" and any(
            other != path and other.startswith(path) and other[len(path)] in ".["
            for other in merged
        ):
            continue
        result.append((path, _join(messages)))
    return result


def _join(messages: list[str]) -> str:
    if len(messages) == 1:
        return messages[0]
    if all(m.startswith("must be ") for m in messages):
        return "must be " + " or ".join(m.removeprefix("must be ") for m in messages)
    return "; or ".join(messages)


def _is_inside(path: str, parent: str) -> bool:
    return path != parent and path.startswith(parent) and path[len(parent)] in ".["
