"""Which Gateway servers a gateway proxy serves, by listen port and kind."""

from __future__ import annotations

from typing import Any

from ratline.api.envelope import Resource
from ratline.api.protocols import TCP_PROTOCOLS, TLS_PROTOCOLS
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from ratline.settings import Settings
from ratline.translate import routes
from ratline.translate.common import CONFLICT, Findings, labels_match
from ratline.translate.policy import hosts_intersection
from ratline.translate.routes import GatewayServer

HTTP_SERVER_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
"""Gateway server protocols translated so far (TLS termination comes later)."""
L4_SERVER_PROTOCOLS = TCP_PROTOCOLS - TLS_PROTOCOLS
"""Gateway servers routed by `tcp:` rules (TLS and HTTPS ones in PASSTHROUGH by `tls:`)."""


def listen_port(server_port: int, settings: Settings) -> int:
    """Where a gateway really listens for a server port (80 → 8080 with the default offset)."""
    return server_port + settings.gateway_port_offset if server_port < 1024 else server_port


def servers_for(
    snapshot: MeshSnapshot, instance: WorkloadInstance, settings: Settings, findings: Findings
) -> tuple[dict[int, list[GatewayServer]], dict[int, list[GatewayServer]]]:
    """(HTTP servers, TCP and TLS-passthrough servers) of the Gateways selecting this
    proxy, by listen port. One port serves one kind: a later server of the other kind
    on it is reported and left out."""
    http: dict[int, list[GatewayServer]] = {}
    l4: dict[int, list[GatewayServer]] = {}
    for gateway in snapshot.gateways:
        if not labels_match(gateway.spec.selector, instance.labels):
            continue
        for index, server in enumerate(gateway.spec.servers):
            where = f"spec.servers[{index}]"
            protocol = server.port.protocol.upper()
            mode = server.tls.mode if server.tls is not None else None
            if protocol in HTTP_SERVER_PROTOCOLS:
                kind, other = http, l4
                if mode is not None:
                    what = f"tls mode {mode} (TLS termination at a gateway)"
                    findings.not_supported(gateway, f"{where}.tls.mode", what)
            elif protocol in L4_SERVER_PROTOCOLS or (
                protocol in TLS_PROTOCOLS and mode == "PASSTHROUGH"
            ):
                kind, other = l4, http
            elif protocol in TLS_PROTOCOLS:
                what = f"tls mode {mode or 'unset'} (TLS termination at a gateway)"
                findings.add(
                    gateway,
                    f"{where}.tls.mode",
                    f"{what} is not yet supported by Ratline; the {protocol} server is ignored",
                )
                continue
            else:
                findings.not_supported(gateway, f"{where}.port.protocol", f"protocol {protocol}")
                continue
            port = listen_port(server.port.number, settings)
            if port in other:
                taken = other[port][0]
                message = (
                    f"port {server.port.number} is already served by {taken.ref} "
                    f"spec.servers[{taken.index}] with protocol "
                    f"{taken.server.port.protocol}; ignored"
                )
                findings.add(gateway, f"{where}.port", message, CONFLICT)
                continue
            kind.setdefault(port, []).append(GatewayServer(gateway, server, index))
    return http, l4


def exposes(server: GatewayServer, vs: Resource[Any]) -> bool:
    """Whether one of the VirtualService's hosts is among the server's (for its namespace)."""
    hosts = routes.server_hosts(server, vs.namespace)
    return any(hosts_intersection(h, s) is not None for h in vs.spec.hosts for s in hosts)
