"""Unit tests of the Gateway API Gateways' deployments (`ratline.kube.gateway_deployments`)."""

from __future__ import annotations

from ratline.api.envelope import ResourceKey
from ratline.kube.gateway_deployments import gateway_objects, service_ports, wanted_objects
from ratline.kube.objects import ClusterObject


def gateway(name: str = "gw", cls: str = "istio", listeners: list[dict] | None = None,
            ) -> ClusterObject:
    body = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {"gatewayClassName": cls, "listeners": listeners or [
                {"name": "http", "port": 80, "protocol": "HTTP"}]}}
    return ClusterObject("KubernetesGateway", "apps", name, body, generation=1, uid="u-1")


def test_a_served_gateway_gets_an_owned_service_account_deployment_and_service() -> None:
    made = gateway_objects(gateway(), frozenset({"istio"}), 8000)
    assert [(o["kind"], o["metadata"]["name"]) for o in made] == [
        ("ServiceAccount", "gw-istio"), ("Deployment", "gw-istio"), ("Service", "gw-istio")]
    for obj in made:
        assert obj["metadata"]["ownerReferences"] == [{
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "gw",
            "uid": "u-1", "controller": True}]
    template = made[1]["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert labels["gateway.networking.k8s.io/gateway-name"] == "gw"
    assert labels["ratline.dev/gateway-namespace"] == "apps"
    assert labels["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["annotations"] == {"inject.istio.io/templates": "gateway"}
    assert template["spec"]["serviceAccountName"] == "gw-istio"
    assert made[2]["spec"]["selector"] == made[1]["spec"]["selector"]["matchLabels"]


def test_service_ports_follow_the_listeners_and_the_port_offset() -> None:
    ports = service_ports({"metadata": {"name": "gw"}, "spec": {"listeners": [
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "https", "port": 443, "protocol": "HTTPS"},
        {"name": "again", "port": 80, "protocol": "HTTP"},
        {"name": "tcp", "port": 31400, "protocol": "TCP"},
        {"name": "udp", "port": 5353, "protocol": "UDP"},
    ]}}, 8000)
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [
        ("status-port", 15021, 15021), ("http-80", 80, 8080), ("https-443", 443, 8443),
        ("tcp-31400", 31400, 31400)]


def test_only_gateways_of_served_classes_get_one() -> None:
    objects = {
        ResourceKey("KubernetesGateway", "apps", "gw"): gateway(),
        ResourceKey("KubernetesGateway", "apps", "other"): gateway("other", cls="nginx"),
        ResourceKey("KubernetesGateway", "apps", "mine"): gateway("mine", cls="mine"),
        ResourceKey("GatewayClass", "", "mine"): ClusterObject("GatewayClass", "", "mine", {
            "metadata": {"name": "mine"},
            "spec": {"controllerName": "istio.io/gateway-controller"}}),
    }
    wanted = wanted_objects(objects, 8000)
    assert sorted({name for _kind, _ns, name in wanted}) == ["gw-istio", "mine-istio"]
