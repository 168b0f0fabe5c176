"""LDS for L4 and non-HTTP/1 traffic: local outbound listeners, TCP inbound, TCP/TLS gateways.

- Local outbound listeners (local mode has no iptables): the runner gives each sidecar a
  local port per TCP, TLS, HTTP/2 or gRPC service port it may call and tells the app
  (`<SVC>_SERVICE_HOST`/`_PORT`); the sidecar listens there for that one service, with
  the service's `tcp:`/`tls:` rules (TCP, TLS: the TLS inspector reads the SNI) or its
  HTTP routes over RDS `HOST:PORT` (HTTP/2, gRPC).
- Inbound: a container port that carries TCP (the protocol of the Service ports that
  target it, else its own name's) is proxied as bytes to the app.
- Gateways: a server with protocol TCP (Mongo, Redis, MySQL) routes by the `tcp:` rules
  of the VirtualServices bound to it; TLS or HTTPS with `tls.mode: PASSTHROUGH` by SNI
  with their `tls:` rules.

AuthorizationPolicy on L4 chains: the RBAC of the HTTP filters `translate.authz` made
becomes Envoy's network RBAC (principals and ports match; HTTP-only fields cannot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from ratline.api.envelope import Resource
from ratline.api.protocols import TCP, is_http, service_port_protocol
from ratline.model.snapshot import MeshSnapshot, Service, ServicePort
from ratline.registry.instances import InstancePort, LocalOutbound, WorkloadInstance
from ratline.translate import names, route_features
from ratline.translate.common import Findings, pack_any
from ratline.translate.endpoints import socket_address
from ratline.translate.listeners import HCM_FILTER, connection_manager
from ratline.translate.tcp_routes import (
    L4Chain,
    L4Context,
    L4Destination,
    blackhole_chain,
    filter_chain,
    first_match_wins,
    rule_chains,
)
from ratline.translate.telemetry_envoy import NO_TELEMETRY, L4Telemetry, TcpTelemetry

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
NETWORK_RBAC = "envoy.filters.network.rbac"
HTTP_RBAC = "envoy.filters.http.rbac"


def local_outbound_listener_name(hostname: str, port: int) -> str:
    """`tcp-echo.default.svc.cluster.local_9000`: Istio's `VIP_PORT`, with the service's
    host standing in for the VIP it does not have here."""
    return f"{hostname}_{port}"


def service_route_config_name(hostname: str, port: int) -> str:
    """`greeter.default.svc.cluster.local:50051`: RDS of one service port's local listener."""
    return f"{hostname}:{port}"


def _listener(
    name: str, address: str, port: int, direction: base_pb2.TrafficDirection.ValueType
) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name, address=socket_address(address, port), traffic_direction=direction
    )


def _add_tls_inspector(listener: listener_pb2.Listener) -> None:
    listener.listener_filters.add(
        name=TLS_INSPECTOR, typed_config=pack_any(tls_inspector_pb2.TlsInspector())
    )


# ---- sidecars: local outbound listeners --------------------------------------------------


@dataclass(frozen=True)
class LocalTarget:
    """One local outbound listener to build: where it listens and the service it stands for."""

    outbound: LocalOutbound
    service: Service
    port: ServicePort


def l4_chains(
    ctx: L4Context, virtual_services: Sequence[Resource[Any]], tls: bool, default: L4Chain | None
) -> list[L4Chain]:
    """The chains of a TLS (tls: rules, then tcp: rules) or TCP listener, first match first."""
    chains = rule_chains(ctx, virtual_services, "tls") if tls else []
    chains += rule_chains(ctx, virtual_services, "tcp")
    return first_match_wins(chains, default)


def local_outbound_listener(
    address: str,
    target: LocalTarget,
    ctx: L4Context,
    virtual_service: Resource[Any] | None,
    mesh_config: Any,
    telemetry: L4Telemetry = NO_TELEMETRY,
) -> listener_pb2.Listener:
    """The sidecar's listener for one service port on its local port (reporting as the
    source, as the sidecar's outbound side does)."""
    service, port = target.service, target.port
    name = local_outbound_listener_name(service.hostname, port.port)
    listener = _listener(name, address, target.outbound.local_port, base_pb2.OUTBOUND)
    if is_http(port.protocol):
        hcm = connection_manager(
            name,
            rds=service_route_config_name(service.hostname, port.port),
            mesh_config=mesh_config,
            http_filters=route_features.http_filters(),  # fault, CORS: as on http_proxy
            telemetry=telemetry.hcm,
        )
        chain = listener.filter_chains.add(name=name)
        chain.filters.add(name=HCM_FILTER).typed_config.CopyFrom(pack_any(hcm))
        return listener
    tls = port.protocol in ("TLS", "HTTPS")
    cluster = names.outbound_cluster(port.port, "", service.hostname)
    default = L4Chain(name=cluster, destinations=(L4Destination(cluster),))
    rules = [virtual_service] if virtual_service is not None else []
    for chain in l4_chains(ctx, rules, tls, default):
        listener.filter_chains.append(filter_chain(chain, mesh_config, (), telemetry.tcp))
    if tls:
        _add_tls_inspector(listener)
    return listener


