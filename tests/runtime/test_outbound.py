"""Local outbound ports: which service ports get one, how they are kept, what the app is told."""

from __future__ import annotations

import itertools
from typing import Any

import yaml

from ratline.registry.instances import LocalOutbound
from ratline.runtime.local.outbound import (
    OutboundPorts,
    OutboundServicePort,
    outbound_service_ports,
    service_environment,
)

DOCUMENTS = """\
apiVersion: v1
kind: Service
metadata: {name: tcp-echo}
spec:
  ports: [{name: tcp, port: 9000}, {name: http-admin, port: 8080}, {name: tcp-other, port: 9001}]
---
apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  ports: [{name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: other}
spec:
  ports: [{port: 7000}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec:
  ports: [{name: grpc, port: 50051}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com, "*.wild.example.com"]
  ports: [{number: 5432, name: tcp, protocol: tcp}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: db.internal.example.com}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: w}
spec: {command: [x]}
"""


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(DOCUMENTS) if d]


def test_every_protocol_but_http_and_udp_gets_a_local_port() -> None:
    found = [(p.hostname, p.port, p.protocol) for p in outbound_service_ports(documents())]
    assert found == [
        ("db.example.com", 5432, "TCP"),
        ("greeter.default.svc.cluster.local", 50051, "GRPC"),
        ("plain.other.svc.cluster.local", 7000, "TCP"),  # unnamed: TCP
        ("tcp-echo.default.svc.cluster.local", 9000, "TCP"),
        ("tcp-echo.default.svc.cluster.local", 9001, "TCP"),
    ]


def test_ports_are_kept_while_their_service_port_exists() -> None:
    ports = OutboundPorts()
    numbers = itertools.count(40000)
    wanted = outbound_service_ports(documents())
    changed, released = ports.update(wanted, lambda: next(numbers))
    assert changed and released == []
    first = ports.reported()
    assert [p.local_port for p in first] == [40000, 40001, 40002, 40003, 40004]
    assert ports.update(wanted, lambda: next(numbers)) == (False, [])
    fewer = [p for p in wanted if p.port != 50051]
    changed, released = ports.update(fewer, lambda: next(numbers))
    assert changed and released == [40001]
    assert LocalOutbound("tcp-echo.default.svc.cluster.local", 9000, 40003) in ports.reported()
    assert sorted(ports.local_ports()) == [40000, 40002, 40003, 40004]


def test_the_app_is_told_as_kubernetes_tells_a_pod() -> None:
    echo = OutboundServicePort(
        "tcp-echo.default.svc.cluster.local", 9000, "TCP", "default", "tcp-echo", "tcp"
    )
    other = OutboundServicePort(
        "tcp-echo.default.svc.cluster.local", 9001, "TCP", "default", "tcp-echo", "tcp-other"
    )
    elsewhere = OutboundServicePort("plain.other.svc.cluster.local", 7000, "TCP", "other", "plain")
    entry = OutboundServicePort("db.example.com", 5432, "TCP", "default")
    env = service_environment(
        [(echo, 41000), (other, 41001), (elsewhere, 41002), (entry, 41003)], "default", "127.0.0.1"
    )
    assert env["TCP_ECHO_SERVICE_HOST"] == "127.0.0.1"
    assert env["TCP_ECHO_SERVICE_PORT"] == "41000"
    assert env["TCP_ECHO_SERVICE_PORT_TCP_OTHER"] == "41001"
    assert env["TCP_ECHO_PORT"] == "tcp://127.0.0.1:41000"
    assert env["TCP_ECHO_PORT_9001_TCP"] == "tcp://127.0.0.1:41001"
    assert env["TCP_ECHO_PORT_9001_TCP_PORT"] == "41001"
    assert env["TCP_ECHO_PORT_9001_TCP_ADDR"] == "127.0.0.1"
    assert env["TCP_ECHO_PORT_9001_TCP_PROTO"] == "tcp"
    # Only the pod's own namespace gets Kubernetes' variables; every port is listed here.
    assert not any(k.startswith("PLAIN_") for k in env)
    assert env["RATLINE_OUTBOUND"].split() == [
        "tcp-echo.default.svc.cluster.local:9000=127.0.0.1:41000",
        "tcp-echo.default.svc.cluster.local:9001=127.0.0.1:41001",
        "plain.other.svc.cluster.local:7000=127.0.0.1:41002",
        "db.example.com:5432=127.0.0.1:41003",
    ]


def test_local_ports_travel_with_the_instance_report() -> None:
    from ratline.registry.instances import SidecarPorts, WorkloadInstance

    instance = WorkloadInstance(
        name="client-0",
        namespace="default",
        workload="client",
        sidecar=SidecarPorts(
            1, 2, 4, (LocalOutbound("tcp-echo.default.svc.cluster.local", 9000, 3),)
        ),
    )
    assert WorkloadInstance.from_json(instance.to_json()) == instance
