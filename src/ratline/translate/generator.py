"""The per-snapshot generator: every proxy's Envoy resources, translated once and shared.

`MeshGenerator` is made for one snapshot (the memo lives inside it, so no cache key can
miss an input). Outbound clusters and load assignments are the same for every proxy and
are built once; the sidecar route configuration depends only on the proxy's namespace
(and labels, when some VirtualService matches on sourceLabels); inbound resources are per
proxy and gateway resources per gateway proxy.

Packing is injected (`pack`: message → packed resource, e.g. `ratline.xds.cache.pack`):
the translate layer may not import the xDS server's package. With that packer the
generator is a `ratline.xds.types.ConfigSource`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from ratline.api.errors import ConfigMessage
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.settings import Settings
from ratline.translate import clusters, endpoints, listeners, routes
from ratline.translate.common import Findings, labels_match, type_url
from ratline.translate.routes import GatewayServer, ProxyScope

PackedT = TypeVar("PackedT")

CLUSTER_TYPE = type_url(cluster_pb2.Cluster)
ENDPOINT_TYPE = type_url(endpoint_pb2.ClusterLoadAssignment)
LISTENER_TYPE = type_url(listener_pb2.Listener)
ROUTE_TYPE = type_url(route_pb2.RouteConfiguration)

HTTP_SERVER_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
"""Gateway server protocols translated so far (TLS termination comes later)."""


@dataclass(frozen=True)
class ProxyResources:
    """One proxy's Envoy resources as messages (before packing)."""

    clusters: tuple[cluster_pb2.Cluster, ...] = ()
    endpoints: tuple[endpoint_pb2.ClusterLoadAssignment, ...] = ()
    listeners: tuple[listener_pb2.Listener, ...] = ()
    routes: tuple[route_pb2.RouteConfiguration, ...] = ()

    def by_type(self) -> dict[str, tuple[Message, ...]]:
        """Type URL → messages."""
        return {
            CLUSTER_TYPE: self.clusters,
            ENDPOINT_TYPE: self.endpoints,
            LISTENER_TYPE: self.listeners,
            ROUTE_TYPE: self.routes,
        }


def listen_port(server_port: int, settings: Settings) -> int:
    """Where a gateway really listens for a server port (80 → 8080 with the default offset)."""
    return server_port + settings.gateway_port_offset if server_port < 1024 else server_port


def _uses_source_labels(snapshot: MeshSnapshot) -> bool:
    return any(
        match.source_labels
        for vs in snapshot.virtual_services
        for http in vs.spec.http
        for match in http.match
    )


