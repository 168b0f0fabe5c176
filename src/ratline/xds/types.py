"""The narrow interface between the generic xDS server and whatever produces config.

The server knows type URLs, resource names and serialized bytes, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

PUSH_ORDER = (CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE)
"""The order that lets Envoy warm clusters before listeners refer to them."""

SHORT_NAMES = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS", SECRET: "SDS"}


@dataclass(frozen=True)
class VersionedResource:
    """One resource ready to send: packed once, shared by every proxy that gets it."""

    name: str
    version: str
    """A content hash, so an unchanged resource keeps its version across pushes."""
    body: any_pb2.Any

    @cached_property
    def sotw_entry(self) -> bytes:
        """This resource as one `resources` field of a DiscoveryResponse (encoded once)."""
        return length_delimited(2, self.body.SerializeToString())

    @cached_property
    def delta_entry(self) -> bytes:
        """This resource as one `resources` field of a DeltaDiscoveryResponse."""
        message = discovery_pb2.Resource(name=self.name, version=self.version, resource=self.body)
        return length_delimited(2, message.SerializeToString())


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (a string, bytes or message)."""
    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


@dataclass(frozen=True)
class ServerTls:
    """The xDS server's mTLS material as PEM text (a worker process builds its own
    `grpc.ServerCredentials` from it: credentials objects do not cross processes)."""

    key_pem: str
    chain_pem: str
    root_pem: str
    require_client_auth: bool = True

    def credentials(self) -> Any:
        """gRPC server credentials of this material."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key_pem.encode(), self.chain_pem.encode())],
            root_certificates=self.root_pem.encode(),
            require_client_auth=self.require_client_auth,
        )


Resources = Mapping[str, Mapping[str, VersionedResource]]
"""type URL → resource name → resource."""


class ConfigSource(Protocol):
    """What the xDS server asks for a proxy's config. Implemented by the control plane."""

    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        """(snapshot version, resources) for a node, or None for an unknown node."""
        ...
