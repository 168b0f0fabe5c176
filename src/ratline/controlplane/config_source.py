"""The xDS `ConfigSource` of one snapshot: the generator's messages, packed and layered.

`MeshGenerator` (translate) gives each proxy its Envoy messages, the part proxies share
marked (`ProxyResources.shared`, the very same tuple for every proxy of a scope). Here
each message is packed once (serialized and hashed, `xds.cache.pack`), each shared part
becomes one `ResourceSet` base, and a proxy's set of a type is its own few resources
layered on that base. The xDS server can then diff, stage and encode a proxy's config in
O(its own resources) once the shared bases were handled for the first proxy.

One `PackedConfig` per snapshot, like the generator it wraps. It borrows from the one
before it only what is equal by content: packed resources at the same version (their
encodings are reused) and shared sets with the same content hash (so a push that leaves
all clusters alone hands every proxy the very same cluster set, and diffing it is free).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from google.protobuf.message import Message

from ratline.translate.generator import MeshGenerator
from ratline.xds.cache import pack
from ratline.xds.resource_set import ResourceSet
from ratline.xds.types import VersionedResource


@dataclass
class _ProxyEntry:
    """One proxy's sets, and the own messages each was made of (to reuse it next push)."""

    sets: dict[str, ResourceSet]
    own: dict[str, tuple[Message, ...]]

    def same_part(self, type_url: str, base: ResourceSet | None, own: tuple[Message, ...]) -> bool:
        """Whether this entry's set of `type_url` is `base` plus exactly these messages."""
        known = self.own.get(type_url)
        return (
            known is not None
            and self.sets[type_url].base is base
            and len(known) == len(own)
            and all(map(operator.is_, known, own))
        )


class PackedConfig:
    """A `ratline.xds.types.ConfigSource` over one snapshot's generator."""

    def __init__(self, generator: MeshGenerator, previous: PackedConfig | None = None) -> None:
        self.generator = generator
        self._previous_packed: dict[int, tuple[Message, VersionedResource]] = {}
        """The previous config's packing by id(message): messages the generator reused."""
        self._previous_proxies: dict[str, _ProxyEntry | None] = {}
        self._earlier_resources: dict[tuple[str, str, str], VersionedResource] | None = None
        """(type URL, name, version) → a resource of the previous config's shared sets (their
        encodings are reused when the content is equal); built on the first miss."""
        self._earlier_bases: dict[tuple[int, str], ResourceSet] = {}
        if previous is not None:
            self._previous_packed = previous._packed
            self._previous_proxies = previous._proxies
            for _shared, base in previous._bases.values():
                self._earlier_bases[(len(base), base.version)] = base
        self._packed: dict[int, tuple[Message, VersionedResource]] = {}
        """id(message) → (the message, kept alive so the id stays its own; packed)."""
        self._bases: dict[int, tuple[tuple[Message, ...], ResourceSet]] = {}
        """id(shared tuple) → (the tuple, kept alive; its ResourceSet)."""
        self._proxies: dict[str, _ProxyEntry | None] = {}

    @property
    def version(self) -> str:
        return self.generator.snapshot.version

    def resources_for(self, node_id: str) -> tuple[str, dict[str, ResourceSet]] | None:
        """(snapshot version, type URL → the proxy's resources), None for unknown nodes."""
        if node_id not in self._proxies:
            self._proxies[node_id] = self._entry(node_id)
        entry = self._proxies[node_id]
        return None if entry is None else (self.version, entry.sets)

    def _entry(self, node_id: str) -> _ProxyEntry | None:
        protos = self.generator.protos_for(node_id)
        if protos is None:
            return None
        earlier = self._previous_proxies.get(node_id)
        entry = _ProxyEntry({}, {})
        for type_url, (shared, own) in protos.parts().items():
            base = self._base(shared) if shared else None
            entry.own[type_url] = own
            if earlier is not None and earlier.same_part(type_url, base, own):
                entry.sets[type_url] = earlier.sets[type_url]  # the very same set: free to diff
            else:
                entry.sets[type_url] = ResourceSet({_name(m): self._pack(m) for m in own}, base)
        return entry

    def _base(self, shared: tuple[Message, ...]) -> ResourceSet:
        hit = self._bases.get(id(shared))
        if hit is None:
            base = ResourceSet({_name(m): self._pack(m) for m in shared})
            base = self._earlier_bases.get((len(base), base.version), base)
            hit = self._bases[id(shared)] = (shared, base)
        return hit[1]

    def _pack(self, message: Message) -> VersionedResource:
        hit = self._packed.get(id(message))
        if hit is None:
            earlier = self._previous_packed.get(id(message))
            if earlier is not None and earlier[0] is message:
                self._packed[id(message)] = earlier
                return earlier[1]
            resource = pack(message, _name(message))
            if self._earlier_resources is None:
                self._earlier_resources = {
                    (r.body.type_url, r.name, r.version): r
                    for base in self._earlier_bases.values()
                    for r in base.values()
                }
            key = (resource.body.type_url, resource.name, resource.version)
            resource = self._earlier_resources.get(key, resource)
            hit = self._packed[id(message)] = (message, resource)
        return hit[1]


def _name(message: Message) -> str:
    name = getattr(message, "name", "") or getattr(message, "cluster_name", "")
    if not name:
        raise ValueError(f"{message.DESCRIPTOR.full_name} without a name")
    return str(name)
