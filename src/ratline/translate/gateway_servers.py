"""Which servers of the Gateways selecting a gateway proxy it serves, by port and kind.

Four kinds of port: plain HTTP (HTTP, HTTP2, gRPC; `tls.httpsRedirect` allowed), HTTPS
terminating TLS (`tls.mode` SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL; see
`translate.gateway_tls`), L4 (TCP, Mongo, …, and TLS or HTTPS in PASSTHROUGH), and TLS
servers terminating TLS in those modes for `tcp:` routes. One port serves one kind: a
later server of another kind on it is reported and left out. What is not translated
(AUTO_PASSTHROUGH) is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.listener.v3 import listener_pb2

from ratline.api.envelope import Resource
from ratline.api.protocols import TCP_PROTOCOLS, TLS_PROTOCOLS
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from ratline.translate import l4_listeners, names, routes
from ratline.translate.common import CONFLICT, Findings, labels_match
from ratline.translate.gateway_tls import (
    TERMINATING_MODES,
    GatewaySecrets,
    https_chains,
    terminated_l4_listener,
)
from ratline.translate.http_routes import gateway_ref
from ratline.translate.policy import hosts_intersection
from ratline.translate.routes import GatewayServer
from ratline.translate.tcp_routes import L4Chain, L4Context, first_match_wins, rule_chains
from ratline.translate.telemetry_envoy import TcpTelemetry

HTTP_SERVER_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
"""Gateway server protocols served by an HTTP connection manager in plain text."""
L4_SERVER_PROTOCOLS = TCP_PROTOCOLS - TLS_PROTOCOLS
"""Gateway servers routed by `tcp:` rules (TLS and HTTPS ones in PASSTHROUGH by `tls:`)."""

ServersByPort = dict[int, list[GatewayServer]]


@dataclass
class GatewayPorts:
    """A gateway proxy's servers by listen port, one kind per port."""

    http: ServersByPort = field(default_factory=dict)
    https: ServersByPort = field(default_factory=dict)
    l4: ServersByPort = field(default_factory=dict)
    tls: ServersByPort = field(default_factory=dict)
    """`TLS` servers terminating TLS, routed by `tcp:` rules."""

    def taken_by(self, port: int, kind: ServersByPort) -> GatewayServer | None:
        """The first server of another kind on `port`, if any."""
        for other in (self.http, self.https, self.l4, self.tls):
            if other is not kind and port in other:
                return other[port][0]
        return None


def _kind(
    ports: GatewayPorts, gateway: Any, server: Any, where: str, findings: Findings
) -> ServersByPort | None:
    protocol = server.port.protocol.upper()
    mode = server.tls.mode if server.tls is not None else None
    if protocol in HTTP_SERVER_PROTOCOLS:
        if mode is not None:
            what = f"tls mode {mode} on a {protocol} server (use protocol HTTPS)"
            findings.not_supported(gateway, f"{where}.tls.mode", what)
        return ports.http
    if protocol in L4_SERVER_PROTOCOLS or (protocol in TLS_PROTOCOLS and mode == "PASSTHROUGH"):
        return ports.l4
    if mode in TERMINATING_MODES and protocol in TLS_PROTOCOLS:
        return ports.https if protocol == "HTTPS" else ports.tls
    if protocol in TLS_PROTOCOLS:
        findings.add(
            gateway,
            f"{where}.tls.mode",
            f"tls mode {mode or 'unset'} on a {protocol} server is not yet supported by "
            f"Ratline; the {protocol} server is ignored",
        )
        return None
    findings.not_supported(gateway, f"{where}.port.protocol", f"protocol {protocol}")
    return None


