"""Egress end to end with real Envoys: ServiceEntry, outbound traffic policy, an egress
gateway, TLS origination and passthrough to servers outside the mesh.

One mesh for the module: a `client` workload (requests go to its sidecar's HTTP proxy
listener, as its app's HTTP_PROXY would), and Istio's egress gateway declared as Istio
users declare it (a Deployment with `inject.istio.io/templates: gateway` plus a
Service). The "external" servers run in the test process on 127.0.0.1, outside the mesh;
ServiceEntries reach them by DNS resolution of `localhost`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mesh, mesh_env
from tests.e2e.egress_servers import RunningServer, external_server
from tests.e2e.hello_mesh import HELLO_APP, workload_yaml
from tests.helpers import free_fixed_port, http_get, wait_for

pytestmark = pytest.mark.e2e

EGRESS_GATEWAY_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector:
    matchLabels: {istio: egressgateway}
  template:
    metadata:
      annotations: {inject.istio.io/templates: gateway}
      labels: {istio: egressgateway, app: istio-egressgateway, sidecar.istio.io/inject: "true"}
    spec:
      serviceAccountName: istio-egressgateway-service-account
      containers:
      - {name: istio-proxy, image: auto}
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
"""


def service_entry(name: str, host: str, port: int, target: int, protocol: str = "HTTP") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{host}]
  ports:
  - {{number: {port}, name: {protocol.lower()}-port, protocol: {protocol}}}
  resolution: DNS
  location: MESH_EXTERNAL
  endpoints:
  - address: localhost
    ports: {{{protocol.lower()}-port: {target}}}
"""


EGRESS_ROUTING_YAML = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [edition.external.test]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway}
spec:
  hosts: [edition.external.test]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: external
        port: {number: 80}
  - match:
    - gateways: [istio-egressgateway]
      port: 80
    route:
    - destination:
        host: edition.external.test
        port: {number: 80}
"""


def through_sidecar(outbound_port: int, url: str) -> tuple[int, str]:
    """(status, body) of a GET sent to a sidecar's HTTP proxy listener, as the app does."""
    proxy = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{outbound_port}"})
    try:
        with urllib.request.build_opener(proxy).open(url, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def counter(admin_port: int, name: str) -> int:
    """One Envoy stat counter (0 when Envoy has none of that name yet)."""
    _, body, _ = http_get(f"http://127.0.0.1:{admin_port}/stats?filter=^{name}$")
    for line in body.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


class EgressMesh:
    def __init__(self, mesh: Mesh, external: RunningServer) -> None:
        self.mesh = mesh
        self.external = external

    def instance(self, name: str) -> dict[str, Any]:
        return next(i for i in self.mesh.run_info()["instances"] if i["name"] == name)

    def gateway(self, name: str) -> dict[str, Any]:
        return next(g for g in self.mesh.run_info()["gateways"] if g["name"] == name)

    @property
    def client_outbound(self) -> int:
        return int(self.instance("client-0")["sidecar"]["outbound_port"])

    @property
    def client_admin(self) -> int:
        return int(self.instance("client-0")["sidecar"]["admin_port"])

    def get(self, url: str) -> tuple[int, str]:
        return through_sidecar(self.client_outbound, url)

    def apply(self, text: str, name: str) -> Path:
        return self.mesh.apply_ok(text, name)


@pytest.fixture(scope="module")
def egress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressMesh]:
    root = tmp_path_factory.mktemp("egress")
    mesh_dir = root / "mesh"
    mesh_dir.mkdir()
    with external_server("plain") as plain:
        (mesh_dir / "hello_app.py").write_text(HELLO_APP.read_text())
        (mesh_dir / "egress.yaml").write_text(
            workload_yaml("client", labels={"app": "client"}) + "---\n" + EGRESS_GATEWAY_YAML
            + "---\n" + service_entry("external", "edition.external.test", 80, plain.port)
        )
        mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
        try:
            mesh.up()
            yield EgressMesh(mesh, plain)
        finally:
            mesh.down()


def test_egress_gateway_is_its_own_envoy_and_listed(egress: EgressMesh) -> None:
    gateways = {g["name"]: g for g in egress.mesh.run_info()["gateways"]}
    assert set(gateways) == {"istio-ingressgateway-0", "istio-egressgateway-0"}
    egw = gateways["istio-egressgateway-0"]
    assert egw["namespace"] == "istio-system"
    assert egw["labels"]["istio"] == "egressgateway"
    assert egw["admin_port"] != gateways["istio-ingressgateway-0"]["admin_port"]

    def both_synced() -> dict[tuple[str, str], Any] | None:
        found = {(p["instance"], p["namespace"]): p for p in egress.mesh.proxy_status()}
        wanted = [found.get((f"istio-{kind}gateway-0", "istio-system"))
                  for kind in ("ingress", "egress")]
        ok = all(p is not None and p["types"]["CDS"]["state"] == "SYNCED" for p in wanted)
        return found if ok else None

    proxies = wait_for(both_synced, 30, what="both gateways SYNCED in proxy-status")
    assert proxies[("istio-egressgateway-0", "istio-system")]["workload"] == "istio-egressgateway"
    table = egress.mesh.ratline("proxy-status", "--mesh", str(egress.mesh.dir)).stdout
    assert "istio-egressgateway-0.istio-system" in table, table


