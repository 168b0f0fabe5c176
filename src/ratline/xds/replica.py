"""Copying each proxy's resources from the translator process to an xDS worker process.

With `xds_workers` > 1 the process that translates (the control plane) serves no stream
itself: worker processes do (`xds.workers`, `xds.worker`), and each needs, for the proxies
connected to it, what `ConfigSource.resources_for` would return. This module is the
sans-IO part of that copy, one `Publisher` per worker on the translator's side and one
`Replica` in the worker:

- A resource travels once: `Publisher` numbers every `VersionedResource` it sends to its
  worker (by type URL, name and version: content-addressed) and later refers to it by
  number. The bytes sent are the packed `Any` value, encoded once by the translator.
- A shared `ResourceSet` base (the mesh's clusters, load assignments) travels once as a
  list of numbers; the replica rebuilds one `ResourceSet` per base, so every proxy of a
  scope shares the very same base object in the worker too, and the diffs and encodings
  memoized on it are computed once per worker and push.
- A proxy is sent as, per type URL, its base number and its own resources' numbers, and
  only for the types whose set is not the very object sent last time.

Messages are plain tuples of str/int/bytes (pickled by `xds.workers` over a socket pair
between the two processes of one control plane). The replica keeps what it was sent until
`Publisher.compact` finds it holds more than twice what its proxies use; it then starts
over (`RESET`) and sends the live part again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import any_pb2

from ratline.xds.resource_set import ResourceSet
from ratline.xds.types import Resources, VersionedResource

RESOURCES = "resources"
"""(RESOURCES, [(number, type URL, name, version, Any value bytes), ...])"""
BASE = "base"
"""(BASE, number, [resource numbers])"""
NODE = "node"
"""(NODE, node id, snapshot version, {type URL: (base number or -1, [resource numbers])})"""
FORGET = "forget"
"""(FORGET, node id): the translator knows no config for it (resources_for gave None)."""
RESET = "reset"
"""(RESET,): forget every resource, base and node; what follows sends the live ones."""

Message = tuple[Any, ...]
COMPACT_MIN = 20_000
"""Resources a replica may hold before `compact` considers starting over."""


class Publisher:
    """The translator's side of one worker's replica: what it holds, what to send it."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str, str], int] = {}
        self._bases: dict[int, tuple[ResourceSet, int]] = {}
        """id(base set) → (the set, kept alive so the id stays its own; its number)."""
        self._nodes: dict[str, dict[str, Mapping[str, VersionedResource]]] = {}
        """node id → type URL → the set last sent (compared by identity)."""
        self._versions: dict[str, str] = {}
        self._next = 0

    @property
    def nodes(self) -> set[str]:
        """The proxies this replica has config for."""
        return set(self._nodes)

    def publish(
        self, node_id: str, found: tuple[str, Resources] | None, out: list[Message]
    ) -> None:
        """Append to `out` what the replica needs to give `node_id` this config."""
        if found is None:
            if node_id in self._nodes:
                del self._nodes[node_id]
                self._versions.pop(node_id, None)
                out.append((FORGET, node_id))
            return
        version, resources = found
        sent = self._nodes.get(node_id)
        if (
            sent is not None
            and self._versions.get(node_id) == version
            and all(sent.get(t) is s for t, s in resources.items())
            and len(sent) == len(resources)
        ):
            return
        parts: dict[str, tuple[int, list[int]]] = {}
        pending: list[tuple[int, str, str, str, bytes]] = []
        for type_url, resource_set in resources.items():
            base = resource_set.base if isinstance(resource_set, ResourceSet) else None
            own = resource_set.own_part() if isinstance(resource_set, ResourceSet) else resource_set
            base_number = -1 if base is None else self._base(base, pending, out)
            parts[type_url] = (base_number, [self._number(r, pending) for r in own.values()])
        if pending:
            out.append((RESOURCES, pending))
        out.append((NODE, node_id, version, parts))
        self._nodes[node_id] = dict(resources)
        self._versions[node_id] = version

    def drop(self, node_id: str) -> None:
        """The node left this worker: stop tracking what it was sent."""
        self._nodes.pop(node_id, None)
        self._versions.pop(node_id, None)

    def compact(self, out: list[Message]) -> bool:
        """Start the replica over when it holds much more than its proxies use (the
        resources of earlier pushes); True if it did (the nodes must be published again)."""
        if len(self._numbers) < COMPACT_MIN:
            return False
        live = 0
        bases: set[int] = set()
        for sets in self._nodes.values():
            for resource_set in sets.values():
                if isinstance(resource_set, ResourceSet):
                    live += len(resource_set.own_part())
                    base = resource_set.base
                    if base is not None and id(base) not in bases:
                        bases.add(id(base))
                        live += len(base)
                else:
                    live += len(resource_set)
        if len(self._numbers) <= 2 * live:
            return False
        self._numbers.clear()
        self._bases.clear()
        self._nodes.clear()
        self._versions.clear()
        out.append((RESET,))
        return True

    def _base(
        self, base: ResourceSet, pending: list[tuple[int, str, str, str, bytes]], out: list[Message]
    ) -> int:
        hit = self._bases.get(id(base))
        if hit is not None and hit[0] is base:
            return hit[1]
        numbers = [self._number(r, pending) for r in base.values()]
        if pending:
            out.append((RESOURCES, list(pending)))
            pending.clear()
        number = self._next
        self._next += 1
        out.append((BASE, number, numbers))
        self._bases[id(base)] = (base, number)
        return number

    def _number(
        self, resource: VersionedResource, pending: list[tuple[int, str, str, str, bytes]]
    ) -> int:
        key = (resource.body.type_url, resource.name, resource.version)
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = self._next
            self._next += 1
            pending.append((number, *key, resource.body.value))
        return number