def gateway_ports(
    snapshot: MeshSnapshot,
    instance: WorkloadInstance,
    listen_port: Callable[[int], int | None],
    findings: Findings,
) -> GatewayPorts:
    """The servers of the Gateways whose selector matches this proxy's labels, by the port
    the proxy listens on for each (`listen_port`: None when its runtime has not bound it)."""
    ports = GatewayPorts()
    for gateway in snapshot.gateways:
        if not labels_match(gateway.spec.selector, instance.labels):
            continue
        for index, server in enumerate(gateway.spec.servers):
            where = f"spec.servers[{index}]"
            kind = _kind(ports, gateway, server, where, findings)
            if kind is None:
                continue
            port = listen_port(server.port.number)
            if port is None:
                continue  # the runtime has not bound this server port yet
            taken = ports.taken_by(port, kind)
            if taken is not None:
                message = (
                    f"port {server.port.number} is already served by {taken.ref} "
                    f"spec.servers[{taken.index}] with protocol "
                    f"{taken.server.port.protocol}; ignored"
                )
                findings.add(gateway, f"{where}.port", message, CONFLICT)
                continue
            kind.setdefault(port, []).append(GatewayServer(gateway, server, index))
    return ports


def exposes(server: GatewayServer, vs: Resource[Any]) -> bool:
    """Whether one of the VirtualService's hosts is among the server's (for its namespace)."""
    hosts = routes.server_hosts(server, vs.namespace)
    return any(hosts_intersection(h, s) is not None for h in vs.spec.hosts for s in hosts)


def gateway_l4_chains(
    snapshot: MeshSnapshot,
    instance: WorkloadInstance,
    servers: list[GatewayServer],
    tls_passthrough: bool,
    findings: Findings,
) -> list[L4Chain]:
    """The `tls:` (passthrough) or `tcp:` rules of the VirtualServices bound to these
    servers whose hosts the servers expose, server by server."""
    chains: list[L4Chain] = []
    for server in servers:
        bound = [
            vs
            for vs in snapshot.virtual_services
            if server.ref in {gateway_ref(g, vs.namespace) for g in vs.spec.gateways}
            and exposes(server, vs)
        ]
        ctx = L4Context(
            snapshot=snapshot,
            gateway=server.ref,
            port=server.server.port.number,
            proxy_namespace=instance.namespace,
            proxy_labels=instance.labels,
            findings=findings,
        )
        chains += rule_chains(ctx, bound, "tls" if tls_passthrough else "tcp")
    return first_match_wins(chains, None)


@dataclass(frozen=True)
class L4Port:
    """One L4 port of a gateway proxy: its servers, TLS passed through or terminated."""

    snapshot: MeshSnapshot
    instance: WorkloadInstance
    port: int
    servers: list[GatewayServer]
    terminate: bool
    """`TLS` servers terminating TLS (routed by `tcp:` rules after it), else TCP or
    TLS/HTTPS passthrough."""


def gateway_l4_listener(
    l4: L4Port,
    address: str,
    secrets: GatewaySecrets,
    security_filters: Sequence[Any],
    telemetry: TcpTelemetry | None,
    findings: Findings,
) -> listener_pb2.Listener:
    """The listener of one L4 port: TCP, TLS passthrough by SNI, or TLS terminated per
    server by SNI (as HTTPS, `translate.gateway_tls`) and then each one's `tcp:` rules;
    the port's AuthorizationPolicy filters (`security_filters`) as network filters."""
    mesh = l4.snapshot.mesh_config
    extra_filters = l4_listeners.network_security_filters(
        security_filters,
        f"outbound_{names.gateway_listener(l4.port)}",
        l4.servers[0].gateway,
        findings,
        "spec.servers",
    )
    if l4.terminate:
        terminated = [
            (chain, gateway_l4_chains(l4.snapshot, l4.instance, [chain.server], False, findings))
            for chain in https_chains(l4.servers, secrets, findings)
        ]
        return terminated_l4_listener(address, l4.port, terminated, mesh, extra_filters, telemetry)
    passthrough = l4.servers[0].server.port.protocol.upper() in TLS_PROTOCOLS
    chains = gateway_l4_chains(l4.snapshot, l4.instance, l4.servers, passthrough, findings)
    return l4_listeners.gateway_l4_listener(
        address, l4.port, chains, passthrough, mesh, extra_filters, telemetry
    )
