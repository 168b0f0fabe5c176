"""Structural OpenAPI v3 schemas for CRDs, generated from Ratline's pydantic schemas.

Kubernetes wants a *structural* schema: a type on every node, no `$ref`, no `anyOf` of
different types (except int-or-string), no defaults it would apply itself. The schema
describes the YAML form (pydantic's serialization schema: camelCase keys, durations as
strings) with types and structure only: value rules (ranges, patterns, enums, required
fields) are left to Ratline's validation, so a bad value is refused by the admission
webhook with the same message `ratline analyze` gives, not by the API server with its own.
Unknown fields are pruned or refused by the API server (kubectl's strict field validation
names them). Recursive and free-form parts keep unknown fields as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
MAX_DEPTH = 24
_SCALARS = frozenset({"string", "integer", "number", "boolean"})


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of a model's YAML form."""
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    return _convert(schema, schema.get("$defs") or {}, ())


def _types(node: Mapping[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, list):
        return {str(k) for k in kind}
    if isinstance(kind, str):
        return {kind}
    if "const" in node or "enum" in node:
        values = list(node.get("enum") or [node.get("const")])
        return {_json_type(v) for v in values}
    return set()


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


def _convert(
    node: Mapping[str, Any], defs: Mapping[str, Any], stack: tuple[str, ...]
) -> dict[str, Any]:
    description = node.get("description")
    out = _convert_bare(node, defs, stack)
    if description and "description" not in out:
        out = {"description": str(description), **out}
    return out


def _convert_bare(
    node: Mapping[str, Any], defs: Mapping[str, Any], stack: tuple[str, ...]
) -> dict[str, Any]:
    if len(stack) > MAX_DEPTH:
        return dict(PRESERVE)
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in stack or name not in defs:
            return dict(PRESERVE)
        return _convert(defs[name], defs, (*stack, name))
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = node.get(combinator)
        if isinstance(options, list):
            return _union([o for o in options if _types(o) != {"null"}], defs, stack)
    types = _types(node) - {"null"}
    if len(types) > 1:
        return _scalar_union(types)
    kind = next(iter(types), "")
    if kind == "object" or (not kind and ("properties" in node or "additionalProperties" in node)):
        return _object(node, defs, stack)
    if kind == "array":
        items = node.get("items")
        if isinstance(items, Mapping):
            return {"type": "array", "items": _convert(items, defs, stack)}
        return {"type": "array", "items": dict(PRESERVE)}
    if kind in _SCALARS:
        return {"type": kind}
    return dict(PRESERVE)  # Any


def _object(
    node: Mapping[str, Any], defs: Mapping[str, Any], stack: tuple[str, ...]
) -> dict[str, Any]:
    properties = node.get("properties")
    if isinstance(properties, Mapping) and properties:
        return {
            "type": "object",
            "properties": {str(k): _convert(v, defs, stack) for k, v in properties.items()},
        }
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping) and extra:
        value = _convert(extra, defs, stack)
        if value.get("x-kubernetes-preserve-unknown-fields"):
            return dict(PRESERVE)
        return {"type": "object", "additionalProperties": value}
    return dict(PRESERVE)


def _union(
    options: list[Mapping[str, Any]], defs: Mapping[str, Any], stack: tuple[str, ...]
) -> dict[str, Any]:
    if len(options) == 1:
        return _convert(options[0], defs, stack)
    converted = [_convert(o, defs, stack) for o in options]
    types = {c.get("type") for c in converted}
    if all(c.get("type") in _SCALARS for c in converted):
        return _scalar_union({str(t) for t in types})
    if types == {"array"}:
        return converted[0]
    return dict(PRESERVE)


def _scalar_union(types: set[str]) -> dict[str, Any]:
    if types <= {"integer", "number"}:
        return {"type": "number"}
    if types <= {"integer", "string"}:
        return {"x-kubernetes-int-or-string": True}
    if len(types) == 1:
        return {"type": next(iter(types))}
    return {"x-kubernetes-preserve-unknown-fields": True}
