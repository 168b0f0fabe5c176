"""The config store: the mesh directory's resources plus those applied through the API.

Two layers make the effective config:
- the *directory layer*, the YAML files of the mesh directory, re-read when they change;
  a file that fails to load keeps the resources it had before (last good config). A
  file whose stat (inode, size, mtime) and then text are unchanged is not parsed again:
  its resources stay the very same objects, so an edit of one file costs one file's
  parse, and the snapshot and translation can tell by identity what did not change;
- the *applied layer*, what `ratline apply` sent, persisted one file per resource under
  the state folder so that a restart loses nothing. An applied resource overrides one of
  the same kind, namespace and name from the directory; deleting it brings the
  directory's back.

`ConfigStore` is the small interface the rest of the control plane uses, so that a
Kubernetes-backed store can take this one's place.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any, Protocol

from ratline.api import analyze, load_mesh_config, load_text
from ratline.api.envelope import Resource, ResourceKey, Source
from ratline.api.errors import ConfigError, ConfigMessage, Severity
from ratline.config.persist import AppliedFiles
from ratline.settings import STATE_DIR_NAME

log = logging.getLogger("ratline.config")

MESH_CONFIG_FILE = "mesh.yaml"
APPLIED_DIR = "applied"


class StoreWriteError(ConfigError):
    """The config was valid but could not be written (e.g. the disk is full)."""


@dataclass(frozen=True)
class StoredResource:
    resource: Resource[Any]
    origin: str
    """`dir` (from the mesh directory) or `applied` (through the API)."""


@dataclass(frozen=True)
class ApplyResult:
    created: list[ResourceKey] = field(default_factory=list)
    configured: list[ResourceKey] = field(default_factory=list)
    unchanged: list[ResourceKey] = field(default_factory=list)
    warnings: list[ConfigMessage] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteResult:
    deleted: list[ResourceKey] = field(default_factory=list)
    not_found: list[ResourceKey] = field(default_factory=list)


class ConfigStore(Protocol):
    """What the control plane needs of a config store."""

    @property
    def version(self) -> str: ...

    @property
    def mesh_config(self) -> Any: ...

    def stored(self, kind: str | None = None) -> list[StoredResource]: ...

    def apply(self, text: str, filename: str | None) -> ApplyResult: ...

    def delete(self, text: str, filename: str | None) -> DeleteResult: ...

    def subscribe(self, callback: Callable[[], None]) -> None: ...

    @property
    def refused(self) -> list[ConfigMessage]:
        """Why config in the source is not (or only in an older version) in force."""
        ...

    async def wait_changed(self, since: str, timeout: float) -> None:
        """Return when the version differs from `since`, or after `timeout` seconds."""
        ...

    async def watch(self) -> None:
        """Keep the store current with its source until cancelled."""
        ...


def mesh_files(mesh_dir: Path) -> list[Path]:
    """The YAML files of a mesh directory that hold resources, in a stable order."""
    return [mesh_dir / rel for rel, _stat in _scan_mesh_dir(mesh_dir)]


def _scan_mesh_dir(mesh_dir: Path) -> list[tuple[str, os.stat_result]]:
    """(relative path, stat) of each resource file, sorted as the paths are: hidden
    entries, the state folder and `mesh.yaml` at the top skipped; symlinked folders are
    not entered (their files, symlinked or not, are read)."""
    found: list[tuple[tuple[str, ...], str, os.stat_result]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(str(mesh_dir), ())]
    while pending:
        folder, parts = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(".") or (not parts and name == STATE_DIR_NAME):
                continue
            rel_parts = (*parts, name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel_parts))
                    continue
                if not name.endswith((".yaml", ".yml")) or rel_parts == (MESH_CONFIG_FILE,):
                    continue
                stat = entry.stat()
            except OSError:
                continue
            if S_ISREG(stat.st_mode):
                found.append((rel_parts, "/".join(rel_parts), stat))
    found.sort(key=lambda f: f[0])
    return [(rel, stat) for _parts, rel, stat in found]


def _content_key(resource: Resource[Any]) -> str:
    return repr(sorted(resource.raw.items())) if resource.raw else repr(resource.spec)


@dataclass(frozen=True)
class _LoadedFile:
    """One mesh file as last parsed: what it was parsed from, and what that gave."""

    stat_key: tuple[int, int, int]
    """(inode, size, mtime ns) when it was read."""
    read_at_ns: int
    """When it was read. A file rewritten in place at the same size within the file
    system's timestamp granularity keeps its stat, so a stat is trusted only when its
    mtime is `STAT_TRUSTED_AFTER_NS` older than the read (as git treats "racily clean"
    files); otherwise the text is read and compared."""
    text: str
    errors: list[ConfigMessage]
    resources: list[Resource[Any]]


STAT_TRUSTED_AFTER_NS = 2_000_000_000


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class MeshDirStore:
    """The local-mode config store: a mesh directory plus an applied layer on disk."""

    def __init__(self, mesh_dir: Path, state_dir: Path) -> None:
        self.mesh_dir = mesh_dir
        self._applied_files = AppliedFiles(state_dir / APPLIED_DIR)
        self._dir_layer: dict[str, list[Resource[Any]]] = {}
        """Resources by file (relative path), as last loaded without error."""
        self._applied: dict[ResourceKey, Resource[Any]] = {}
        self._mesh_config: Any = None
        self._refused: dict[str, list[ConfigMessage]] = {}
        """Messages of the last refused load of each file (cleared when it loads)."""
        self._generation = 0
        self._digest = ""
        self._loaded: dict[str, _LoadedFile] = {}
        """Relative path → its last parse (reused while the file is unchanged)."""
        self._content_keys: dict[int, tuple[Resource[Any], str]] = {}
        """id(resource) → (the resource, kept alive so the id stays its own; content key)."""
        self._callbacks: list[Callable[[], None]] = []
        self._changed = asyncio.Event() if _has_loop() else None

    # ---- loading -------------------------------------------------------------------

    def load(self) -> list[ConfigMessage]:
        """First load of everything; returns the errors of files that were refused."""
        messages = self._load_applied()
        messages += self.reload_dir()
        return messages

    def _load_applied(self) -> list[ConfigMessage]:
        messages: list[ConfigMessage] = []
        self._applied_files.remove_leftovers()
        for path in self._applied_files.files():
            result = load_text(path.read_text(), str(path))
            messages += [m for m in result.messages if m.severity is Severity.ERROR]
            for res in result.resources:
                self._applied[res.key] = res
        return messages

    def reload_dir(self) -> list[ConfigMessage]:
        """Re-read the mesh directory; files with errors keep their previous resources."""
        errors: list[ConfigMessage] = []
        mesh_config, mc_messages = load_mesh_config(self.mesh_dir)
        mc_errors = [m for m in mc_messages if m.severity is Severity.ERROR]
        if mc_errors:
            self._refused[MESH_CONFIG_FILE] = mc_errors
            errors += mc_errors
        else:
            self._refused.pop(MESH_CONFIG_FILE, None)
            self._mesh_config = mesh_config
        if self._mesh_config is None:
            self._mesh_config = load_mesh_config(Path("/nonexistent-ratline-defaults"))[0]

        new_layer: dict[str, list[Resource[Any]]] = {}
        seen: dict[ResourceKey, Source] = {}
        loaded: dict[str, _LoadedFile] = {}
        for rel, stat in _scan_mesh_dir(self.mesh_dir):
            parsed = self._parse(self.mesh_dir / rel, rel, _stat_key(stat))
            if isinstance(parsed, _LoadedFile):
                loaded[rel] = parsed
                msgs = list(parsed.errors)
                resources = parsed.resources
            else:
                msgs, resources = parsed, []
            if not msgs:
                for res in resources:
                    if res.key in seen:
                        msgs.append(
                            ConfigMessage(
                                f"duplicate: already defined in {seen[res.key].describe()}",
                                res.source,
                                res.key,
                            )
                        )
            if msgs:
                self._refused[rel] = msgs
                errors += msgs
                if rel in self._dir_layer:
                    new_layer[rel] = self._dir_layer[rel]
                    for res in new_layer[rel]:
                        seen.setdefault(res.key, res.source)
                continue
            self._refused.pop(rel, None)
            new_layer[rel] = list(resources)
            for res in resources:
                seen[res.key] = res.source
        for rel in list(self._refused):
            if rel != MESH_CONFIG_FILE and not (self.mesh_dir / rel).exists():
                del self._refused[rel]
        self._dir_layer = new_layer
        self._loaded = loaded
        for msg in errors:
            log.error("config refused: %s", msg)
        self._changed_if_different()
        return errors

    def _parse(
        self, path: Path, rel: str, stat_key: tuple[int, int, int]
    ) -> _LoadedFile | list[ConfigMessage]:
        """The file's parse (its previous one while its stat or its text is unchanged),
        or the message saying why it cannot be read."""
        before = self._loaded.get(rel)
        if (
            before is not None
            and before.stat_key == stat_key
            and stat_key[2] + STAT_TRUSTED_AFTER_NS < before.read_at_ns
        ):
            return before
        read_at_ns = time.time_ns()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            return [ConfigMessage(f"cannot read: {exc}", Source(rel))]
        if before is not None and before.text == text:
            return _LoadedFile(stat_key, read_at_ns, text, before.errors, before.resources)
        result = load_text(text, rel)
        errors = [m for m in result.messages if m.severity is Severity.ERROR]
        return _LoadedFile(stat_key, read_at_ns, text, errors, list(result.resources))

    # ---- reading -------------------------------------------------------------------

    @property
    def version(self) -> str:
        return self._digest

    @property
    def mesh_config(self) -> Any:
        return self._mesh_config

    @property
    def refused(self) -> list[ConfigMessage]:
        return [m for msgs in self._refused.values() for m in msgs]

    def stored(self, kind: str | None = None) -> list[StoredResource]:
        merged: dict[ResourceKey, StoredResource] = {}
        for resources in self._dir_layer.values():
            for res in resources:
                merged[res.key] = StoredResource(res, "dir")
        for key, res in self._applied.items():
            merged[key] = StoredResource(res, "applied")
        return [s for k, s in sorted(merged.items()) if kind is None or k.kind == kind]

    def resources(self) -> list[Resource[Any]]:
        return [s.resource for s in self.stored()]

    def _dir_keys(self) -> set[ResourceKey]:
        return {res.key for resources in self._dir_layer.values() for res in resources}

    # ---- writing -------------------------------------------------------------------

    def apply(self, text: str, filename: str | None) -> ApplyResult:
        """Validate and store every resource of `text`, or none (raises ConfigError)."""
        result = load_text(text, filename)
        errors = [m for m in result.messages if m.severity is Severity.ERROR]
        if errors:
            raise ConfigError(errors)
        if not result.resources:
            raise ConfigError([ConfigMessage("no resources found", Source(filename))])
        current = {s.resource.key: s.resource for s in self.stored()}
        created: list[ResourceKey] = []
        configured: list[ResourceKey] = []
        unchanged: list[ResourceKey] = []
        for res in result.resources:
            old = current.get(res.key)
            if old is None:
                created.append(res.key)
            elif _content_key(old) == _content_key(res):
                unchanged.append(res.key)
            else:
                configured.append(res.key)
        proposed = dict(current)
        proposed.update({res.key: res for res in result.resources})
        findings = analyze(list(proposed.values()), self._mesh_config, self.mesh_dir)
        touched = {res.key for res in result.resources}
        warnings = [m for m in findings if m.resource in touched]
        to_save = [
            res
            for res in result.resources
            if not (res.key in unchanged and res.key in self._applied)
        ]
        try:
            self._applied_files.save_all([(res.key, res.raw) for res in to_save])
        except OSError as exc:
            raise StoreWriteError(
                [
                    ConfigMessage(
                        f"cannot store the applied config in {self._applied_files.folder}: "
                        f"{exc.strerror or exc}; nothing was applied",
                        Source(filename),
                    )
                ]
            ) from None
        for res in to_save:
            self._applied[res.key] = res
        self._changed_if_different()
        return ApplyResult(created, configured, unchanged, warnings)

    def delete(self, text: str, filename: str | None) -> DeleteResult:
        """Remove applied resources named in `text`; refuses directory-only ones."""
        result = load_text(text, filename)
        keys = [res.key for res in result.resources]
        if not keys:
            errors = [m for m in result.messages if m.severity is Severity.ERROR]
            raise ConfigError(errors or [ConfigMessage("no resources found", Source(filename))])
        dir_keys = self._dir_keys()
        conflicts = [
            ConfigMessage(
                "defined in the mesh directory; edit or remove that file instead",
                self._dir_source(key),
                key,
            )
            for key in keys
            if key in dir_keys and key not in self._applied
        ]
        if conflicts:
            raise ConfigError(conflicts)
        deleted: list[ResourceKey] = []
        not_found: list[ResourceKey] = []
        for key in keys:
            if key in self._applied:
                self._applied_files.remove(key)
                del self._applied[key]
                deleted.append(key)
            else:
                not_found.append(key)
        self._changed_if_different()
        return DeleteResult(deleted, not_found)

    def _dir_source(self, key: ResourceKey) -> Source:
        for resources in self._dir_layer.values():
            for res in resources:
                if res.key == key:
                    return res.source
        return Source()

    # ---- change notification -------------------------------------------------------

    def _digest_of(self, stored: Iterable[StoredResource]) -> str:
        """The config version: a hash of the mesh config and every resource's content
        (each resource's content key computed once while the resource lives on)."""
        known, keys = self._content_keys, {}
        h = hashlib.sha256()
        h.update(repr(self._mesh_config).encode())
        for s in stored:
            res = s.resource
            hit = known.get(id(res))
            if hit is None or hit[0] is not res:
                hit = (res, _content_key(res))
            keys[id(res)] = hit
            h.update(f"{res.key}|{s.origin}|{hit[1]}\n".encode())
        self._content_keys = keys
        return h.hexdigest()[:16]

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    async def wait_changed(self, since: str, timeout: float) -> None:
        """Return when the version differs from `since`, or after `timeout` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        deadline = asyncio.get_running_loop().time() + timeout
        while self._digest == since:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return

    async def watch(self) -> None:
        """Re-read the mesh directory whenever one of its YAML files changes."""
        from watchfiles import awatch

        state = self.mesh_dir / STATE_DIR_NAME

        def relevant(_change: object, path: str) -> bool:
            p = Path(path)
            return state not in p.parents and p.suffix in (".yaml", ".yml")

        async for _changes in awatch(
            self.mesh_dir, watch_filter=relevant, debounce=50, step=25, recursive=True
        ):
            before = self.version
            self.reload_dir()
            if self.version != before:
                log.info("mesh directory changed: config version %s", self.version)

    def _changed_if_different(self) -> None:
        digest = self._digest_of(self.stored())
        if digest == self._digest:
            return
        self._digest = digest
        self._generation += 1
        if self._changed is not None:
            self._changed.set()
        for callback in self._callbacks:
            callback()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
