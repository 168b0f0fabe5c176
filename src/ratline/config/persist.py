"""Durable storage of applied resources: one YAML file per resource, written atomically.

A write goes to a temporary file in the same folder, is fsynced, then renamed over the
old one, so a crash mid-write leaves either the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ratline.api.envelope import ResourceKey


def file_name(key: ResourceKey) -> str:
    return f"{key.kind.lower()}.{key.namespace}.{key.name}.yaml"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class AppliedFiles:
    """The folder holding what was applied through the API."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, key: ResourceKey, document: Mapping[str, Any]) -> None:
        text = yaml.safe_dump(dict(document), sort_keys=False)
        write_atomic(self.folder / file_name(key), text.encode())

    def remove(self, key: ResourceKey) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / file_name(key)).unlink()

    def files(self) -> Iterator[Path]:
        if self.folder.is_dir():
            yield from sorted(p for p in self.folder.glob("*.yaml") if not p.name.startswith("."))