class MeshGenerator(Generic[PackedT]):
    """Translates one snapshot for any proxy, sharing what proxies have in common."""

    def __init__(
        self,
        snapshot: MeshSnapshot,
        settings: Settings,
        pack: Callable[[Message], PackedT],
    ) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self._pack = pack
        self._findings = Findings()
        self._label_scoped = _uses_source_labels(snapshot)
        self._outbound: tuple[tuple[cluster_pb2.Cluster, ...], tuple[Any, ...]] | None = None
        self._sidecar_routes: dict[ProxyScope, route_pb2.RouteConfiguration] = {}
        self._proxies: dict[str, ProxyResources | None] = {}
        self._packed: dict[int, tuple[Message, PackedT]] = {}

    @property
    def messages(self) -> list[ConfigMessage]:
        """Findings so far: config not (yet) translated or referring to unknown things."""
        return list(self._findings.messages)

    # ---- the ConfigSource interface ------------------------------------------------------

    def resources_for(self, node_id: str) -> tuple[str, dict[str, dict[str, PackedT]]] | None:
        """(snapshot version, type URL → name → packed resource), None for unknown nodes."""
        protos = self.protos_for(node_id)
        if protos is None:
            return None
        result: dict[str, dict[str, PackedT]] = {}
        for url, messages in protos.by_type().items():
            result[url] = {_name(m): self._packed_one(m) for m in messages}
        return self.snapshot.version, result

    def _packed_one(self, message: Message) -> PackedT:
        """Pack a message once; shared messages (by identity) share their packed form."""
        hit = self._packed.get(id(message))
        if hit is None:
            hit = (message, self._pack(message))
            self._packed[id(message)] = hit
        return hit[1]

    # ---- messages ------------------------------------------------------------------------

    def protos_for(self, node_id: str) -> ProxyResources | None:
        """One proxy's resources as messages, None for a node not in the snapshot."""
        if node_id not in self._proxies:
            instance = self.snapshot.instance(node_id)
            if instance is None:
                return None
            if instance.kind is ProxyKind.ROUTER:
                self._proxies[node_id] = self._gateway(instance)
            else:
                self._proxies[node_id] = self._sidecar(instance)
        return self._proxies[node_id]

    def outbound(self) -> tuple[tuple[cluster_pb2.Cluster, ...], tuple[Any, ...]]:
        """The clusters and load assignments every proxy gets (built once)."""
        if self._outbound is None:
            self._outbound = (
                tuple(clusters.outbound_clusters(self.snapshot, self._findings)),
                tuple(endpoints.outbound_load_assignments(self.snapshot)),
            )
        return self._outbound

    def sidecar_routes(self, scope: ProxyScope) -> route_pb2.RouteConfiguration:
        """`http_proxy` for a proxy scope (memoized per namespace, and labels if they matter)."""
        if not self._label_scoped:
            scope = ProxyScope(scope.namespace)
        config = self._sidecar_routes.get(scope)
        if config is None:
            config = routes.sidecar_route_config(self.snapshot, scope, self._findings)
            self._sidecar_routes[scope] = config
        return config

    def _sidecar(self, instance: WorkloadInstance) -> ProxyResources:
        shared_clusters, shared_endpoints = self.outbound()
        address = self.settings.bind_address
        mesh = self.snapshot.mesh_config
        out_listeners = []
        out_routes = []
        if instance.sidecar is not None:
            out_listeners.append(
                listeners.http_proxy_listener(address, instance.sidecar.outbound_port, mesh)
            )
            out_routes.append(
                self.sidecar_routes(ProxyScope.of(instance.namespace, instance.labels))
            )
        for port in sorted(instance.ports, key=lambda p: p.container_port):
            if port.inbound_port is not None:
                out_listeners.append(listeners.inbound_listener(address, port, mesh))
        return ProxyResources(
            clusters=shared_clusters + tuple(clusters.inbound_clusters(instance)),
            endpoints=shared_endpoints,
            listeners=tuple(out_listeners),
            routes=tuple(out_routes),
        )

    def gateway_servers(self, instance: WorkloadInstance) -> dict[int, list[GatewayServer]]:
        """The HTTP servers of the Gateways selecting this proxy, by listen port."""
        by_port: dict[int, list[GatewayServer]] = {}
        for gateway in self.snapshot.gateways:
            if not labels_match(gateway.spec.selector, instance.labels):
                continue
            for index, server in enumerate(gateway.spec.servers):
                protocol = server.port.protocol.upper()
                if protocol not in HTTP_SERVER_PROTOCOLS:
                    self._findings.not_supported(
                        gateway, f"spec.servers[{index}].port.protocol", f"protocol {protocol}"
                    )
                    continue
                if server.tls is not None:
                    self._findings.not_supported(gateway, f"spec.servers[{index}].tls", "tls")
                port = listen_port(server.port.number, self.settings)
                by_port.setdefault(port, []).append(GatewayServer(gateway, server, index))
        return by_port

    def _gateway(self, instance: WorkloadInstance) -> ProxyResources:
        shared_clusters, shared_endpoints = self.outbound()
        scope = ProxyScope.of(instance.namespace, instance.labels)
        mesh = self.snapshot.mesh_config
        out_listeners = []
        out_routes = []
        for port, servers in sorted(self.gateway_servers(instance).items()):
            out_listeners.append(listeners.gateway_listener(self.settings.bind_address, port, mesh))
            out_routes.append(
                routes.gateway_route_config(self.snapshot, servers, port, scope, self._findings)
            )
        return ProxyResources(
            clusters=shared_clusters,
            endpoints=shared_endpoints,
            listeners=tuple(out_listeners),
            routes=tuple(out_routes),
        )


def _name(message: Message) -> str:
    name = getattr(message, "name", "") or getattr(message, "cluster_name", "")
    if not name:
        raise ValueError(f"{message.DESCRIPTOR.full_name} without a name")
    return str(name)
