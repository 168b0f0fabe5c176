"""Which gateway Envoys the local runtime runs and which ports each serves."""

from __future__ import annotations

from typing import Any

from ratline.api.gateway_deployment import GatewayDeployment
from ratline.runtime.local.gateway_plan import (
    DEFAULT_GATEWAY,
    ServerPort,
    desired_gateways,
    server_ports,
)


def deployment(name: str, namespace: str = "istio-system", replicas: int = 1,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {
                    "annotations": {"inject.istio.io/templates": "gateway"},
                    "labels": labels or {"istio": name},
                }
            },
        },
    }


def test_built_in_ingress_plus_declared_replicas() -> None:
    plain = {"kind": "Deployment", "metadata": {"name": "app"}, "spec": {"template": {}}}
    desired, errors = desired_gateways([deployment("egress", replicas=2), plain])
    assert errors == []
    assert sorted(desired) == [
        ("istio-system", "egress-0"),
        ("istio-system", "egress-1"),
        ("istio-system", "istio-ingressgateway-0"),
    ]
    assert desired[("istio-system", "istio-ingressgateway-0")].built_in
    assert not desired[("istio-system", "egress-1")].built_in


def test_a_declared_ingress_gateway_replaces_the_built_in_one() -> None:
    labels = {"istio": "ingressgateway", "team": "edge"}
    desired, _ = desired_gateways([deployment("istio-ingressgateway", labels=labels)])
    spec = desired[("istio-system", "istio-ingressgateway-0")]
    assert spec.deployment.label_map == labels and spec.built_in
    desired, _ = desired_gateways([deployment("istio-ingressgateway", replicas=0)])
    assert desired == {}


def test_a_bad_gateway_deployment_is_an_error_line() -> None:
    bad = deployment("egress")
    bad["spec"]["replicas"] = "two"
    desired, errors = desired_gateways([bad])
    assert list(desired) == [("istio-system", "istio-ingressgateway-0")]
    assert errors == ["gateway Deployment istio-system/egress: spec.replicas: 'two' is not a count"]


def test_server_ports_from_selecting_gateways_and_target_ports_from_the_service() -> None:
    egress = GatewayDeployment("egress", "istio-system", (("istio", "egressgateway"),))
    gateways = [
        {"spec": {"selector": {"istio": "egressgateway"},
                  "servers": [{"port": {"number": 80, "protocol": "HTTP"}},
                              {"port": {"number": 443, "protocol": "TLS"}}]}},
        {"spec": {"selector": {"istio": "ingressgateway"},
                  "servers": [{"port": {"number": 81}}]}},
    ]
    services = [
        {"metadata": {"name": "egress", "namespace": "istio-system"},
         "spec": {"selector": {"istio": "egressgateway"},
                  "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
        {"metadata": {"name": "elsewhere", "namespace": "default"},
         "spec": {"selector": {"istio": "egressgateway"},
                  "ports": [{"port": 443, "targetPort": 9443}]}},
    ]
    assert server_ports(egress, gateways, services) == [
        ServerPort(80, 8080, "http2", "HTTP"),
        ServerPort(443, 443, "", "TLS"),
    ]
    assert [p.server_port for p in server_ports(DEFAULT_GATEWAY, gateways, services)] == [81]


def test_a_gateway_api_gateway_gets_a_deployment_and_its_listener_ports() -> None:
    from ratline.api.gateway_api import server_ports_doc

    def gateway(namespace: str, class_name: str = "istio", port: int = 80) -> dict[str, object]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"gatewayClassName": class_name, "listeners": [
                {"name": "http", "port": port, "protocol": "HTTP"},
                {"name": "udp", "port": 53, "protocol": "UDP"}]},
        }

    docs = [gateway("a"), gateway("b", port=81), gateway("c", "other")]
    desired, errors = desired_gateways((), docs)
    assert errors == []
    assert {k for k in desired if k[1].startswith("web")} == {("a", "web-istio-0"),
                                                              ("b", "web-istio-0")}
    deployment = desired[("a", "web-istio-0")].deployment
    assert deployment.label_map["gateway.networking.k8s.io/gateway-name"] == "web"
    ports = server_ports(deployment, [server_ports_doc(d) for d in docs[:2]], [])
    assert [(p.server_port, p.protocol) for p in ports] == [(80, "HTTP")]  # not b's 81
