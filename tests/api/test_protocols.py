"""Protocol selection as Istio's `ConvertProtocol`, and protocol names read in any case."""

from __future__ import annotations

from typing import get_args

import pytest

from ratline.api import load_text
from ratline.api.protocols import PROTOCOLS, parse_protocol, service_port_protocol
from ratline.api.schemas.networking import Protocol


@pytest.mark.parametrize(
    ("port", "name", "app_protocol", "want", "declared"),
    [
        (80, "http", None, "HTTP", True),
        (80, "http-web", None, "HTTP", True),
        (80, "HTTP-Web", None, "HTTP", True),
        (80, "http2", None, "HTTP2", True),
        (80, "grpc", None, "GRPC", True),
        (80, "grpc-api", None, "GRPC", True),
        (80, "grpc-web", None, "GRPC-WEB", True),
        (80, "grpc-web-api", None, "GRPC-WEB", True),
        (80, "tcp-echo", None, "TCP", True),
        (80, "tls", None, "TLS", True),
        (80, "https-api", None, "HTTPS", True),
        (80, "mongo", None, "MONGO", True),
        (80, "redis-main", None, "REDIS", True),
        (80, "mysql", None, "MYSQL", True),
        # A prefix only counts before a dash: `httpfoo` is no protocol name.
        (80, "httpfoo", None, "TCP", False),
        (80, "web", None, "TCP", False),
        (80, None, None, "TCP", False),
        # appProtocol wins over the name, the Kubernetes standard names included.
        (80, "tcp", "http", "HTTP", True),
        (80, "http", "kubernetes.io/h2c", "HTTP2", True),
        (80, "web", "kubernetes.io/ws", "HTTP", True),
        (80, "web", "kubernetes.io/wss", "HTTPS", True),
        (80, "http", "something-odd", "TCP", False),
        # Server-first protocols on their well-known ports are TCP, as declared.
        (3306, None, None, "TCP", True),
        (27017, "web", None, "TCP", True),
    ],
)
def test_service_port_protocol(
    port: int, name: str | None, app_protocol: str | None, want: str, declared: bool
) -> None:
    chosen = service_port_protocol(port, name, "TCP", app_protocol)
    assert (chosen.protocol, chosen.declared) == (want, declared)


def test_udp_ports_are_udp_whatever_their_name() -> None:
    assert service_port_protocol(53, "http", "UDP", None).protocol == "UDP"


def test_parse_protocol_ignores_case() -> None:
    assert parse_protocol("tcp") == "TCP"
    assert parse_protocol("GRPC-Web") == "GRPC-WEB"
    assert parse_protocol("smtp") is None


def test_schema_accepts_exactly_the_protocols_istio_knows() -> None:
    literal = get_args(Protocol)[0]
    assert set(get_args(literal)) == set(PROTOCOLS)


def test_lower_case_protocols_load_in_service_entries_and_gateways() -> None:
    result = load_text(
        """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: github-tcp}
spec:
  hosts: [github.com]
  ports: [{number: 22, name: tcp, protocol: tcp}]
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  servers:
  - port: {number: 15443, name: tls, protocol: tls}
    tls: {mode: PASSTHROUGH}
    hosts: ["*"]
""",
        "lower.yaml",
    )
    assert result.ok, [str(m) for m in result.messages]
    entry, gateway = result.resources
    assert entry.spec.ports[0].protocol == "TCP"
    assert gateway.spec.servers[0].port.protocol == "TLS"
