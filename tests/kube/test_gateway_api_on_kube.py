"""The Gateway API in a cluster: kubectl-applied Gateway and HTTPRoute carry real traffic.

Ratline's CRDs and the Gateway API's (`ratline manifest crds --gateway-api`) and its RBAC
are applied with kubectl, the control plane runs against the cluster (bound to the test
node's bridge address, so injected pods reach it), and Istio's Bookinfo `details` runs in
an injected namespace on the tests' node (`tests.kube_pod_node`). A user then applies a
Gateway of class `istio` and an HTTPRoute with kubectl, as in Istio's Gateway API task:
the control plane makes the Gateway's deployment (`<gateway>-istio`: ServiceAccount,
Deployment, Service, owned by the Gateway), the controller-manager its pod, the injector
fills it in with the gateway template, and the node runs it. Requests through its pod
reach `details`; the statuses say Accepted, Programmed and ResolvedRefs as Istio writes
them (a route to a missing Service: ResolvedRefs False, BackendNotFound, and 500s);
deleting the Gateway takes its deployment with it.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ratline.kube.crds import gateway_api_crds
from tests.helpers import free_fixed_port, http_get, wait_for
from tests.kube.injected_apps import IMAGES, create_retrying, details_manifest, namespace
from tests.kube.ratline_on_kube import (
    INJECTOR_CONFIGURATION,
    KubeControlPlane,
    control_plane_env,
    install,
)
from tests.kube_cluster import KubeCluster
from tests.kube_pod_node import PodNode

pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(600)]

NS = "gateway-api"
GATEWAY = "bookinfo-gateway"
DEPLOYMENT = f"{GATEWAY}-istio"
HOST = "details.example.com"
POD_PORT = 8080
"""Where the gateway pod listens for the listener's port 80 (+ the port offset 8000)."""
GATEWAY_AND_ROUTE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {GATEWAY}, namespace: {NS}}}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {{namespaces: {{from: Same}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: details, namespace: {NS}}}
spec:
  parentRefs: [{{name: {GATEWAY}}}]
  hostnames: [{HOST}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /details}}}}]
    backendRefs: [{{name: details, port: 9080}}]
"""
MISSING_BACKEND = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: missing, namespace: {NS}}}
spec:
  parentRefs: [{{name: {GATEWAY}}}]
  hostnames: [{HOST}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /missing}}}}]
    backendRefs: [{{name: no-such-service, port: 9080}}]
"""


@dataclass
class GatewayMesh:
    cluster: KubeCluster
    cp: KubeControlPlane
    node: PodNode


@pytest.fixture(scope="module")
def mesh(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[GatewayMesh]:
    root = tmp_path_factory.mktemp("gateway-api")
    node = PodNode(kube_cluster, root, IMAGES, [str(Path(sys.executable).parent)])
    node.setup()
    env = control_plane_env(
        RATLINE_BIND_ADDRESS=node.bridge_ip,
        RATLINE_KUBE_WEBHOOK_PORT=str(free_fixed_port()),
        RATLINE_GATEWAY_PORT_OFFSET="8000",
    )
    cp = KubeControlPlane(kube_cluster, root / "cp", env)
    try:
        install(kube_cluster, gateway_api=True)
        cp.start()
        wait_for(lambda: kube_cluster.kubectl(
            "get", "mutatingwebhookconfiguration", INJECTOR_CONFIGURATION,
            check=False).returncode == 0, timeout=30, what="the injector configuration")
        kube_cluster.apply(namespace(NS, {"istio-injection": "enabled"}))
        wait_for(lambda: kube_cluster.kubectl(
            "get", "configmap", "istio-ca-root-cert", "-n", NS,
            check=False).returncode == 0, timeout=30, what="istio-ca-root-cert")
        create_retrying(kube_cluster, details_manifest(NS))
        ((pod, _ip),) = node.run_all(NS, 1, "app=details").items()
        node.wait_ready(NS, pod)
        yield GatewayMesh(kube_cluster, cp, node)
    finally:
        node.teardown()
        cp.uninstall_webhook()
        cp.stop()
        kube_cluster.kubectl("delete", "pods", "--all", "-n", NS, "--grace-period=0",
                             "--force", "--wait=false", check=False)
        kube_cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false")
        wait_for(lambda: kube_cluster.kubectl("get", "namespace", NS,
                                              check=False).returncode != 0,
                 timeout=90, interval=0.5, what=f"namespace {NS} deleted")
        names = [c["metadata"]["name"] for c in gateway_api_crds()]
        kube_cluster.kubectl("delete", "crd", *names, "--ignore-not-found", "--wait=true")
        kube_cluster.forget_discovery()


@pytest.fixture(scope="module")
def gateway_ip(mesh: GatewayMesh) -> str:
    """The Gateway and HTTPRoute applied with kubectl; the deployment's pod running."""
    mesh.cluster.apply(GATEWAY_AND_ROUTE)
    wait_for(lambda: mesh.cluster.kubectl("get", "deployment", DEPLOYMENT, "-n", NS,
                                          check=False).returncode == 0,
             timeout=30, interval=0.2, what=f"the control plane's deployment {DEPLOYMENT}")
    selector = f"gateway.networking.k8s.io/gateway-name={GATEWAY}"
    ((pod, ip),) = mesh.node.run_all(NS, 1, selector).items()
    mesh.node.wait_ready(NS, pod)
    return ip


def get(ip: str, path: str) -> int:
    try:
        return http_get(f"http://{ip}:{POD_PORT}{path}", {"Host": HOST}, timeout=10)[0]
    except OSError:
        return 0


def holds(condition: Any, in_a_row: int = 5, timeout: float = 60, what: str = "") -> None:
    """Until `condition` is true `in_a_row` times running."""
    streak = [0]

    def agreed() -> bool:
        streak[0] = streak[0] + 1 if condition() else 0
        return streak[0] >= in_a_row

    wait_for(agreed, timeout=timeout, interval=0.2, what=what or "the condition to hold")


def conditions(status: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""))
            for c in (status or {}).get("conditions") or ()}


