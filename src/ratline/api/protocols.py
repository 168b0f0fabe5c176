"""Istio's port protocols: their names, how a Service port's protocol is chosen, families.

Istio reads protocol names case-insensitively (`tcp`, `TLS`, `GRPC-Web`); Ratline writes
them in upper case. A Kubernetes Service port gets its protocol from `appProtocol`, else
from its name's prefix (`http`, `http-web`, `grpc-web-api`, `tcp-echo`: the part before
the first `-`, except `grpc-web`), else TCP (Istio sniffs such ports; see
`docs/differences.md`). A ServiceEntry, Gateway or Sidecar port declares its protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP = "HTTP"
HTTP2 = "HTTP2"
HTTPS = "HTTPS"
GRPC = "GRPC"
GRPC_WEB = "GRPC-WEB"
HTTP_PROXY = "HTTP_PROXY"
TCP = "TCP"
TLS = "TLS"
MONGO = "MONGO"
REDIS = "REDIS"
MYSQL = "MYSQL"
UDP = "UDP"

PROTOCOLS = (HTTP, HTTPS, GRPC, GRPC_WEB, HTTP2, HTTP_PROXY, MONGO, REDIS, MYSQL, TCP, TLS, UDP)
"""Every protocol name Istio accepts on a port (as Istio's `protocol.Parse`)."""

HTTP_PROTOCOLS = frozenset({HTTP, HTTP2, GRPC, GRPC_WEB, HTTP_PROXY})
"""Carried by an HTTP connection manager (Istio's `IsHTTP`)."""
HTTP2_PROTOCOLS = frozenset({HTTP2, GRPC, GRPC_WEB})
"""Whose upstream connections speak HTTP/2 (Istio's `IsHTTP2`)."""
TLS_PROTOCOLS = frozenset({HTTPS, TLS})
"""Opaque TLS, routed by SNI (Istio's `IsTLS`)."""
TCP_PROTOCOLS = frozenset({TCP, HTTPS, TLS, MONGO, REDIS, MYSQL})
"""Proxied as opaque bytes (Istio's `IsTCP`; Mongo, Redis and MySQL get no protocol
filter, as in Istio by default)."""

WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})
"""Ports Istio treats as TCP when nothing declares their protocol (SMTP, DNS, MySQL,
MongoDB: server-first protocols)."""

_KUBERNETES_APP_PROTOCOLS = {
    "kubernetes.io/h2c": HTTP2,
    "kubernetes.io/ws": HTTP,
    "kubernetes.io/wss": HTTPS,
}


def parse_protocol(value: str) -> str | None:
    """A protocol name in Istio's sense, read case-insensitively; None if it is none."""
    upper = value.upper()
    return upper if upper in PROTOCOLS else None


@dataclass(frozen=True)
class PortProtocol:
    """The protocol chosen for a Service port, and whether anything declared it."""

    protocol: str
    declared: bool
    """False when neither `appProtocol` nor the port name said (Istio sniffs, Ratline
    takes TCP: see `docs/differences.md`)."""


def service_port_protocol(
    port: int, name: str | None, kubernetes_protocol: str | None, app_protocol: str | None
) -> PortProtocol:
    """Istio's `ConvertProtocol` for a Kubernetes Service port."""
    if (kubernetes_protocol or "TCP").upper() == UDP:
        return PortProtocol(UDP, True)
    candidate = name or ""
    if app_protocol:
        candidate = app_protocol
        known = _KUBERNETES_APP_PROTOCOLS.get(app_protocol)
        if known is not None:
            return PortProtocol(known, True)
    if candidate[: len(GRPC_WEB)].upper() == GRPC_WEB:
        return PortProtocol(GRPC_WEB, True)
    found = parse_protocol(candidate.split("-", 1)[0])
    if found is not None:
        return PortProtocol(found, True)
    return PortProtocol(TCP, port in WELL_KNOWN_TCP_PORTS)


def is_http(protocol: str) -> bool:
    return protocol in HTTP_PROTOCOLS


def is_tls(protocol: str) -> bool:
    return protocol in TLS_PROTOCOLS


def is_tcp(protocol: str) -> bool:
    return protocol in TCP_PROTOCOLS