def test_service_entry_dns_resolves_localhost(egress: EgressMesh) -> None:
    def answered() -> dict[str, Any] | None:
        status, body = egress.get("http://edition.external.test/direct")
        return json.loads(body) if status == 200 else None

    seen = wait_for(answered, 30, what="external host through the sidecar")
    assert seen["server"] == "plain" and seen["path"] == "/direct"
    assert seen["host"] == "edition.external.test"


def test_egress_gateway_path_in_both_envoys_stats(egress: EgressMesh) -> None:
    routing = egress.apply(EGRESS_ROUTING_YAML, "egress-routing.yaml")
    egw_cluster = "outbound|80|external|istio-egressgateway.istio-system.svc.cluster.local"
    ext_cluster = "outbound|80||edition.external.test"

    def gateway_bound() -> dict[str, Any] | None:
        gateway = egress.gateway("istio-egressgateway-0")
        return gateway if gateway["server_ports"].get("80") else None

    gateway = wait_for(gateway_bound, 30, what="egress gateway listening for server port 80")
    egw_admin = int(gateway["admin_port"])

    def through_gateway() -> bool:
        before = counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total")
        status, body = egress.get("http://edition.external.test/via-gateway")
        after = counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total")
        return status == 200 and json.loads(body)["path"] == "/via-gateway" and after > before

    wait_for(through_gateway, 30, what="requests to the external host through the egress gateway")
    sidecar_before = counter(egress.client_admin, f"cluster.{egw_cluster}.upstream_rq_total")
    gateway_before = counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total")
    direct_before = counter(egress.client_admin, f"cluster.{ext_cluster}.upstream_rq_total")
    for _ in range(5):
        status, _body = egress.get("http://edition.external.test/again")
        assert status == 200
    assert counter(egress.client_admin, f"cluster.{egw_cluster}.upstream_rq_total") \
        - sidecar_before == 5
    assert counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total") - gateway_before == 5
    assert counter(egress.client_admin, f"cluster.{ext_cluster}.upstream_rq_total") \
        == direct_before, "the sidecar went to the external host directly"
    egress.mesh.delete_file(routing)


def istio_requests(stats_port: int, **labels: str) -> int:
    """Sum of `istio_requests_total` on a proxy's merged metrics port with these labels."""
    _, body, _ = http_get(f"http://127.0.0.1:{stats_port}/stats/prometheus")
    total = 0
    for line in body.splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += int(float(value))
    return total


SIDECAR_ALLOW_ANY = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client-allow-any}
spec:
  workloadSelector: {labels: {app: client}}
  outboundTrafficPolicy: {mode: ALLOW_ANY}
"""


def test_allow_any_passes_through_and_registry_only_blocks(egress: EgressMesh) -> None:
    unknown = f"http://127.0.0.1:{egress.external.port}/unknown"
    registered = "http://edition.external.test/registered"
    passthrough = "cluster.PassthroughCluster.upstream_rq_total"

    def answer(url: str, want: int) -> str | None:
        status, body = egress.get(url)
        return body if status == want else None

    # MeshConfig's default, ALLOW_ANY: a host outside the registry passes through.
    before = counter(egress.client_admin, passthrough)
    assert json.loads(wait_for(lambda: answer(unknown, 200), 30, what="passthrough"))["path"] \
        == "/unknown"
    assert counter(egress.client_admin, passthrough) > before
    stats_port = int(egress.instance("client-0")["sidecar"]["stats_port"])
    wait_for(lambda: istio_requests(stats_port, destination_service_name="PassthroughCluster",
                                    response_code="200"), 15, what="passthrough metric")

    # Mesh-wide REGISTRY_ONLY (mesh.yaml, Istio's meshConfig): 502, counted as BlackHoleCluster.
    mesh_config = egress.mesh.dir / "mesh.yaml"
    mesh_config.write_text("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n")
    try:
        wait_for(lambda: answer(unknown, 502) is not None, 30, what="unknown host → 502")
        assert json.loads(wait_for(lambda: answer(registered, 200), 10, what="registered"))[
            "path"] == "/registered", "a ServiceEntry host must stay reachable"
        blocked = wait_for(
            lambda: istio_requests(stats_port, destination_service_name="BlackHoleCluster",
                                   response_code="502"), 15, what="BlackHoleCluster metric")
        assert blocked >= 1
        # A Sidecar's own outboundTrafficPolicy wins over the mesh's for its workloads.
        sidecar = egress.apply(SIDECAR_ALLOW_ANY, "sidecar-allow-any.yaml")
        wait_for(lambda: answer(unknown, 200), 30, what="Sidecar ALLOW_ANY over REGISTRY_ONLY")
        egress.mesh.delete_file(sidecar)
        wait_for(lambda: answer(unknown, 502) is not None, 30, what="REGISTRY_ONLY again")
    finally:
        mesh_config.unlink()
    wait_for(lambda: answer(unknown, 200), 30, what="ALLOW_ANY again")
