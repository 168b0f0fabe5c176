"""RDS: the sidecar's outbound route configuration `http_proxy` and the gateways' `http.PORT`.

Sidecar: one virtual host per visible (service, port) — visible to the proxy's namespace and
in its egress scope (the `Sidecar` resource, see `translate.sidecar_scope`) — with the names
an app in the proxy's namespace may use for it, routes from the VirtualService bound to
`mesh` for that host (or one default route), and a catch-all host for the outbound traffic
policy (MeshConfig's, or the Sidecar's when it sets one). Gateway: one
virtual host per host both a Gateway server and a VirtualService bound to it expose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from ratline.api.envelope import Resource
from ratline.api.gateway_deployment import unprivileged_port
from ratline.api.hosts import fqdn, host_matches, split_namespaced_host
from ratline.api.protocols import is_tcp
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.registry.instances import WorkloadInstance
from ratline.settings import Settings
from ratline.translate import names
from ratline.translate.common import CONFLICT, UNRESOLVED, Findings, age_key
from ratline.translate.delegate import expand_rules
from ratline.translate.http_routes import (
    RouteContext,
    default_route,
    envoy_routes,
    gateway_ref,
    is_catch_all,
)
from ratline.translate.policy import CLUSTER_DOMAIN, hosts_intersection, visible_to
from ratline.translate.sidecar_scope import EVERYTHING, EgressScope
from ratline.translate.tcp_routes import L4Context, http_proxy_route

NON_HTTP_PROTOCOLS = frozenset({"HTTPS", "TLS"})
"""Port protocols an HTTP proxy listener cannot carry (they need CONNECT or SNI routing)."""


@dataclass(frozen=True)
class ProxyScope:
    """The part of a proxy that routes depend on (hashable: a memo key)."""

    namespace: str
    labels: frozenset[tuple[str, str]] = frozenset()
    egress: EgressScope = EVERYTHING
    """What the applying `Sidecar` lets the proxy see (gateways: everything)."""

    @classmethod
    def of(
        cls,
        namespace: str,
        labels: Mapping[str, str] | None = None,
        egress: EgressScope = EVERYTHING,
    ) -> ProxyScope:
        return cls(namespace, frozenset((labels or {}).items()), egress)


def service_domains(service: Service, port: int, proxy_namespace: str) -> list[str]:
    """The names an app in `proxy_namespace` may use for a service port.

    `reviews.default.svc.cluster.local:9080`, `reviews:9080` (same namespace only),
    `reviews.default:9080`, `reviews.default.svc:9080`, a ServiceEntry's single
    `addresses`; without the port only for port 80,
    since the absolute URL an app sends through HTTP_PROXY carries any other port.
    """
    hosts = [service.hostname]
    suffix = f".{service.namespace}.{CLUSTER_DOMAIN}"
    if service.hostname.endswith(suffix):
        short = service.hostname[: -len(suffix)]
        if proxy_namespace == service.namespace:
            hosts.append(short)
        hosts += [f"{short}.{service.namespace}", f"{short}.{service.namespace}.svc"]
    # A ServiceEntry's addresses stand for it as a VIP does (single addresses, not ranges).
    hosts += [a.removesuffix("/32") for a in service.addresses if "/" not in a.removesuffix("/32")]
    domains = [f"{h}:{port}" for h in hosts]
    if port == 80:
        domains += hosts
    return domains


def binds_to_mesh(vs: Resource[Any]) -> bool:
    """A VirtualService without gateways applies to sidecars; else it must name `mesh`."""
    return not vs.spec.gateways or names.MESH_GATEWAY in vs.spec.gateways


def mesh_virtual_services(
    snapshot: MeshSnapshot, namespace: str, findings: Findings
) -> dict[str, Resource[Any]]:
    """Service hostname → the VirtualService routing it for sidecars in `namespace`.

    An exact host wins over a wildcard, a longer wildcard over a shorter; between equals
    the oldest (creationTimestamp, then namespace and name) wins and the other is reported,
    as in Istio (which merges VirtualServices for one host only on gateways).
    """
    chosen: dict[str, tuple[tuple[bool, int], Resource[Any]]] = {}
    for vs in sorted(snapshot.virtual_services, key=age_key):
        if not binds_to_mesh(vs) or not vs.spec.hosts:
            continue
        if not visible_to(vs.spec.export_to, vs.namespace, namespace):
            continue
        for index, host in enumerate(vs.spec.hosts):
            pattern = fqdn(host, vs.namespace)
            rank = (not pattern.startswith("*"), len(pattern))
            matched = [h for h in snapshot.services if host_matches(pattern, h)]
            if not matched:
                message = f"host {pattern} is not in the registry; no route for it"
                findings.add(vs, f"spec.hosts[{index}]", message, UNRESOLVED)
            for hostname in matched:
                previous = chosen.get(hostname)
                if previous is None or rank > previous[0]:
                    chosen[hostname] = (rank, vs)
                elif previous[0] == rank and previous[1].key != vs.key:
                    message = f"{hostname} is already routed by {previous[1].key}; ignored"
                    findings.add(vs, f"spec.hosts[{index}]", message, CONFLICT)
    return {hostname: vs for hostname, (_, vs) in chosen.items()}


def virtual_service_routes(
    snapshot: MeshSnapshot,
    vs: Resource[Any],
    gateway: str,
    port: int,
    scope: ProxyScope,
    findings: Findings,
) -> list[rc.Route]:
    """Every Envoy route of one VirtualService (its delegates merged in) on one port for
    one proxy scope, up to the first catch-all route."""
    ctx = RouteContext(
        snapshot=snapshot,
        virtual_service=vs,
        gateway=gateway,
        port=port,
        proxy_namespace=scope.namespace,
        proxy_labels=dict(scope.labels),
        findings=findings,
    )
    routes: list[rc.Route] = []
    for http, owner, path in expand_rules(snapshot, vs, findings):
        rule_ctx = ctx if owner is vs else replace(ctx, virtual_service=owner)
        rule_routes = envoy_routes(rule_ctx, http, path)
        routes.extend(rule_routes)
        if any(is_catch_all(route) for route in rule_routes):
            break
    return routes


def catch_all_virtual_host(snapshot: MeshSnapshot, mode: str | None = None) -> rc.VirtualHost:
    """ALLOW_ANY: unknown hosts pass through; REGISTRY_ONLY: they get a 502.

    `mode` (a Sidecar's outboundTrafficPolicy) overrides MeshConfig's."""
    if mode is None:
        policy = getattr(snapshot.mesh_config, "outbound_traffic_policy", None)
        mode = getattr(policy, "mode", "ALLOW_ANY")
    if mode == "REGISTRY_ONLY":
        host = rc.VirtualHost(name=names.BLOCK_ALL_VHOST, domains=["*"])
        route = host.routes.add(name="block_all", match=rc.RouteMatch(prefix="/"))
        route.direct_response.status = 502
        return host
    host = rc.VirtualHost(name=names.ALLOW_ANY_VHOST, domains=["*"])
    route = host.routes.add(name="allow_any", match=rc.RouteMatch(prefix="/"))
    route.route.cluster = names.PASSTHROUGH_CLUSTER
    route.route.timeout.SetInParent()  # 0s: no timeout, as Istio
    return host


def sidecar_route_config(
    snapshot: MeshSnapshot, scope: ProxyScope, findings: Findings
) -> route_pb2.RouteConfiguration:
    """`http_proxy`: what an app's HTTP_PROXY requests reach, by Host."""
    config = route_pb2.RouteConfiguration(name=names.HTTP_PROXY)
    config.validate_clusters.value = False
    routed = mesh_virtual_services(snapshot, scope.namespace, findings)
    used: set[str] = set()
    for hostname in sorted(snapshot.services):
        service = snapshot.services[hostname]
        if not visible_to(service.export_to, service.namespace, scope.namespace):
            continue
        if not scope.egress.sees(service):
            continue
        for port in sorted(service.ports, key=lambda p: p.port):
            if port.protocol.upper() in NON_HTTP_PROTOCOLS:
                continue
            domains = service_domains(service, port.port, scope.namespace)
            domains = [d for d in domains if d not in used]
            if not domains:
                continue
            used.update(domains)
            host = config.virtual_hosts.add(
                name=names.virtual_host(hostname, port.port), domains=domains
            )
            vs = routed.get(hostname)
            if vs is not None and port.declared and is_tcp(port.protocol):
                cluster = names.outbound_cluster(port.port, "", hostname)
                ctx = L4Context(
                    snapshot=snapshot,
                    gateway=names.MESH_GATEWAY,
                    port=port.port,
                    proxy_namespace=scope.namespace,
                    proxy_labels=dict(scope.labels),
                    findings=findings,
                    service=service,
                )
                host.routes.append(http_proxy_route(ctx, vs, cluster))
                continue
            vs_routes = (
                virtual_service_routes(snapshot, vs, names.MESH_GATEWAY, port.port, scope, findings)
                if vs is not None
                else []
            )
            # No VirtualService, or none of its rules applies here: the default route.
            host.routes.extend(vs_routes or [default_route(snapshot, service, port.port)])
    config.virtual_hosts.append(catch_all_virtual_host(snapshot, scope.egress.outbound_mode))
    return config


# ---- gateways ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayServer:
    """One server of a Gateway resource (its port and hosts)."""

    gateway: Resource[Any]
    server: Any
    index: int

    @property
    def ref(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"


def _server_hosts(server: GatewayServer, vs_namespace: str) -> list[str]:
    """A server's hosts that a VirtualService in `vs_namespace` may claim (`ns/host` form)."""
    result = []
    for value in server.server.hosts:
        namespace, host = split_namespaced_host(value, server.gateway.namespace)
        if namespace in ("*", vs_namespace):
            result.append(host)
    return result


def server_hosts(server: GatewayServer, vs_namespace: str) -> list[str]:
    """A server's hosts that a VirtualService in `vs_namespace` may claim."""
    return _server_hosts(server, vs_namespace)


def gateway_domains(host: str) -> list[str]:
    """A gateway host as Envoy domains (gateway listeners strip any port from the Host)."""
    return [host]


def gateway_listen_port(
    server_port: int, settings: Settings, instance: WorkloadInstance | None = None
) -> int | None:
    """Where a gateway really listens for a server port: where its runtime bound it when
    it says (None: not bound yet), else 80 → 8080 with the default offset."""
    if instance is not None and instance.gateway_listen is not None:
        return dict(instance.gateway_listen).get(server_port)
    return unprivileged_port(server_port, settings.gateway_port_offset)


def gateway_route_config(
    snapshot: MeshSnapshot,
    servers: Sequence[GatewayServer],
    listen_port: int,
    scope: ProxyScope,
    findings: Findings,
    name: str | None = None,
) -> route_pb2.RouteConfiguration:
    """`http.PORT` (or `name`): the virtual hosts of the VirtualServices bound to these
    servers.

    Several VirtualServices for one host are merged as Istio merges them on gateways: their
    routes in order of age (creationTimestamp, then namespace and name), catch-all routes
    moved to the end. A host of a server with `tls.httpsRedirect` answers every request
    with a 301 to `https://` (Envoy's `require_tls: ALL`, as Istio)."""
    config = route_pb2.RouteConfiguration(name=name or names.gateway_route_config(listen_port))
    config.validate_clusters.value = False
    by_host: dict[str, list[rc.Route]] = {}
    seen: set[tuple[str, str]] = set()
    redirect: set[str] = set()
    for vs in sorted(snapshot.virtual_services, key=age_key):
        if not visible_to(vs.spec.export_to, vs.namespace, scope.namespace):
            continue
        refs = {gateway_ref(g, vs.namespace) for g in vs.spec.gateways}
        for server in servers:
            if server.ref not in refs:
                continue
            port = server.server.port.number
            for vs_host in vs.spec.hosts:
                for server_host in _server_hosts(server, vs.namespace):
                    host = hosts_intersection(vs_host, server_host)
                    if host is None or (host, str(vs.key)) in seen:
                        continue
                    seen.add((host, str(vs.key)))
                    if server.server.tls is not None and server.server.tls.https_redirect:
                        redirect.add(host)
                    routes = virtual_service_routes(snapshot, vs, server.ref, port, scope, findings)
                    by_host.setdefault(host, []).extend(routes)
    for server in servers:  # redirected hosts no VirtualService claims redirect too
        if server.server.tls is not None and server.server.tls.https_redirect:
            for value in server.server.hosts:
                host = split_namespaced_host(value, server.gateway.namespace)[1]
                if host not in by_host:
                    by_host[host] = []
                    redirect.add(host)
    for host in sorted(by_host):
        virtual_host = config.virtual_hosts.add(
            name=names.virtual_host(host, listen_port), domains=gateway_domains(host)
        )
        if host in redirect:
            virtual_host.require_tls = rc.VirtualHost.ALL
        merged = by_host[host]
        virtual_host.routes.extend(
            [r for r in merged if not is_catch_all(r)] + [r for r in merged if is_catch_all(r)]
        )
    return config
