"""The per-snapshot generator: every proxy's Envoy resources, translated once and shared.

`MeshGenerator` is made for one snapshot (the memo lives inside it, so no cache key can
miss an input). Outbound clusters and load assignments are built once per egress scope
(`translate.sidecar_scope`) and proxies of the same scope get the very same tuples; the
sidecar route configuration depends only on the proxy's namespace, egress scope (and
labels, when a VirtualService matches on sourceLabels); inbound resources are per proxy,
gateway resources per gateway proxy; a captured sidecar's are `translate.captured_sidecar`'s.
Messages only: packing them (shared parts once) is `ratline.controlplane.config_source`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from ratline.api.envelope import Resource
from ratline.api.errors import ConfigMessage
from ratline.api.protocols import is_http
from ratline.model.snapshot import Endpoint, MeshSnapshot, Service
from ratline.observability.peer_metadata import PeerMetadata
from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.settings import Settings
from ratline.translate import (
    authz,
    captured_sidecar,
    client_credentials,
    clusters,
    endpoints,
    gateway_tls,
    l4_listeners,
    listeners,
    names,
    peer_exchange,
    routes,
    telemetry,
    telemetry_envoy,
    tls,
)
from ratline.translate.carry_over import (
    Carry,
    InstanceView,
    carry_from,
    instance_views,
    not_about_routing,
)
from ratline.translate.common import Findings
from ratline.translate.gateway_servers import (
    GatewayPorts,
    L4Port,
    gateway_l4_listener,
    gateway_ports,
)
from ratline.translate.locality import NOWHERE, ClientLocality, locality_of
from ratline.translate.policy import visible_to
from ratline.translate.proxy_resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    OutboundPart,
    ProxyResources,
)
from ratline.translate.routes import GatewayServer, ProxyScope, gateway_listen_port
from ratline.translate.sidecar_scope import EVERYTHING, EgressScope, SidecarIndex
from ratline.translate.tcp_routes import L4Context
from ratline.translate.telemetry_envoy import (
    NO_TELEMETRY,
    HcmTelemetry,
    L4Telemetry,
    hcm_telemetry,
    tcp_telemetry,
)


def _uses_source_labels(snapshot: MeshSnapshot) -> bool:
    return any(
        match.source_labels
        for vs in snapshot.virtual_services
        for http in vs.spec.http
        for match in http.match
    )


class MeshGenerator:
    """Translates one snapshot for any proxy, sharing what proxies have in common."""

    def __init__(
        self,
        snapshot: MeshSnapshot,
        settings: Settings,
        *,
        mtls: bool = False,
        previous: MeshGenerator | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self.mtls = mtls
        """Proxies have workload certs over SDS: inbound PeerAuthentication, outbound mTLS."""
        self._findings = Findings()
        self._findings.extend(snapshot.model_findings)
        self._previous: MeshGenerator | None = None
        """The previous snapshot's generator when `carry` allows taking some of its
        translation (`translate.carry_over`; the shared parts never as a whole)."""
        self._carry = Carry.NOTHING
        if previous is not None and previous.mtls == mtls and previous.settings == settings:
            self._carry = carry_from(previous.snapshot, snapshot)
        if self._carry is not Carry.NOTHING:
            self._previous = previous
        if self._carry is Carry.ALL and previous is not None:
            self._findings.extend(previous.messages)
        elif self._carry is Carry.OUTBOUND and previous is not None:
            self._findings.extend(not_about_routing(previous.messages))
        if previous is not None:
            previous._previous = None  # keep one generation, never a chain
        self._label_scoped = _uses_source_labels(snapshot)
        self._outbound: tuple[tuple[cluster_pb2.Cluster, ...], tuple[Any, ...]] | None = None
        """The all-visible pair (gateways, proxies without a Sidecar), once built."""
        self._outbound_by_scope: dict[
            tuple[EgressScope, ClientLocality],
            tuple[tuple[cluster_pb2.Cluster, ...], tuple[Any, ...]],
        ] = {}
        """(Egress scope (its visibility part), client locality) → the pair every proxy of
        that scope and locality shares (the locality is NOWHERE unless it matters)."""
        self._localized: frozenset[str] | None = None
        """Hostnames whose load assignments depend on the client's locality."""
        self._by_service_client: dict[tuple[str, ClientLocality], tuple[Any, ...]] = {}
        self._priority_labels: frozenset[str] | None = None
        self._sidecars = SidecarIndex(snapshot, self._findings)
        self._by_service: dict[str, OutboundPart] = {}
        """Hostname → that service's outbound clusters and load assignments."""
        self._service_findings: dict[str, list[ConfigMessage]] = {}
        """Hostname → the findings of translating its outbound part (carried with it)."""
        self._instance_views: dict[tuple[str, str], InstanceView] | None = None
        self._by_instance_name: dict[tuple[str, str], WorkloadInstance] | None = None
        self._takes_mtls: Callable[[Endpoint], bool] | None = None
        self._peers = peer_exchange.endpoint_peers(snapshot)  # lazy: indexes on first use
        self._sidecar_routes: dict[ProxyScope, route_pb2.RouteConfiguration] = {}
        if self._previous is not None and self._carry is Carry.ALL:
            # Route configurations read the config and the services' names and ports,
            # never endpoints: with those unchanged they are the same.
            self._sidecar_routes.update(self._previous._sidecar_routes)
        self._proxies: dict[str, ProxyResources | None] = {}
        self._inbound_services: dict[tuple[str, str, int], list[str]] | None = None
        self._inbound_protocols: l4_listeners.InboundProtocols | None = None
        self._mesh_routing: dict[str, dict[str, Resource[Any]]] = {}
        """Namespace → hostname → the VirtualService routing it for sidecars there."""
        self._service_routes: dict[
            tuple[ProxyScope, str, int], route_pb2.RouteConfiguration | None
        ] = {}
        """(proxy scope, hostname, port) → RDS of that service port's local listener."""

    @property
    def messages(self) -> list[ConfigMessage]:
        """Findings so far: config not (yet) translated or referring to unknown things."""
        return list(self._findings.messages)

    # ---- messages ------------------------------------------------------------------------

    def protos_for(self, node_id: str) -> ProxyResources | None:
        """One proxy's resources as messages, None for a node not in the snapshot."""
        if node_id not in self._proxies:
            instance = self.snapshot.instance(node_id)
            if instance is None:
                return None
            router = instance.kind is ProxyKind.ROUTER
            scope = EVERYTHING if router else self.egress_scope(instance)
            client = self.client_locality(instance)
            shared_clusters, shared_endpoints = self.outbound(scope, client)
            found = self._unchanged_earlier(instance)
            if found is None:
                found = self._gateway(instance) if router else self._sidecar(instance)
            self._proxies[node_id] = replace(
                found, shared={CLUSTER_TYPE: shared_clusters, ENDPOINT_TYPE: shared_endpoints}
            )
        return self._proxies[node_id]

    def _unchanged_earlier(self, instance: WorkloadInstance) -> ProxyResources | None:
        """The previous generator's resources of this proxy if its instance is unchanged."""
        previous = self._previous
        if previous is None or previous.snapshot.instance(instance.node_id) != instance:
            return None
        key = (instance.name, instance.namespace)
        if self.instance_views().get(key) != previous.instance_views().get(key):
            return None
        earlier = previous._proxies.get(instance.node_id)
        if earlier is None or self._carry is Carry.ALL:
            return earlier
        # Only VirtualServices changed: a sidecar's own clusters and listeners read them
        # only through its local outbound listeners; its route configuration is shared.
        sidecar = instance.sidecar
        if instance.kind is ProxyKind.ROUTER or sidecar is None:
            return None
        if captured_sidecar.is_captured(instance):
            return None  # its per-service listeners route by the VirtualServices
        if l4_listeners.outbound_targets(self.snapshot, sidecar.outbound):
            return None
        scope = ProxyScope.of(instance.namespace, instance.labels, self.egress_scope(instance))
        return replace(earlier, routes=(self.sidecar_routes(scope),))

    def instance_views(self) -> dict[tuple[str, str], InstanceView]:
        """What the services say about each instance (`carry_over.instance_views`)."""
        if self._instance_views is None:
            self._instance_views = instance_views(self.snapshot)
        return self._instance_views

    def egress_scope(self, instance: WorkloadInstance) -> EgressScope:
        """What a proxy may see (`EVERYTHING` for gateways and without a Sidecar)."""
        return self._sidecars.scope_for(instance)

    def localized_services(self) -> frozenset[str]:
        """The services whose load assignments differ by client locality (locality
        failover needs outlier detection; distribute does not)."""
        previous = self._previous
        if self._localized is None and previous is not None and previous._localized is not None:
            self._localized = previous._localized  # reads DestinationRules and shapes only
        if self._localized is None:
            rules = self.snapshot.destination_rules
            mesh_setting = getattr(self.snapshot.mesh_config, "locality_lb_setting", None)
            if not rules and not getattr(mesh_setting, "distribute", None):
                self._localized = frozenset()
            else:
                self._localized = frozenset(
                    hostname
                    for hostname, service in self.snapshot.services.items()
                    if endpoints.depends_on_client_locality(self.snapshot, service)
                )
        return self._localized

    def client_locality(self, instance: WorkloadInstance) -> ClientLocality:
        """What of a proxy's locality its load assignments depend on (NOWHERE: nothing)."""
        if not self.localized_services():
            return NOWHERE
        if self._priority_labels is None:
            self._priority_labels = endpoints.failover_priority_labels(self.snapshot)
        wanted = self._priority_labels
        labels = frozenset((k, v) for k, v in instance.labels.items() if k in wanted)
        return ClientLocality(locality_of(instance.labels), labels)

    def outbound(
        self, scope: EgressScope = EVERYTHING, client: ClientLocality = NOWHERE
    ) -> tuple[tuple[cluster_pb2.Cluster, ...], tuple[Any, ...]]:
        """The clusters and load assignments of the services a scope sees, for a client
        locality (built once per pair: proxies of equal ones get the very same tuples)."""
        key = scope.visibility
        pair = self._outbound_by_scope.get((key, client))
        if pair is None:
            visible = None if key.unrestricted else key.sees
            localized = self.localized_services()
            scoped_clusters = [clusters.blackhole_cluster(), clusters.passthrough_cluster()]
            scoped_endpoints: list[endpoint_pb2.ClusterLoadAssignment] = []
            for hostname in sorted(self.snapshot.services):
                service = self.snapshot.services[hostname]
                if visible is None or visible(service):
                    service_clusters, assignments = self.service_outbound(service)
                    scoped_clusters.extend(service_clusters)
                    if hostname in localized:
                        assignments = self._client_assignments(service, client)
                    scoped_endpoints.extend(assignments)
            pair = (tuple(scoped_clusters), tuple(scoped_endpoints))
            self._outbound_by_scope[(key, client)] = pair
            if key.unrestricted and client == NOWHERE:
                self._outbound = pair
        return pair

    def _client_assignments(self, service: Service, client: ClientLocality) -> tuple[Any, ...]:
        found = self._by_service_client.get((service.hostname, client))
        if found is None:
            found = tuple(
                endpoints.service_load_assignments(
                    self.snapshot, service, self._mtls_predicate(), client, self._peers
                )
            )
            self._by_service_client[(service.hostname, client)] = found
        return found

    def _mtls_predicate(self) -> Callable[[Endpoint], bool] | None:
        if self._takes_mtls is None and self.mtls:
            self._takes_mtls = tls.endpoint_tls_predicate(self.snapshot)
        return self._takes_mtls

    def service_outbound(self, service: Service) -> OutboundPart:
        """One service's outbound clusters and load assignments (as a client without a
        locality sees them), translated once per snapshot, or taken from the previous
        generator when nothing they read changed: the config, mTLS, the Service (with its
        endpoints) and the instances behind it."""
        found = self._by_service.get(service.hostname)
        if found is None:
            found = self._earlier_outbound(service)
            if found is None:
                takes_mtls, peers = self._mtls_predicate(), self._peers
                findings = Findings()
                found = (
                    tuple(clusters.service_clusters(self.snapshot, service, findings, self.mtls)),
                    tuple(endpoints.service_load_assignments(
                        self.snapshot, service, takes_mtls, peers=peers
                    )),
                )  # fmt: skip
                self._service_findings[service.hostname] = findings.messages
            self._findings.extend(self._service_findings[service.hostname])
            self._by_service[service.hostname] = found
        return found

    def _earlier_outbound(self, service: Service) -> OutboundPart | None:
        previous = self._previous
        earlier = None if previous is None else previous.snapshot.services.get(service.hostname)
        if previous is None or (earlier is not service and earlier != service):
            return None
        found = previous._by_service.get(service.hostname)
        findings = previous._service_findings.get(service.hostname)
        if found is None or findings is None:
            return None
        mine, theirs = self._instances_by_name(), previous._instances_by_name()
        for port_endpoints in service.endpoints.values():
            for endpoint in port_endpoints:
                key = (endpoint.instance, endpoint.namespace)
                if mine.get(key) != theirs.get(key):
                    return None
        self._service_findings[service.hostname] = findings
        return found

    def _instances_by_name(self) -> dict[tuple[str, str], WorkloadInstance]:
        if self._by_instance_name is None:
            self._by_instance_name = {
                (i.name, i.namespace): i for i in self.snapshot.instances.values()
            }
        return self._by_instance_name

    def sidecar_routes(self, scope: ProxyScope) -> route_pb2.RouteConfiguration:
        """`http_proxy` for a proxy scope (memoized per namespace and egress scope, and
        labels if they matter)."""
        if not self._label_scoped:
            scope = ProxyScope(scope.namespace, egress=scope.egress)
        config = self._sidecar_routes.get(scope)
        if config is None:
            config = routes.sidecar_route_config(self.snapshot, scope, self._findings)
            self._sidecar_routes[scope] = config
        return config

    # ---- telemetry -----------------------------------------------------------------------

    def services_of_port(self, instance: WorkloadInstance, inbound_port: int) -> list[str]:
        """The services whose endpoints include this instance's inbound port."""
        if self._inbound_services is None:
            self._inbound_services = telemetry.inbound_service_index(self.snapshot)
        return self._inbound_services.get((instance.name, instance.namespace, inbound_port), [])

    def _telemetry(
        self, instance: WorkloadInstance
    ) -> tuple[telemetry.ProxyTelemetry, PeerMetadata, tuple[cluster_pb2.Cluster, ...]]:
        """The proxy's resolved telemetry, identity, and clusters to its trace collectors."""
        resolved = telemetry.resolve(self.snapshot, instance, self._findings)
        own = telemetry.identity(self.snapshot, instance)
        return resolved, own, telemetry_envoy.collector_clusters(self.snapshot, resolved)

    def _hcm_telemetry(
        self,
        instance: WorkloadInstance,
        resolved: telemetry.ProxyTelemetry,
        own: PeerMetadata,
        *,
        client: bool,
        services: list[str] | None = None,
    ) -> HcmTelemetry:
        return hcm_telemetry(
            client=client, own=own, node_id=instance.node_id, telemetry=resolved,
            services=services or (),
        )  # fmt: skip

    def _sidecar(self, instance: WorkloadInstance) -> ProxyResources:
        egress = self.egress_scope(instance)
        address = self.settings.bind_address
        mesh = self.snapshot.mesh_config
        resolved, own, trace_clusters = self._telemetry(instance)
        out_listeners, out_routes, inbound_chains = [], [], []
        captured = captured_sidecar.is_captured(instance)
        local = L4Telemetry(  # the per-service listeners' (local ports, or captured)
            self._hcm_telemetry(instance, resolved, own, client=True),
            tcp_telemetry(client=True, own=own, telemetry=resolved),
        )
        if instance.sidecar is not None and not captured:
            scope = ProxyScope.of(instance.namespace, instance.labels, egress)
            out_listeners.append(
                listeners.http_proxy_listener(
                    address,
                    instance.sidecar.outbound_port,
                    mesh,
                    self._hcm_telemetry(instance, resolved, own, client=True),
                )
            )
            out_routes.append(self.sidecar_routes(scope))
            local_listeners, local_routes = self.local_outbound(instance, scope, None, local)
            out_listeners += local_listeners
            out_routes += local_routes
        for port in sorted(instance.ports, key=lambda p: p.container_port):
            if port.inbound_port is not None:
                security = self._security(instance, port.container_port)
                if is_http(self._inbound_protocol(instance, port)):
                    served = self.services_of_port(instance, port.inbound_port)
                    inbound = listeners.inbound_listener(
                        address,
                        port,
                        mesh,
                        security.filters,
                        self._hcm_telemetry(instance, resolved, own, client=False, services=served),
                    )
                else:
                    extra = l4_listeners.network_security_filters(
                        security.filters,
                        f"inbound_{port.container_port}",
                        None,
                        self._findings,
                        f"inbound port {port.container_port}",
                    )
                    served = self.services_of_port(instance, port.inbound_port)
                    logs = tcp_telemetry(client=False, own=own, telemetry=resolved, services=served)
                    inbound = l4_listeners.inbound_tcp_listener(address, port, mesh, extra, logs)
                if self.mtls:
                    mode = tls.inbound_mode(self.snapshot, instance, port.container_port)
                    inbound = peer_exchange.secure_inbound(inbound, mode)
                out_listeners.append(inbound)
                inbound_chains.append((port.container_port, inbound))
        passthrough: tuple[cluster_pb2.Cluster, ...] = ()
        if captured:  # virtualOutbound/virtualInbound instead
            scope = ProxyScope.of(instance.namespace, instance.labels, egress)
            out_listeners, out_routes, passthrough = captured_sidecar.resources(
                self, instance, scope, inbound_chains, local
            )
        return ProxyResources(
            own_clusters=tuple(clusters.inbound_clusters(instance))
            + self._security(instance, 0).clusters
            + trace_clusters
            + passthrough,
            listeners=tuple(out_listeners),
            routes=tuple(out_routes),
            secrets=self._client_secrets(instance),
        )

    def _client_secrets(self, instance: WorkloadInstance, **more: Any) -> tuple[Any, ...]:
        """SDS Secrets: the DestinationRules' credentialNames (and a gateway's own)."""
        found = client_credentials.client_secrets(self.snapshot, instance.namespace)
        return gateway_tls.secrets_by_name({**found, **more})

    def _inbound_protocol(self, instance: WorkloadInstance, port: Any) -> str:
        if self._inbound_protocols is None:
            self._inbound_protocols = l4_listeners.InboundProtocols(self.snapshot)
        return self._inbound_protocols.protocol(instance, port)

    def mesh_routing(self, namespace: str) -> dict[str, Resource[Any]]:
        """Hostname → the VirtualService routing it for sidecars in `namespace` (memoized)."""
        found = self._mesh_routing.get(namespace)
        if found is None:
            found = routes.mesh_virtual_services(self.snapshot, namespace, self._findings)
            self._mesh_routing[namespace] = found
        return found

    def local_outbound(
        self,
        instance: WorkloadInstance,
        scope: ProxyScope,
        outbound: Any = None,
        local_telemetry: L4Telemetry = NO_TELEMETRY,
    ) -> tuple[list[listener_pb2.Listener], list[route_pb2.RouteConfiguration]]:
        """A sidecar's listener per reported (or given) service port it may see, and RDS."""
        assert instance.sidecar is not None
        found_listeners: list[listener_pb2.Listener] = []
        found_routes: list[route_pb2.RouteConfiguration] = []
        reported = instance.sidecar.outbound if outbound is None else outbound
        targets = l4_listeners.outbound_targets(self.snapshot, reported)
        for target in targets:
            service = target.service
            if not visible_to(service.export_to, service.namespace, instance.namespace):
                continue
            if not scope.egress.sees(service):
                continue
            if is_http(target.port.protocol):
                config = self._service_route_config(scope, service.hostname, target.port.port)
                if config is None:
                    continue
                found_routes.append(config)
            ctx = L4Context(
                snapshot=self.snapshot,
                gateway=names.MESH_GATEWAY,
                port=target.port.port,
                proxy_namespace=instance.namespace,
                proxy_labels=instance.labels,
                findings=self._findings,
                service=service,
            )
            found_listeners.append(
                l4_listeners.local_outbound_listener(
                    self.settings.bind_address,
                    target,
                    ctx,
                    self.mesh_routing(instance.namespace).get(service.hostname),
                    self.snapshot.mesh_config,
                    local_telemetry,
                )
            )
        return found_listeners, found_routes

    def _service_route_config(
        self, scope: ProxyScope, hostname: str, port: int
    ) -> route_pb2.RouteConfiguration | None:
        if not self._label_scoped:
            scope = ProxyScope(scope.namespace, egress=scope.egress)
        key = (scope, hostname, port)
        if key not in self._service_routes:
            self._service_routes[key] = l4_listeners.service_route_config(
                self.sidecar_routes(scope), hostname, port
            )
        return self._service_routes[key]

    def gateway_servers(self, instance: WorkloadInstance) -> dict[int, list[GatewayServer]]:
        """The plain HTTP servers of the Gateways selecting this proxy, by listen port."""
        return self._gateway_ports(instance).http

    def _gateway_ports(self, instance: WorkloadInstance) -> GatewayPorts:
        return gateway_ports(
            self.snapshot,
            instance,
            lambda p: gateway_listen_port(p, self.settings, instance),
            self._findings,
        )

    def _gateway(self, instance: WorkloadInstance) -> ProxyResources:
        scope = ProxyScope.of(instance.namespace, instance.labels)
        mesh = self.snapshot.mesh_config
        resolved, own, trace_clusters = self._telemetry(instance)
        out_listeners = []
        out_routes = []
        ports = self._gateway_ports(instance)
        address = instance.listen_address or self.settings.bind_address
        http_servers, l4_servers = ports.http, ports.l4
        for port, servers in sorted(http_servers.items()):
            security = self._security(instance, port)
            out_listeners.append(
                listeners.gateway_listener(
                    address,
                    port,
                    mesh,
                    security.filters,
                    self._hcm_telemetry(instance, resolved, own, client=True),
                )
            )
            out_routes.append(
                routes.gateway_route_config(self.snapshot, servers, port, scope, self._findings)
            )
        secrets = gateway_tls.GatewaySecrets(self.snapshot, instance.namespace, self.mtls)
        for port, servers in sorted(ports.https.items()):
            chains = gateway_tls.https_chains(servers, secrets, self._findings)
            if not chains:
                continue  # each server reported why (no certificate, hosts taken)
            out_listeners.append(
                gateway_tls.https_listener(
                    address,
                    port,
                    chains,
                    mesh,
                    self._security(instance, port).filters,
                    self._hcm_telemetry(instance, resolved, own, client=True),
                )
            )
            out_routes.extend(
                routes.gateway_route_config(
                    self.snapshot, [c.server], port, scope, self._findings, c.route_config
                )
                for c in chains
            )
        l4_ports = [(port, servers, False) for port, servers in sorted(l4_servers.items())]
        l4_ports += [(port, servers, True) for port, servers in sorted(ports.tls.items())]
        for port, servers, terminate in l4_ports:
            out_listeners.append(
                gateway_l4_listener(
                    L4Port(self.snapshot, instance, port, servers, terminate),
                    address,
                    secrets,
                    self._security(instance, port).filters,
                    tcp_telemetry(client=True, own=own, telemetry=resolved),
                    self._findings,
                )
            )
        return ProxyResources(
            own_clusters=self._security(instance, 0).clusters + trace_clusters,
            listeners=tuple(out_listeners),
            routes=tuple(out_routes),
            secrets=self._client_secrets(instance, **secrets.used),
        )

    def _security(self, instance: WorkloadInstance, port: int) -> authz.SecurityFilters:
        """AuthorizationPolicy / RequestAuthentication filters for one port, and clusters."""
        return authz.security_filters(self.snapshot, instance, port, self._findings)
