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

from google.protobuf.message import Message

from ratline.translate.generator import MeshGenerator
from ratline.xds.cache import pack
from ratline.xds.resource_set import ResourceSet
from ratline.xds.types import VersionedResource


class PackedConfig:
    """A `ratline.xds.types.ConfigSource` over one snapshot's generator."""

    def __init__(self, generator: MeshGenerator, previous: PackedConfig | None = None) -> None:
        self.generator = generator
        self._earlier_packed: dict[int, tuple[Message, VersionedResource]] = {}
        """The previous config's packing by id(message): messages the generator reused."""
        self._earlier_resources: dict[tuple[str, str, str], VersionedResource] = {}
        self._earlier_bases: dict[tuple[int, str], ResourceSet] = {}
        if previous is not None:
            self._earlier_packed = previous._packed
            for _message, resource in previous._packed.values():
                key = (resource.body.type_url, resource.name, resource.version)
                self._earlier_resources[key] = resource
            for _shared, base in previous._bases.values():
                self._earlier_bases[(len(base), base.version)] = base
        self._packed: dict[int, tuple[Message, VersionedResource]] = {}
        """id(message) → (the message, kept alive so the id stays its own; packed)."""
        self._bases: dict[int, tuple[tuple[Message, ...], ResourceSet]] = {}
        """id(shared tuple) → (the tuple, kept alive; its ResourceSet)."""
        self._proxies: dict[str, tuple[str, dict[str, ResourceSet]] | None] = {}

    @property
    def version(self) -> str:
        return self.generator.snapshot.version

    def resources_for(self, node_id: str) -> tuple[str, dict[str, ResourceSet]] | None:
        """(snapshot version, type URL → the proxy's resources), None for unknown nodes."""
        if node_id in self._proxies:
            return self._proxies[node_id]
        protos = self.generator.protos_for(node_id)
        found: tuple[str, dict[str, ResourceSet]] | None = None
        if protos is not None:
            by_type = {}
            for type_url, messages in protos.by_type().items():
                by_type[type_url] = self._layered(messages, protos.shared.get(type_url, ()))
            found = (self.version, by_type)
        self._proxies[node_id] = found
        return found

    def _layered(self, messages: tuple[Message, ...], shared: tuple[Message, ...]) -> ResourceSet:
        base = self._base(shared) if shared else None
        own = messages[len(shared) :] if shared else messages
        return ResourceSet({_name(m): self._pack(m) for m in own}, base)

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
            earlier = self._earlier_packed.get(id(message))
            if earlier is not None and earlier[0] is message:
                self._packed[id(message)] = earlier
                return earlier[1]
            resource = pack(message, _name(message))
            key = (resource.body.type_url, resource.name, resource.version)
            resource = self._earlier_resources.get(key, resource)
            hit = self._packed[id(message)] = (message, resource)
        return hit[1]


def _name(message: Message) -> str:
    name = getattr(message, "name", "") or getattr(message, "cluster_name", "")
    if not name:
        raise ValueError(f"{message.DESCRIPTOR.full_name} without a name")
    return str(name)
