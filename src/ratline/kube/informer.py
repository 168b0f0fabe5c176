"""List and watch one resource type, forever: the async adapter of `ratline.kube.watch`.

An `Informer` lists (in pages), then watches from the list's resourceVersion with
bookmarks, and watches again from the last resourceVersion seen whenever a watch ends
(the server closes each one after `timeoutSeconds`). A 410 Gone means the version is too
old: it lists again and reports the difference. Any other failure (the API server down,
a broken connection, an error answer) is retried after a jittered exponential back-off,
while the objects last seen stay in force: consumers keep serving the last good state.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from ratline.kube.connection import KubeApiError, KubeConnection
from ratline.kube.resources import ResourceType
from ratline.kube.watch import Change, Expired, WatchFailed, WatchState

log = logging.getLogger("ratline.kube.informer")

T = TypeVar("T")

PAGE_SIZE = 500
WATCH_TIMEOUT_S = (240, 360)
"""Each watch asks the server to end it after a random time in this range (as client-go)."""
READ_TIMEOUT_MARGIN_S = 30
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 10.0


class Backoff:
    """Jittered exponential delays; `reset` after a success."""

    def __init__(self, initial: float = BACKOFF_INITIAL_S, maximum: float = BACKOFF_MAX_S) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.failures)
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


class Informer(Generic[T]):
    """Keeps a `WatchState` of one resource type current and reports its changes."""

    def __init__(
        self,
        connection: KubeConnection,
        resource: ResourceType,
        transform: Callable[[Mapping[str, Any]], T],
        on_changes: Callable[[list[Change[T]]], None],
        namespace: str | None = None,
    ) -> None:
        self.connection = connection
        self.resource = resource
        self.state: WatchState[T] = WatchState(transform)
        self.on_changes = on_changes
        self.namespace = namespace
        self.synced = asyncio.Event()
        """Set once the first list is in (stays set: later outages keep the old state)."""
        self.last_error: str | None = None
        self.relists = 0
        self._backoff = Backoff()

    @property
    def objects(self) -> Mapping[tuple[str, str], T]:
        return self.state.objects

    async def run(self) -> None:
        """Until cancelled."""
        path = self.resource.collection_path(self.namespace)
        while True:
            try:
                if not self.state.listed:
                    await self._list(path)
                await self._watch(path)
                self._backoff.reset()
            except Expired as exc:
                log.info("%s: %s; listing again", self.resource, exc)
            except (KubeApiError, WatchFailed, ValueError) as exc:
                if isinstance(exc, KubeApiError) and exc.status == 410:
                    self.state.listed = False
                    log.info("%s: resourceVersion expired; listing again", self.resource)
                    continue
                self.last_error = str(exc)
                delay = self._backoff.next_delay()
                log.warning("%s: %s; retrying in %.1fs", self.resource, exc, delay)
                await asyncio.sleep(delay)

    async def _list(self, path: str) -> None:
        items: list[Mapping[str, Any]] = []
        token = ""
        while True:
            answer = await self.connection.get(path, self.state.list_query(PAGE_SIZE, token))
            items.extend(answer.get("items") or ())
            metadata = answer.get("metadata") or {}
            token = str(metadata.get("continue") or "")
            if not token:
                break
        changes = self.state.relisted(items, str(metadata.get("resourceVersion") or ""))
        self.relists += 1
        self.last_error = None
        self._publish(changes)
        self.synced.set()

    async def _watch(self, path: str) -> None:
        timeout = random.randint(*WATCH_TIMEOUT_S)
        query = self.state.watch_query(timeout)
        async with self.connection.stream(path, query, timeout + READ_TIMEOUT_MARGIN_S) as events:
            async for event in events:
                change = self.state.event(event)
                self._backoff.reset()
                if change is not None:
                    self._publish([change])

    def _publish(self, changes: list[Change[T]]) -> None:
        if not changes:
            return
        try:
            self.on_changes(changes)
        except Exception:
            log.exception("%s: a consumer failed on %d changes", self.resource, len(changes))
