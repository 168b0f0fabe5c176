"""The list-and-watch protocol for one resource type, sans IO.

`WatchState` holds what a client has seen of one collection: every object (as its
`transform` made it: the informers keep compact forms, never whole API objects) and the
`resourceVersion` to resume from. The async adapter (`ratline.kube.informer`) feeds it a
list answer (`relisted`) or watch events one by one (`event`) and forwards the
`Change`s. A relist is diffed against what was held, so objects deleted while the
watch was down are seen as deleted; an event that changes nothing `transform` keeps (a
status write, a resourceVersion bump) is no change.

A watch error event with code 410 (the resourceVersion is older than the server keeps)
raises `Expired`: the adapter lists again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
ObjectKey = tuple[str, str]
"""(namespace, name); namespace "" for cluster-scoped objects."""

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class Change(Generic[T]):
    """One object added (`old` None), changed, or deleted (`new` None)."""

    key: ObjectKey
    old: T | None
    new: T | None


class Expired(Exception):
    """The watch's resourceVersion is too old (HTTP 410 Gone): list again."""


class WatchFailed(Exception):
    """The server ended the watch with an error other than 410; retry after a back-off."""


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class WatchState(Generic[T]):
    """One collection as last listed and watched."""

    def __init__(self, transform: Callable[[Mapping[str, Any]], T]) -> None:
        self.transform = transform
        self.objects: dict[ObjectKey, T] = {}
        self.resource_version = ""
        self.listed = False
        """True once a list was taken (and until the state is reset by `Expired`)."""

    def list_query(self, page_size: int, continue_token: str = "") -> dict[str, str]:
        query = {"limit": str(page_size)}
        if continue_token:
            query["continue"] = continue_token
        return query

    def watch_query(self, timeout_s: int) -> dict[str, str]:
        return {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_s),
        }

    def relisted(
        self, items: Iterable[Mapping[str, Any]], resource_version: str
    ) -> list[Change[T]]:
        """Replace everything with a list answer; the differences as changes."""
        fresh = {object_key(item): self.transform(item) for item in items}
        changes: list[Change[T]] = []
        for key, gone in self.objects.items():
            if key not in fresh:
                changes.append(Change(key, gone, None))
        for key, new in fresh.items():
            held = self.objects.get(key)
            if held is None or held != new:
                changes.append(Change(key, held, new))
        self.objects = fresh
        self.resource_version = resource_version
        self.listed = True
        return changes

    def event(self, event: Mapping[str, Any]) -> Change[T] | None:
        """Apply one watch event; the change it makes, if any."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            message = str(obj.get("message") or obj)
            if code == 410:
                self.listed = False
                raise Expired(message)
            raise WatchFailed(f"{code}: {message}")
        version = _resource_version(obj)
        if version:
            self.resource_version = version
        if kind == "BOOKMARK":
            return None
        key = object_key(obj)
        old = self.objects.get(key)
        if kind == "DELETED":
            if old is None:
                return None
            del self.objects[key]
            return Change(key, old, None)
        if kind not in ("ADDED", "MODIFIED"):
            raise WatchFailed(f"unexpected watch event type {kind!r}")
        new = self.transform(obj)
        if old is not None and old == new:
            return None
        self.objects[key] = new
        return Change(key, old, new)
