"""Durable storage of applied resources: one YAML file per resource, written atomically.

A write goes to a temporary file in the same folder, is fsynced, then renamed over the
old one, so a crash mid-write leaves either the old file or the new one, never half. An
apply of several resources writes every temporary file before renaming any, so running
out of space (ENOSPC) changes nothing; renames need no space.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ratline.api.envelope import ResourceKey


def file_name(key: ResourceKey) -> str:
    return f"{key.kind.lower()}.{key.namespace}.{key.name}.yaml"


TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new content, never half."""
    write_all_atomic([(path, data)])


def _write_temp(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def write_all_atomic(items: Sequence[tuple[Path, bytes]]) -> None:
    """Write several files all or nothing as far as the disk goes.

    Every temporary file is written and fsynced before any is renamed into place; an
    error while writing (a full disk) removes the temporary files and leaves every
    target as it was.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in items:
            temps.append((_write_temp(path, data), path))
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, path in temps:
        os.replace(tmp, path)
    for folder in {path.parent for _, path in temps}:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class AppliedFiles:
    """The folder holding what was applied through the API."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, key: ResourceKey, document: Mapping[str, Any]) -> None:
        self.save_all([(key, document)])

    def save_all(self, documents: Sequence[tuple[ResourceKey, Mapping[str, Any]]]) -> None:
        """Save several resources: all of them, or (OSError) none."""
        write_all_atomic(
            [
                (self.folder / file_name(key), yaml.safe_dump(dict(doc), sort_keys=False).encode())
                for key, doc in documents
            ]
        )

    def remove_leftovers(self) -> None:
        """Delete temporary files a crash mid-write left behind (never read as config)."""
        if self.folder.is_dir():
            for tmp in self.folder.glob(f".*{TEMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def remove(self, key: ResourceKey) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / file_name(key)).unlink()

    def files(self) -> Iterator[Path]:
        if self.folder.is_dir():
            yield from sorted(p for p in self.folder.glob("*.yaml") if not p.name.startswith("."))
