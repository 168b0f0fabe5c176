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

import operator
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
from ratline.translate import authz, clusters, endpoints, listeners, routes, tls
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
        *,
        mtls: bool = False,
    ) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self.mtls = mtls
        """Proxies have workload certs over SDS: inbound PeerAuthentication, outbound mTLS."""
        self._pack = pack
        self._findings = Findings()
        self._label_scoped = _uses_source_labels(snapshot)
        self._outbound: tuple[tuple[cluster_pb2.Cluster, ...], tuple[Any, ...]] | None = None
        self._sidecar_routes: dict[ProxyScope, route_pb2.RouteConfiguration] = {}
        self._proxies: dict[str, ProxyResources | None] = {}
        self._packed: dict[int, tuple[Message, PackedT]] = {}
        self._shared_maps: dict[int, dict[str, PackedT]] = {}
        """id(shared outbound tuple) → its name → packed map (the tuples live in _outbound)."""

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
            result[url] = self._packed_map(messages)
        return self.snapshot.version, result

    def _packed_map(self, messages: tuple[Message, ...]) -> dict[str, PackedT]:
        """Name → packed resource. The outbound part every proxy shares is mapped once.

        Without this, each proxy's config costs O(mesh) dictionary work per push even
        though its outbound clusters and load assignments are the same objects.
        """
        result: dict[str, PackedT] = {}
        rest = messages
        if self._outbound is not None:
            for shared in self._outbound:
                n = len(shared)
                if n and len(messages) >= n and all(map(operator.is_, messages[:n], shared)):
                    hit = self._shared_maps.get(id(shared))
                    if hit is None:
                        hit = self._shared_maps[id(shared)] = {
                            _name(m): self._packed_one(m) for m in shared
                        }
                    result = dict(hit)
                    rest = messages[n:]
                    break
        for message in rest:
            result[_name(message)] = self._packed_one(message)
        return result

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
                tuple(clusters.outbound_clusters(self.snapshot, self._findings, self.mtls)),
                tuple(
                    endpoints.outbound_load_assignments(
                        self.snapshot,
                        tls.endpoint_tls_predicate(self.snapshot) if self.mtls else None,
                    )
                ),
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
                security = self._security(instance, port.container_port)
                inbound = listeners.inbound_listener(address, port, mesh, security.filters)
                if self.mtls:
                    mode = tls.inbound_mode(self.snapshot, instance, port.container_port)
                    inbound = tls.secure_inbound(inbound, mode)
                out_listeners.append(inbound)
        return ProxyResources(
            clusters=shared_clusters
            + tuple(clusters.inbound_clusters(instance))
            + self._security(instance, 0).clusters,
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
            security = self._security(instance, port)
            out_listeners.append(
                listeners.gateway_listener(self.settings.bind_address, port, mesh, security.filters)
            )
            out_routes.append(
                routes.gateway_route_config(self.snapshot, servers, port, scope, self._findings)
            )
        return ProxyResources(
            clusters=shared_clusters + self._security(instance, 0).clusters,
            endpoints=shared_endpoints,
            listeners=tuple(out_listeners),
            routes=tuple(out_routes),
        )

    def _security(self, instance: WorkloadInstance, port: int) -> authz.SecurityFilters:
        """AuthorizationPolicy / RequestAuthentication filters for one port, and clusters."""
        return authz.security_filters(self.snapshot, instance, port, self._findings)


def _name(message: Message) -> str:
    name = getattr(message, "name", "") or getattr(message, "cluster_name", "")
    if not name:
        raise ValueError(f"{message.DESCRIPTOR.full_name} without a name")
    return str(name)
