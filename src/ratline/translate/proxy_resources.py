"""One proxy's Envoy resources as messages, and the type URLs they are grouped by.

`ProxyResources` is what `translate.generator.MeshGenerator` makes per proxy and
`controlplane.config_source` packs: the shared outbound part (the very same tuples for every
proxy of an egress scope) kept apart from the proxy's own resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf.message import Message

from ratline.translate.common import type_url

OutboundPart = tuple[
    tuple[cluster_pb2.Cluster, ...], tuple[endpoint_pb2.ClusterLoadAssignment, ...]
]
"""Outbound clusters and load assignments (of one service, or of what a scope sees)."""

CLUSTER_TYPE = type_url(cluster_pb2.Cluster)
ENDPOINT_TYPE = type_url(endpoint_pb2.ClusterLoadAssignment)
LISTENER_TYPE = type_url(listener_pb2.Listener)
ROUTE_TYPE = type_url(route_pb2.RouteConfiguration)
SECRET_TYPE = type_url(secret_pb2.Secret)


@dataclass(frozen=True)
class ProxyResources:
    """One proxy's Envoy resources as messages (before packing).

    Clusters and load assignments come in two parts: `shared`, the outbound ones every
    proxy of the same egress scope has (the very same tuples, so packing and diffing them
    is done once for all), and the proxy's own (inbound and policy clusters).
    """

    own_clusters: tuple[cluster_pb2.Cluster, ...] = ()
    own_endpoints: tuple[endpoint_pb2.ClusterLoadAssignment, ...] = ()
    listeners: tuple[listener_pb2.Listener, ...] = ()
    routes: tuple[route_pb2.RouteConfiguration, ...] = ()
    secrets: tuple[secret_pb2.Secret, ...] = ()
    """SDS over ADS: the TLS credentials a gateway's servers name (`kubernetes://NAME`)."""
    shared: Mapping[str, tuple[Message, ...]] = field(default_factory=dict)
    """Type URL → the shared part of that type (clusters and load assignments)."""

    @property
    def clusters(self) -> tuple[cluster_pb2.Cluster, ...]:
        """Every cluster: the shared ones, then the proxy's own."""
        return self.shared.get(CLUSTER_TYPE, ()) + self.own_clusters  # type: ignore[return-value]

    @property
    def endpoints(self) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
        """Every load assignment: the shared ones, then the proxy's own."""
        return self.shared.get(ENDPOINT_TYPE, ()) + self.own_endpoints  # type: ignore[return-value]

    def parts(self) -> dict[str, tuple[tuple[Message, ...], tuple[Message, ...]]]:
        """Type URL → (shared messages, the proxy's own), without copying either."""
        return {
            CLUSTER_TYPE: (self.shared.get(CLUSTER_TYPE, ()), self.own_clusters),
            ENDPOINT_TYPE: (self.shared.get(ENDPOINT_TYPE, ()), self.own_endpoints),
            LISTENER_TYPE: ((), self.listeners),
            ROUTE_TYPE: ((), self.routes),
            SECRET_TYPE: ((), self.secrets),
        }

    def by_type(self) -> dict[str, tuple[Message, ...]]:
        """Type URL → every message of that type."""
        return {url: shared + own for url, (shared, own) in self.parts().items()}
