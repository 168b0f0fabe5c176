"""Packing Envoy protos into versioned resources, and hashing sets of them into versions.

Versions are content hashes: an identical resource keeps its version from one push to
the next (so delta xDS sends nothing for it), and a reverted config reuses its old
version string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from google.protobuf import any_pb2
from google.protobuf.message import Message

from ratline.xds.types import Resources, VersionedResource

TYPE_URL_PREFIX = "type.googleapis.com/"
VERSION_LENGTH = 16
"""Hex characters kept from a sha256: short enough to read, long enough not to collide."""


def resource_name(message: Message) -> str:
    """The xDS name of an Envoy resource: its `name`, or `cluster_name` for a load assignment."""
    for field_name in ("name", "cluster_name"):
        if field_name in message.DESCRIPTOR.fields_by_name:
            value = getattr(message, field_name)
            if isinstance(value, str) and value:
                return value
    raise ValueError(f"{message.DESCRIPTOR.full_name} has no name; pass name= to pack()")


def pack(message: Message, name: str | None = None) -> VersionedResource:
    """Serialize a resource once, versioned by the sha256 of its (deterministic) bytes."""
    body = message.SerializeToString(deterministic=True)
    packed = any_pb2.Any(type_url=TYPE_URL_PREFIX + message.DESCRIPTOR.full_name, value=body)
    version = hashlib.sha256(body).hexdigest()[:VERSION_LENGTH]
    return VersionedResource(
        name=name if name is not None else resource_name(message), version=version, body=packed
    )


def group_by_type(
    resources: Iterable[VersionedResource],
) -> dict[str, dict[str, VersionedResource]]:
    """Index resources as type URL → name → resource (what a ConfigSource returns).

    A name given twice for one type raises ValueError: xDS names are unique per type.
    """
    grouped: dict[str, dict[str, VersionedResource]] = {}
    for resource in resources:
        by_name = grouped.setdefault(resource.body.type_url, {})
        if resource.name in by_name:
            raise ValueError(f"duplicate {resource.body.type_url} resource {resource.name!r}")
        by_name[resource.name] = resource
    return grouped


def set_version(name_versions: Mapping[str, str]) -> str:
    """The version of a set of resources given as name → version (order does not matter)."""
    digest = hashlib.sha256()
    for name in sorted(name_versions):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(name_versions[name].encode())
        digest.update(b"\n")
    return digest.hexdigest()[:VERSION_LENGTH]


def resources_version(resources: Mapping[str, VersionedResource]) -> str:
    """The SotW version of a set of resources: a hash of their names and versions."""
    return set_version({name: r.version for name, r in resources.items()})


def snapshot_version(resources: Resources) -> str:
    """A version for a whole type URL → name → resource map (handy for ConfigSources)."""
    return set_version(
        {f"{t} {n}": r.version for t, by in resources.items() for n, r in by.items()}
    )
