"""Local outbound ports: how an app reaches a TCP (TLS, HTTP/2, gRPC) service without iptables.

Kubernetes gives a service a cluster IP and iptables send connections to it through the
sidecar; on one machine there is neither. Instead the runner gives every instance's
sidecar a local port per service port that plain HTTP_PROXY cannot carry (any protocol
but HTTP), reports them with the instance (`LocalOutbound`), and tells the app where they
are the way Kubernetes tells a pod about the services of its namespace
(`<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT`, `<SVC>_PORT_<N>_TCP_ADDR`, …), plus
`RATLINE_OUTBOUND` listing every one of them (other namespaces, ServiceEntry hosts).

Pure functions of the resources the runner reads; `OutboundPorts` keeps one instance's
allocation as services come and go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ratline.api.document import parse_document
from ratline.api.envelope import Source
from ratline.api.hosts import fqdn
from ratline.api.protocols import HTTP, HTTP_PROXY, UDP, service_port_protocol
from ratline.registry.instances import LocalOutbound

NO_LOCAL_LISTENER = frozenset({HTTP, HTTP_PROXY, UDP})
"""Protocols that need no local listener: HTTP goes through HTTP_PROXY; UDP is not
proxied (as in Istio)."""


@dataclass(frozen=True)
class OutboundServicePort:
    """A service port an app reaches through a local listener of its sidecar."""

    hostname: str
    port: int
    protocol: str
    namespace: str
    service: str = ""
    """The Kubernetes Service's name (empty for a ServiceEntry host)."""
    port_name: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.hostname, self.port)


def outbound_service_ports(
    documents: Iterable[Mapping[str, Any]], domain_suffix: str = "cluster.local"
) -> list[OutboundServicePort]:
    """The service ports of these Service and ServiceEntry documents that get a local
    listener: every protocol but HTTP and UDP; ServiceEntry hosts that Envoy can resolve
    (not wildcards, not resolution NONE, which has no address to connect to)."""
    found: dict[tuple[str, int], OutboundServicePort] = {}
    for document in documents:
        kind = document.get("kind")
        if kind not in ("Service", "ServiceEntry"):
            continue
        resource, _ = parse_document(dict(document), Source())
        if resource is None:
            continue
        spec = resource.spec
        if kind == "Service":
            hostname = f"{resource.name}.{resource.namespace}.svc.{domain_suffix}"
            for port in spec.ports:
                protocol = service_port_protocol(
                    port.port, port.name, port.protocol, port.app_protocol
                ).protocol
                entry = OutboundServicePort(
                    hostname,
                    port.port,
                    protocol,
                    resource.namespace,
                    resource.name,
                    port.name or "",
                )
                found.setdefault(entry.key, entry)
            continue
        if (spec.resolution or "NONE") == "NONE":
            continue
        for host in spec.hosts:
            if host.startswith("*"):
                continue
            hostname = fqdn(host, resource.namespace, domain_suffix)
            for port in spec.ports:
                entry = OutboundServicePort(
                    hostname, port.number, port.protocol, resource.namespace, "", port.name
                )
                found.setdefault(entry.key, entry)
    return sorted(
        (p for p in found.values() if p.protocol not in NO_LOCAL_LISTENER), key=lambda p: p.key
    )


class OutboundPorts:
    """One instance's local outbound ports, kept as the mesh's service ports change."""

    def __init__(self) -> None:
        self._ports: dict[tuple[str, int], tuple[OutboundServicePort, int]] = {}

    def update(
        self, wanted: Sequence[OutboundServicePort], allocate: Callable[[], int]
    ) -> tuple[bool, list[int]]:
        """Follow `wanted`: a port for each new service port, none for a gone one.
        (whether anything changed, the local ports given up)."""
        keys = {p.key: p for p in wanted}
        released = [local for key, (_, local) in self._ports.items() if key not in keys]
        changed = bool(released)
        self._ports = {k: v for k, v in self._ports.items() if k in keys}
        for key, service_port in keys.items():
            held = self._ports.get(key)
            if held is None:
                self._ports[key] = (service_port, allocate())
                changed = True
            elif held[0] != service_port:
                self._ports[key] = (service_port, held[1])
                changed = True
        return changed, released

    def local_ports(self) -> list[int]:
        return [local for _, local in self._ports.values()]

    def reported(self) -> tuple[LocalOutbound, ...]:
        """What the sidecar must listen on, as the registry learns it."""
        return tuple(
            LocalOutbound(p.hostname, p.port, local)
            for p, local in sorted(self._ports.values(), key=lambda e: e[0].key)
        )

    def environment(self, namespace: str, address: str) -> dict[str, str]:
        """The app's variables for these ports (see `service_environment`)."""
        return service_environment(
            sorted(self._ports.values(), key=lambda e: e[0].key), namespace, address
        )


def env_name(name: str) -> str:
    """Kubernetes' variable prefix of a Service name: `tcp-echo` → `TCP_ECHO`."""
    return "".join(c if c.isalnum() else "_" for c in name.upper())


def service_environment(
    ports: Sequence[tuple[OutboundServicePort, int]], namespace: str, address: str
) -> dict[str, str]:
    """Kubernetes' service variables, for the Services of `namespace` (as a pod gets
    them), pointing at the sidecar's local ports, and `RATLINE_OUTBOUND`: every
    `HOST:PORT=ADDRESS:LOCAL_PORT`, space-separated."""
    env: dict[str, str] = {}
    first_of: dict[str, int] = {}
    for service_port, local in ports:
        if not service_port.service or service_port.namespace != namespace:
            continue
        prefix = env_name(service_port.service)
        link = f"{prefix}_PORT_{service_port.port}_TCP"
        env[f"{link}"] = f"tcp://{address}:{local}"
        env[f"{link}_PROTO"] = "tcp"
        env[f"{link}_PORT"] = str(local)
        env[f"{link}_ADDR"] = address
        if service_port.port_name:
            env[f"{prefix}_SERVICE_PORT_{env_name(service_port.port_name)}"] = str(local)
        if prefix not in first_of:
            first_of[prefix] = local
            env[f"{prefix}_SERVICE_HOST"] = address
            env[f"{prefix}_SERVICE_PORT"] = str(local)
            env[f"{prefix}_PORT"] = f"tcp://{address}:{local}"
    env["RATLINE_OUTBOUND"] = " ".join(
        f"{p.hostname}:{p.port}={address}:{local}" for p, local in ports
    )
    return env