class Replica:
    """The worker's copy: a `ConfigSource` for the proxies connected to this worker."""

    def __init__(self) -> None:
        self._resources: dict[int, VersionedResource] = {}
        self._bases: dict[int, ResourceSet] = {}
        self._nodes: dict[str, tuple[str, dict[str, ResourceSet]]] = {}

    def apply(self, messages: Iterable[Message]) -> set[str]:
        """Take in the translator's messages; the nodes whose config they changed."""
        changed: set[str] = set()
        for message in messages:
            kind = message[0]
            if kind == RESOURCES:
                for number, type_url, name, version, value in message[1]:
                    body = any_pb2.Any(type_url=type_url, value=value)
                    self._resources[number] = VersionedResource(name, version, body)
            elif kind == BASE:
                _, number, members = message
                resources = self._resources
                self._bases[number] = ResourceSet(
                    {resources[n].name: resources[n] for n in members}
                )
            elif kind == NODE:
                _, node_id, version, parts = message
                self._nodes[node_id] = (version, self._sets(parts))
                changed.add(node_id)
            elif kind == FORGET:
                if self._nodes.pop(message[1], None) is not None:
                    changed.add(message[1])
            elif kind == RESET:
                self._resources.clear()
                self._bases.clear()
                self._nodes.clear()
            else:
                raise ValueError(f"unknown replica message {kind!r}")
        return changed

    def _sets(self, parts: Mapping[str, tuple[int, list[int]]]) -> dict[str, ResourceSet]:
        resources = self._resources
        sets: dict[str, ResourceSet] = {}
        for type_url, (base_number, own) in parts.items():
            base = self._bases[base_number] if base_number >= 0 else None
            sets[type_url] = ResourceSet({resources[n].name: resources[n] for n in own}, base)
        return sets

    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        """`ConfigSource.resources_for`, from what the translator sent."""
        return self._nodes.get(node_id)

    def drop(self, node_id: str) -> None:
        """The node left this worker."""
        self._nodes.pop(node_id, None)
