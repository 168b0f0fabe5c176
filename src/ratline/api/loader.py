"""Read config: multi-document YAML text or a mesh directory into validated Resources.

Nothing here raises on bad config: every problem becomes a `ConfigMessage` naming the
file, the 1-based document, the resource and the field, and one bad document never hides
another's errors. `LoadResult.raise_for_errors()` turns errors into a `ConfigError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ratline.api.document import parse_document
from ratline.api.envelope import Resource, ResourceKey, Source
from ratline.api.errors import ConfigError, ConfigMessage, Severity
from ratline.api.field_errors import errors_by_field
from ratline.api.kinds import known_kind
from ratline.api.nesting import MAX_NESTING, too_deep
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.settings import STATE_DIR_NAME

MESH_CONFIG_FILE = "mesh.yaml"
"""The MeshConfig file at the top of a mesh directory (not a resource file)."""

_YAML_SUFFIXES = (".yaml", ".yml")
_SEPARATOR = re.compile(r"^---(?=\s|$)")
_BLANK_OR_COMMENT = re.compile(r"^\s*(#.*)?$")

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe (C when available) loader, refusing duplicate keys as Kubernetes does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str | int | float | bool) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


@dataclass
class LoadResult:
    """Resources that validated, and every message about the input."""

    resources: list[Resource[Any]] = field(default_factory=list)
    messages: list[ConfigMessage] = field(default_factory=list)

    @property
    def errors(self) -> list[ConfigMessage]:
        return [m for m in self.messages if m.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[ConfigMessage]:
        return [m for m in self.messages if m.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings are fine)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise ConfigError carrying every message if any of them is an error."""
        if not self.ok:
            raise ConfigError(self.messages)


def load_text(text: str, file: str | None = None) -> LoadResult:
    """Parse and validate multi-document YAML text; `file` names it in messages."""
    result = LoadResult()
    _load_into(result, text, file)
    _drop_duplicates(result)
    return result


def load_directory(path: Path) -> LoadResult:
    """Load every *.yaml/*.yml under `path`, in sorted order.

    Skips the top-level `mesh.yaml`, the `.ratline/` state folder and hidden files and
    folders. Files are named in messages as `path/relative/name.yaml`.
    """
    result = LoadResult()
    if not path.is_dir():
        result.messages.append(ConfigMessage(f"not a directory: {path}", Source(file=str(path))))
        return result
    for file in _config_files(path):
        shown = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.messages.append(ConfigMessage(f"cannot read file: {exc}", Source(file=shown)))
            continue
        _load_into(result, text, shown)
    _drop_duplicates(result)
    return result


def load_mesh_config(directory: Path) -> tuple[MeshConfig, list[ConfigMessage]]:
    """Read `directory/mesh.yaml`; a missing or empty file means every default.

    On errors the defaults are returned along with the messages.
    """
    file = directory / MESH_CONFIG_FILE
    shown = str(file)
    if not file.exists():
        return MeshConfig(), []
    try:
        text = file.read_text(encoding="utf-8")
    except Exception as exc:  # unreadable file
        return MeshConfig(), [ConfigMessage(f"cannot read MeshConfig: {exc}", Source(file=shown))]
    return parse_mesh_config(text, shown)


def parse_mesh_config(text: str, shown: str) -> tuple[MeshConfig, list[ConfigMessage]]:
    """MeshConfig from YAML text (a mesh.yaml, or the `mesh` key of Istio's ConfigMap);
    `shown` names it in messages. Empty text means every default; on errors the defaults
    are returned along with the messages."""
    try:
        deep_line = too_deep(text)
        if deep_line is not None:
            message = f"nests deeper than {MAX_NESTING} levels (line {deep_line})"
            return MeshConfig(), [ConfigMessage(message, Source(file=shown))]
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return MeshConfig(), [_yaml_error(exc, Source(file=shown), 0)]
    except Exception as exc:  # YAML the parser chokes on
        return MeshConfig(), [ConfigMessage(f"cannot read MeshConfig: {exc}", Source(file=shown))]
    if data is None:
        return MeshConfig(), []
    source = Source(file=shown)
    if not isinstance(data, dict):
        return MeshConfig(), [ConfigMessage("MeshConfig must be a mapping", source)]
    try:
        return MeshConfig.model_validate(data, by_alias=True, by_name=False), []
    except ValidationError as exc:
        messages = [
            ConfigMessage(message, source, field=path or None)
            for path, message in errors_by_field(exc, MeshConfig, "")
        ]
        return MeshConfig(), messages


