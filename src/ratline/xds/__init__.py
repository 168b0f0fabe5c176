"""A generic xDS server (SotW and delta ADS) that knows nothing of Istio semantics.

Give `XdsServer` a `ConfigSource` (type URL → name → `VersionedResource` per node, built
with `pack`; a `ResourceSet` per type lets proxies share the bulk of it), start it, and
call `notify` whenever a node's config may have changed.
"""

from ratline.xds.cache import group_by_type, pack, resources_version, snapshot_version
from ratline.xds.protocol import Nack, SyncState, TypeStatus
from ratline.xds.resource_set import ResourceSet
from ratline.xds.server import ProxyStatus, XdsMode, XdsServer
from ratline.xds.types import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    ROUTE,
    SECRET,
    SHORT_NAMES,
    ConfigSource,
    Resources,
    VersionedResource,
)

__all__ = [
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "PUSH_ORDER",
    "ROUTE",
    "SECRET",
    "SHORT_NAMES",
    "ConfigSource",
    "Nack",
    "ProxyStatus",
    "ResourceSet",
    "Resources",
    "SyncState",
    "TypeStatus",
    "VersionedResource",
    "XdsMode",
    "XdsServer",
    "group_by_type",
    "pack",
    "resources_version",
    "snapshot_version",
]