def route_parent(cluster: KubeCluster, name: str) -> dict[str, tuple[str, str]]:
    route = cluster.get_json("httproute", name, "-n", NS)
    parents = (route.get("status") or {}).get("parents") or [{}]
    assert len(parents) == 1, parents
    assert parents[0].get("controllerName") in (None, "istio.io/gateway-controller"), parents
    return conditions(parents[0])


def test_the_gateway_gets_its_deployment_owned_by_it(mesh: GatewayMesh, gateway_ip: str) -> None:
    gateway = mesh.cluster.get_json("gateway.gateway.networking.k8s.io", GATEWAY, "-n", NS)
    for kind in ("serviceaccount", "deployment", "service"):
        made = mesh.cluster.get_json(kind, DEPLOYMENT, "-n", NS)
        owners = made["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
            ("Gateway", GATEWAY, gateway["metadata"]["uid"])], (kind, owners)
    service = mesh.cluster.get_json("service", DEPLOYMENT, "-n", NS)
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {15021: 15021, 80: POD_PORT}, ports
    pod = mesh.cluster.get_json("pods", "-n", NS, "-l",
                                f"gateway.networking.k8s.io/gateway-name={GATEWAY}")["items"][0]
    proxy = next(c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy")
    assert proxy["image"] != "auto", proxy  # filled in by the injector's gateway template
    assert "router" in json.dumps(proxy.get("args") or proxy.get("command")), proxy


def test_an_httproute_applied_with_kubectl_carries_traffic(
    mesh: GatewayMesh, gateway_ip: str
) -> None:
    holds(lambda: get(gateway_ip, "/details/0") == 200, what="/details/0 answered 200")
    status, body, _ = http_get(f"http://{gateway_ip}:{POD_PORT}/details/0", {"Host": HOST})
    assert status == 200 and json.loads(body)["id"] == 0, (status, body)
    assert get(gateway_ip, "/nowhere") == 404


def test_statuses_are_written_as_istio_writes_them(mesh: GatewayMesh, gateway_ip: str) -> None:
    def gateway_programmed() -> dict[str, tuple[str, str]] | None:
        found = conditions(mesh.cluster.get_json(
            "gateway.gateway.networking.k8s.io", GATEWAY, "-n", NS).get("status"))
        return found if found.get("Programmed", ("",))[0] == "True" else None

    found = wait_for(gateway_programmed, timeout=30, interval=0.3, what="Gateway Programmed")
    assert found["Accepted"][0] == "True", found

    def route_resolved() -> dict[str, tuple[str, str]] | None:
        found = route_parent(mesh.cluster, "details")
        return found if found.get("ResolvedRefs", ("",))[0] == "True" else None

    found = wait_for(route_resolved, timeout=30, interval=0.3, what="HTTPRoute ResolvedRefs")
    assert found["Accepted"] == ("True", "Accepted"), found


def test_a_route_to_a_missing_service_is_reported_and_answers_500(
    mesh: GatewayMesh, gateway_ip: str
) -> None:
    mesh.cluster.apply(MISSING_BACKEND)
    try:
        def unresolved() -> dict[str, tuple[str, str]] | None:
            found = route_parent(mesh.cluster, "missing")
            return found if found.get("ResolvedRefs") == ("False", "BackendNotFound") else None

        wait_for(unresolved, timeout=30, interval=0.3, what="ResolvedRefs False")
        holds(lambda: get(gateway_ip, "/missing") == 500, what="/missing answered 500")
        assert get(gateway_ip, "/details/0") == 200
    finally:
        mesh.cluster.kubectl("delete", "httproute", "missing", "-n", NS)


def test_deleting_the_gateway_takes_its_deployment(mesh: GatewayMesh, gateway_ip: str) -> None:
    mesh.cluster.kubectl("delete", "gateway.gateway.networking.k8s.io", GATEWAY, "-n", NS)
    def gone(kind: str) -> bool:
        return mesh.cluster.kubectl("get", kind, DEPLOYMENT, "-n", NS,
                                    check=False).returncode != 0

    for kind in ("deployment", "service", "serviceaccount"):
        wait_for(functools.partial(gone, kind), timeout=60, interval=0.3,
                 what=f"{kind} {DEPLOYMENT} deleted")
