"""Validate one parsed YAML document into a Resource: envelope, metadata and spec.

`parse_document` never raises: it returns the Resource, or None and the messages that
say what is wrong, each at its field path (`metadata.name`, `spec.http[0].timeout`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from ratline.api import names
from ratline.api.envelope import DEFAULT_NAMESPACE, Resource, ResourceKey, Source
from ratline.api.errors import ConfigMessage
from ratline.api.field_errors import errors_by_field
from ratline.api.kinds import KindInfo, UnknownKindError, known_kind, lookup
from ratline.api.secrets import secret_spec

_ENVELOPE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_IGNORED_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "finalizers",
        "ownerReferences",
        "selfLink",
    }
)
_NAME_RULES: Mapping[str, Callable[[str], str | None]] = {
    "subdomain": names.dns1123_subdomain,
    "label": names.dns1123_label,
    "label1035": names.dns1035_label,
}


class _Problems:
    """Collects messages for one document."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.key: ResourceKey | None = None
        self.messages: list[ConfigMessage] = []

    def add(self, field: str | None, message: str) -> None:
        self.messages.append(ConfigMessage(message, self.source, self.key, field))


def parse_document(
    data: object, source: Source
) -> tuple[Resource[Any] | None, list[ConfigMessage]]:
    """Validate one document; (resource, []) or (None, messages)."""
    problems = _Problems(source)
    if not isinstance(data, dict):
        problems.add(
            None,
            f"a document must be a mapping with apiVersion, kind, metadata "
            f"and spec, not {_type_name(data)}",
        )
        return None, problems.messages
    kind_value = data.get("kind")
    known = known_kind(data.get("apiVersion"), kind_value)
    metadata = data.get("metadata")
    name, namespace = _identity(metadata, namespaced=known.namespaced if known else True)
    if isinstance(kind_value, str) and kind_value and name is not None:
        problems.key = ResourceKey(known.kind if known else kind_value, namespace, name)

    api_version = _string_field(data, "apiVersion", problems)
    kind = _string_field(data, "kind", problems)
    info: KindInfo | None = None
    if api_version is not None and kind is not None:
        try:
            info = lookup(api_version, kind)
        except UnknownKindError as exc:
            problems.add(exc.field, str(exc))
    labels, annotations = _check_metadata(metadata, info, problems)

    if info is None:
        return None, problems.messages
    allowed = _ENVELOPE_FIELDS | info.other_fields
    for key in data:
        if info.opaque:
            break  # kept as written: Ratline reads only its metadata
        if key not in allowed or (key == "spec" and not info.has_spec):
            problems.add(str(key), "unknown field")
    spec = _validate_spec(data, info, problems)
    if problems.messages or spec is None or name is None:
        return None, problems.messages

    raw = copy.deepcopy(data)
    if info.namespaced:
        raw["metadata"]["namespace"] = namespace
    resource: Resource[Any] = Resource(
        api_version=api_version or "",
        kind=info.kind,
        name=name,
        namespace=namespace,
        spec=spec,
        labels=labels,
        annotations=annotations,
        source=source,
        raw=raw,
    )
    return resource, []


def _type_name(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _string_field(data: Mapping[Any, Any], key: str, problems: _Problems) -> str | None:
    value = data.get(key)
    if value is None:
        problems.add(key, "required")
        return None
    if not isinstance(value, str) or not value:
        problems.add(key, "must be a non-empty string")
        return None
    return value


def _identity(metadata: object, namespaced: bool) -> tuple[str | None, str]:
    """(name, namespace) as far as they can be read, for naming the resource."""
    default = DEFAULT_NAMESPACE if namespaced else ""
    if not isinstance(metadata, dict):
        return None, default
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    if not namespaced:
        namespace = ""
    elif not isinstance(namespace, str) or not namespace:
        namespace = DEFAULT_NAMESPACE
    return (name if isinstance(name, str) and name else None), namespace


def _check_metadata(
    metadata: object, info: KindInfo | None, problems: _Problems
) -> tuple[dict[str, str], dict[str, str]]:
    """Report problems with metadata; return its labels and annotations."""
    if metadata is None:
        problems.add("metadata", "required")
        return {}, {}
    if not isinstance(metadata, dict):
        problems.add("metadata", "must be a mapping")
        return {}, {}
    for key in metadata:
        if key == "generateName":
            problems.add("metadata.generateName", "not supported: set metadata.name")
        elif key not in ("name", "namespace", "labels", "annotations", *_IGNORED_METADATA):
            problems.add(f"metadata.{key}", "unknown field")

    name = metadata.get("name")
    if name is None:
        problems.add("metadata.name", "required")
    elif not isinstance(name, str):
        problems.add("metadata.name", "must be a string")
    else:
        rule = _NAME_RULES[info.name_rule if info else "subdomain"]
        reason = rule(name)
        if reason:
            problems.add("metadata.name", reason)

    namespace = metadata.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str):
            problems.add("metadata.namespace", "must be a string")
        else:
            reason = names.dns1123_label(namespace)
            if reason:
                problems.add("metadata.namespace", reason)

    labels = _string_map(metadata, "labels", names.label_value, problems)
    annotations = _string_map(metadata, "annotations", None, problems)
    return labels, annotations


def _string_map(
    metadata: Mapping[Any, Any],
    key: str,
    check_value: Callable[[str], str | None] | None,
    problems: _Problems,
) -> dict[str, str]:
    value = metadata.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(f"metadata.{key}", "must be a mapping")
        return {}
    result: dict[str, str] = {}
    for item_key, item in value.items():
        where = f"metadata.{key}[{item_key}]"
        if not isinstance(item_key, str):
            problems.add(where, "key must be a string")
            continue
        reason = names.label_key(item_key)
        if reason:
            problems.add(where, reason)
            continue
        if not isinstance(item, str):
            problems.add(where, "must be a string (quote it)")
            continue
        reason = check_value(item) if check_value else None
        if reason:
            problems.add(where, reason)
            continue
        result[item_key] = item
    return result


def _validate_spec(data: Mapping[Any, Any], info: KindInfo, problems: _Problems) -> Any:
    if info.body:  # a Secret: its data, checked as a TLS credential
        return secret_spec(data, problems.add)
    if not info.has_spec or info.opaque:
        return info.spec_model()
    if "spec" not in data:
        problems.add("spec", "required")
        return None
    spec = data["spec"]
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.add("spec", "must be a mapping")
        return None
    try:
        return info.spec_model.model_validate(spec, by_alias=True, by_name=False)
    except ValidationError as exc:
        for path, message in errors_by_field(exc, info.spec_model, "spec"):
            problems.add(path, message)
    except Exception as exc:  # a validator surprised by odd input: still only a message
        problems.add("spec", f"invalid: {exc}")
    return None