def read_keys(text: str, file: str | None = None) -> tuple[list[ResourceKey], list[ConfigMessage]]:
    """The kind/namespace/name of each document, reading nothing else (for deletes)."""
    keys: list[ResourceKey] = []
    messages: list[ConfigMessage] = []
    for document, data, error in _documents(text, file):
        source = Source(file=file, document=document)
        if error is not None:
            messages.append(error)
            continue
        metadata = data.get("metadata") if isinstance(data, dict) else None
        kind = data.get("kind") if isinstance(data, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        namespace = metadata.get("namespace", "default") if isinstance(metadata, dict) else None
        if isinstance(kind, str) and isinstance(name, str) and isinstance(namespace, str):
            info = known_kind(data.get("apiVersion"), kind)
            stored_kind = info.kind if info is not None else kind
            keys.append(ResourceKey(stored_kind, namespace or "default", name))
        else:
            messages.append(ConfigMessage("needs kind, metadata.name (and namespace)", source))
    return keys, messages


def _load_into(result: LoadResult, text: str, file: str | None) -> None:
    for document, data, error in _documents(text, file):
        if error is not None:
            result.messages.append(error)
            continue
        resource, messages = parse_document(data, Source(file=file, document=document))
        result.messages.extend(messages)
        if resource is not None:
            result.resources.append(resource)


def _documents(text: str, file: str | None) -> Iterator[tuple[int, Any, ConfigMessage | None]]:
    """(document number, parsed data, error) for each non-empty document of `text`.

    Documents are split at `---` lines first, so a syntax error in one document is
    reported with its line and does not stop the others from loading.
    """
    number = 0
    for start_line, chunk in _split(text):
        deep_line = too_deep(chunk)
        if deep_line is not None:
            number += 1
            source = Source(file=file, document=number)
            yield number, None, ConfigMessage(
                f"document nests deeper than {MAX_NESTING} levels (line {start_line + deep_line})",
                source,
            )
            continue
        try:
            parsed = list(yaml.load_all(chunk, Loader=_Loader))
        except yaml.MarkedYAMLError as exc:
            number += 1
            yield number, None, _yaml_error(exc, Source(file=file, document=number), start_line)
            continue
        except Exception as exc:  # e.g. nesting too deep for the parser
            number += 1
            source = Source(file=file, document=number)
            yield number, None, ConfigMessage(f"invalid YAML: {exc}", source)
            continue
        if not parsed:
            number += 1  # an empty document still counts, as in kubectl
        for data in parsed:
            number += 1
            if data is None:
                continue
            yield number, data, None


def _split(text: str) -> Iterator[tuple[int, str]]:
    """(0-based first line, text) of each `---`-separated chunk."""
    lines = text.splitlines(keepends=True)
    start = 0
    for index, line in enumerate(lines):
        if _SEPARATOR.match(line) and index > 0:
            yield from _chunk(lines, start, index)
            start = index
    yield from _chunk(lines, start, len(lines))


def _chunk(lines: Sequence[str], start: int, end: int) -> Iterator[tuple[int, str]]:
    body = lines[start:end]
    leading = start == 0 and not (body and _SEPARATOR.match(body[0]))
    if leading and all(_BLANK_OR_COMMENT.match(line) for line in body):
        return  # text before the first `---` is a document only if it has content
    yield start, "".join(body)


def _yaml_error(exc: yaml.MarkedYAMLError, source: Source, line_offset: int) -> ConfigMessage:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or str(exc)
    if mark is None:
        return ConfigMessage(f"invalid YAML: {problem}", source)
    return ConfigMessage(f"invalid YAML at line {mark.line + 1 + line_offset}: {problem}", source)


def _config_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != STATE_DIR_NAME)
        here = Path(directory)
        for name in files:
            if name.startswith(".") or not name.endswith(_YAML_SUFFIXES):
                continue
            if here == root and name == MESH_CONFIG_FILE:
                continue
            found.append(here / name)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _drop_duplicates(result: LoadResult) -> None:
    """Keep the first resource of each key; report later ones naming both places."""
    first: dict[ResourceKey, Resource[Any]] = {}
    kept: list[Resource[Any]] = []
    for resource in result.resources:
        earlier = first.get(resource.key)
        if earlier is None:
            first[resource.key] = resource
            kept.append(resource)
            continue
        result.messages.append(
            ConfigMessage(
                f"duplicate resource: also defined at {earlier.source.describe()}",
                resource.source,
                resource.key,
                code="RL0001",
            )
        )
    result.resources = kept