def service_route_config(
    http_proxy: route_pb2.RouteConfiguration, hostname: str, port: int
) -> route_pb2.RouteConfiguration | None:
    """One service port's routes (its virtual host of `http_proxy`) for any authority:
    what the app's requests to the local listener are routed by."""
    wanted = names.virtual_host(hostname, port)
    found = next((h for h in http_proxy.virtual_hosts if h.name == wanted), None)
    if found is None:
        return None
    config = route_pb2.RouteConfiguration(name=service_route_config_name(hostname, port))
    config.validate_clusters.value = False
    host = config.virtual_hosts.add()
    host.CopyFrom(found)
    del host.domains[:]
    host.domains.append("*")
    return config


# ---- sidecars: inbound -------------------------------------------------------------------


class InboundProtocols:
    """The protocol of each instance port as the Service ports targeting it declare it
    (indexed once per snapshot); a port no Service targets is read by its own name."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self._by_endpoint: dict[tuple[str, str, int], set[str]] = {}
        for service in snapshot.services.values():
            for service_port in service.ports:
                for endpoint in service.endpoints.get(service_port.port, ()):
                    if endpoint.has_sidecar:
                        key = (endpoint.namespace, endpoint.instance, endpoint.port)
                        self._by_endpoint.setdefault(key, set()).add(service_port.protocol)

    def protocol(self, instance: WorkloadInstance, port: InstancePort) -> str:
        """HTTP when any Service takes the port as HTTP, TCP when they take it as TCP."""
        found = self._by_endpoint.get((instance.namespace, instance.name, port.inbound_port or 0))
        if found:
            http = sorted(p for p in found if is_http(p))
            return http[0] if http else TCP
        return service_port_protocol(port.container_port, port.name, port.protocol, None).protocol


def inbound_tcp_listener(
    address: str,
    port: InstancePort,
    mesh_config: Any,
    extra_filters: Sequence[Any] = (),
    telemetry: TcpTelemetry | None = None,
) -> listener_pb2.Listener:
    """`inbound|PORT||` for a TCP port: the bytes to the app's cluster."""
    if port.inbound_port is None:
        raise ValueError(f"container port {port.container_port} has no sidecar inbound port")
    name = names.inbound_listener(port.container_port)
    listener = _listener(name, address, port.inbound_port, base_pb2.INBOUND)
    cluster = names.inbound_cluster(port.container_port)
    chain = L4Chain(name=name, destinations=(L4Destination(cluster),))
    listener.filter_chains.append(filter_chain(chain, mesh_config, extra_filters, telemetry))
    return listener


def network_security_filters(
    http_filters: Sequence[Any],
    stat_prefix: str,
    resource: Resource[Any] | None,
    findings: Findings,
    where: str,
) -> list[listener_components_pb2.Filter]:
    """The AuthorizationPolicy filters of a TCP chain, from the HTTP ones of its port:
    each RBAC filter as network RBAC (what only HTTP can tell never matches). A CUSTOM
    (ext_authz) check cannot run on raw TCP: then every connection is refused."""
    result: list[listener_components_pb2.Filter] = []
    for http_filter in http_filters:
        if http_filter.name == HTTP_RBAC:
            config = http_rbac_pb2.RBAC()
            http_filter.typed_config.Unpack(config)
            network = network_rbac_pb2.RBAC(stat_prefix=f"{stat_prefix}.")
            if config.HasField("rules"):
                network.rules.CopyFrom(config.rules)
            if config.HasField("shadow_rules"):
                network.shadow_rules.CopyFrom(config.shadow_rules)
            result.append(
                listener_components_pb2.Filter(name=NETWORK_RBAC, typed_config=pack_any(network))
            )
        elif "ext_authz" in http_filter.name:
            what = "CUSTOM authorization on a TCP port (connections to it are refused)"
            if resource is not None:
                findings.not_supported(resource, where, what)
            else:
                findings.add(None, where, f"{what} is not yet supported by Ratline")
            deny_all = network_rbac_pb2.RBAC(
                stat_prefix=f"{stat_prefix}.", rules=rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
            )
            result.append(
                listener_components_pb2.Filter(name=NETWORK_RBAC, typed_config=pack_any(deny_all))
            )
    return result


# ---- gateways ----------------------------------------------------------------------------


def gateway_l4_listener(
    address: str,
    listen_port: int,
    chains: Sequence[L4Chain],
    tls: bool,
    mesh_config: Any,
    extra_filters: Sequence[Any] = (),
    telemetry: TcpTelemetry | None = None,
) -> listener_pb2.Listener:
    """`0.0.0.0_31400`: a gateway's TCP listener, or TLS passthrough routed by SNI."""
    name = names.gateway_listener(listen_port)
    listener = _listener(name, address, listen_port, base_pb2.OUTBOUND)
    for chain in chains or [blackhole_chain(f"{name}|no-route")]:
        listener.filter_chains.append(filter_chain(chain, mesh_config, extra_filters, telemetry))
    if tls:
        _add_tls_inspector(listener)
    return listener


def outbound_targets(
    snapshot: MeshSnapshot, outbound: Sequence[LocalOutbound]
) -> list[LocalTarget]:
    """The reported local outbound ports whose service port exists in the snapshot."""
    targets = []
    for entry in outbound:
        service = snapshot.services.get(entry.hostname)
        port = service.port(entry.port) if service is not None else None
        if service is not None and port is not None:
            targets.append(LocalTarget(entry, service, port))
    return targets
