"""The Kubernetes Gateway API on Bookinfo, through the real gateway Envoy it gets.

One mesh for the module: Bookinfo plus a Gateway API `Gateway` of class `istio` with
HTTP, HTTPS (certificate from a Secret made with openssl, in another namespace that a
ReferenceGrant opens), TCP, TLS passthrough and gRPC listeners, and routes: Istio's
Gateway API Bookinfo ingress (HTTPRoute to productpage), a weighted split between two
Services of reviews' versions, header modifiers, a redirect, a TCPRoute, a TLSRoute and
a GRPCRoute.
The Gateway gets its own Envoy (`bookinfo-gateway-istio`), as in Istio.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests.e2e.conftest import Mesh, mesh_env
from tests.e2e.tls_certs import make_ca, make_leaf, tls_secret
from tests.helpers import free_fixed_port, http_get, wait_for

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "examples" / "bookinfo"
HOST = "bookinfo.example.com"
SPLIT_HOST = "split.example.com"
TLS_HOST = "tls.example.com"
APPS = Path(__file__).resolve().parent / "apps"
TLS_ECHO_APP = APPS / "tls_echo.py"

GATEWAY_API = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bookinfo-gateway}}
spec:
  gatewayClassName: istio
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: Same}}}}}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: {HOST}
    tls:
      mode: Terminate
      certificateRefs: [{{kind: Secret, name: bookinfo-credential, namespace: istio-system}}]
  - {{name: tcp, port: 9000, protocol: TCP}}
  - {{name: tls, port: 8443, protocol: TLS, hostname: {TLS_HOST}, tls: {{mode: Passthrough}}}}
  - {{name: grpc, port: 8090, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: gateway-certificates, namespace: istio-system}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}}]
  to: [{{group: "", kind: Secret, name: bookinfo-credential}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bookinfo}}
spec:
  parentRefs: [{{name: bookinfo-gateway}}]
  rules:
  - matches:
    - path: {{type: Exact, value: /productpage}}
    - path: {{type: PathPrefix, value: /static}}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{add: [{{name: x-served-by, value: gateway-api}}]}}
    backendRefs: [{{name: productpage, port: 9080}}]
  - matches: [{{path: {{type: Exact, value: /old-page}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /productpage}},
                        statusCode: 301}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: reviews-split}}
spec:
  parentRefs: [{{name: bookinfo-gateway, sectionName: http}}]
  hostnames: [{SPLIT_HOST}]
  rules:
  - backendRefs:
    - {{name: reviews-v1, port: 9080, weight: 80}}
    - {{name: reviews-v2, port: 9080, weight: 20}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: productpage-tcp}}
spec:
  parentRefs: [{{name: bookinfo-gateway, sectionName: tcp}}]
  rules: [{{backendRefs: [{{name: productpage, port: 9080}}]}}]
"""
TLS_ECHO = f"""\
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {{name: tls-echo}}
spec:
  parentRefs: [{{name: bookinfo-gateway, sectionName: tls}}]
  hostnames: [{TLS_HOST}]
  rules: [{{backendRefs: [{{name: tls-echo, port: 9443}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tls-echo}}
spec: {{selector: {{app: tls-echo}}, ports: [{{name: tls, port: 9443}}]}}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {{name: tls-echo, labels: {{app: tls-echo}}}}
spec:
  command: [{sys.executable}, tls_echo.py, passed, tls.crt, tls.key]
  ports: [{{name: tls, containerPort: 9443}}]
"""
GRPC_ECHO = f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo}}
spec:
  parentRefs: [{{name: bookinfo-gateway, sectionName: grpc}}]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Say}}}}]
    backendRefs: [{{name: grpc-echo, port: 50051}}]
---
apiVersion: v1
kind: Service
metadata: {{name: grpc-echo}}
spec: {{selector: {{app: grpc-echo}}, ports: [{{name: grpc, port: 50051}}]}}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {{name: grpc-echo, labels: {{app: grpc-echo}}}}
spec:
  command: [{sys.executable}, grpc_echo.py, echoed]
  ports: [{{name: grpc, containerPort: 50051}}]
"""
VERSION_SERVICES = "".join(
    f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: reviews-{v}}}\n"
    f"spec: {{selector: {{app: reviews, version: {v}}}, ports: [{{port: 9080, name: http}}]}}\n"
    for v in ("v1", "v2")
)


class Front:
    """The mesh and the Gateway API gateway's Envoy."""

    def __init__(self, mesh: Mesh, ca: Path) -> None:
        self.mesh = mesh
        self.ca = ca

    @property
    def gateway(self) -> dict[str, Any]:
        return next(
            g for g in self.mesh.run_info()["gateways"] if g["workload"] == "bookinfo-gateway-istio"
        )

    def port(self, server_port: int) -> int:
        return int(self.gateway["server_ports"][str(server_port)])

    def get(self, path: str, host: str = HOST) -> tuple[int, str, dict[str, str]]:
        """(status, body, lower-cased headers) of one request, redirects not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port(80), timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def get_status(self, kind: str, name: str) -> dict[str, Any]:
        out = self.mesh.ratline("get", kind, name, "-o", "yaml", "--mesh", str(self.mesh.dir))
        return dict(yaml.safe_load(out.stdout).get("status") or {})


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    root = tmp_path_factory.mktemp("gateway-api")
    certs = root / "certs"
    ca = make_ca(certs, "example.com")
    server = make_leaf(certs, ca, HOST, 1)
    mesh_dir = root / "mesh"
    shutil.copytree(BOOKINFO, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    (mesh_dir / "gateway-api.yaml").write_text(
        GATEWAY_API + VERSION_SERVICES + TLS_ECHO + GRPC_ECHO)
    shutil.copy(APPS / "grpc_echo.py", mesh_dir / "grpc_echo.py")
    backend = make_leaf(certs, ca, TLS_HOST, 2)
    shutil.copy(TLS_ECHO_APP, mesh_dir / "tls_echo.py")
    shutil.copy(backend.cert, mesh_dir / "tls.crt")
    shutil.copy(backend.key, mesh_dir / "tls.key")
    (mesh_dir / "secrets.yaml").write_text(
        tls_secret("bookinfo-credential", server, namespace="istio-system")
    )
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        mesh.up()
        result = Front(mesh, ca.cert)
        wait_for(lambda: result.get("/productpage")[0] == 200 or None, timeout=60,
                 what="/productpage through the Gateway API gateway")
        yield result
    finally:
        mesh.down()


def test_bookinfo_through_the_gateway_of_its_own(front: Front) -> None:
    gateway = front.gateway
    assert gateway["labels"]["gateway.networking.k8s.io/gateway-name"] == "bookinfo-gateway"
    builtin = next(g for g in front.mesh.run_info()["gateways"] if g["built_in"])
    assert gateway["pid"] != builtin["pid"]
    status, body, headers = front.get("/productpage")
    assert status == 200 and "Book Details" in body
    assert headers.get("x-served-by") == "gateway-api"
    assert front.get("/static/none")[0] in (200, 404)  # reaches productpage
    assert front.get("/staticky")[0] == 404  # PathPrefix matches whole segments: no route
    assert front.get("/other")[0] == 404  # no rule matches
    # Istio's Gateway and VirtualService of the same names (examples/bookinfo) still serve.
    assert front.mesh.get(front.mesh.gateway_url("/productpage"))[0] == 200
    istio = front.mesh.ratline("get", "gateway", "bookinfo-gateway", "-o", "yaml").stdout
    assert yaml.safe_load(istio)["apiVersion"] == "networking.istio.io/v1"


def test_a_gateway_applied_live_gets_an_envoy_and_deleting_it_stops_it(front: Front) -> None:
    extra = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: extra}\n"
        "spec: {gatewayClassName: istio, listeners: [{name: web, port: 8080, protocol: HTTP}]}\n"
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: extra}\nspec:\n  parentRefs: [{name: extra}]\n"
        "  rules: [{backendRefs: [{name: details, port: 9080}]}]\n"
    )
    path = front.mesh.apply_ok(extra, "extra.yaml")
    told = front.mesh.ratline("apply", "-f", str(path)).stdout
    assert "gateway.gateway.networking.k8s.io/extra unchanged" in told, told

    def extra_port() -> int | None:
        found = [g for g in front.mesh.run_info()["gateways"] if g["workload"] == "extra-istio"]
        return int(found[0]["server_ports"]["8080"]) if found and found[0]["ready"] else None

    port = wait_for(extra_port, timeout=30, what="the extra Gateway's Envoy")
    wait_for(
        lambda: http_get(f"http://127.0.0.1:{port}/details/0")[0] == 200 or None,
        timeout=30, what="details through the extra Gateway",
    )
    front.mesh.delete_file(path)
    wait_for(lambda: extra_port() is None or None, timeout=30, what="the extra Envoy gone")


def test_redirect(front: Front) -> None:
    status, _body, headers = front.get("/old-page")
    assert status == 301
    assert headers["location"].endswith(f"{HOST}/productpage"), headers


def test_weighted_split_between_two_services(front: Front) -> None:
    def versions(n: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(n):
            status, body, _h = front.get("/reviews/0", host=SPLIT_HOST)
            assert status == 200, body
            seen[json.loads(body)["version"]] += 1
        return seen

    wait_for(lambda: front.get("/reviews/0", host=SPLIT_HOST)[0] == 200 or None, timeout=30,
             what="the split route")
    seen = versions(400)
    assert set(seen) <= {"v1", "v2"}
    # 80/20 over 400: mean 80 for v2, sd 8; 50/50 or 70/30 would be far outside.
    assert 52 <= seen["v2"] <= 108, seen


def test_https_listener_with_a_certificate_ref(front: Front) -> None:
    port = front.port(443)
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
         "--cacert", str(front.ca), "--resolve", f"{HOST}:{port}:127.0.0.1",
         f"https://{HOST}:{port}/productpage"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.stdout == "200", out.stderr
    wrong = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(front.ca),
         "--resolve", f"other.example.com:{port}:127.0.0.1",
         f"https://other.example.com:{port}/productpage"],
        capture_output=True, text=True, timeout=30,
    )
    assert wrong.returncode != 0


def test_tcp_route(front: Front) -> None:
    status, body, _h = http_get(f"http://127.0.0.1:{front.port(9000)}/productpage")
    assert status == 200 and "Book Details" in body


def test_tls_route_passes_the_tls_session_through_by_sni(front: Front) -> None:
    context = ssl.create_default_context(cafile=str(front.ca))

    def echo() -> str | None:
        try:
            with socket.create_connection(("127.0.0.1", front.port(8443)), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname=TLS_HOST) as conn:
                conn.sendall(b"hello\n")
                return conn.recv(256).decode().strip() or None
        except OSError:
            return None

    # The answer names the SNI the backend saw: the TLS session reached it unbroken.
    assert wait_for(echo, timeout=30, what="tls-echo through the TLS listener") == (
        f"passed {TLS_HOST} hello")


def test_grpc_route_matches_methods(front: Front) -> None:
    def call(method: str) -> str:
        with grpc.insecure_channel(f"127.0.0.1:{front.port(8090)}") as channel:
            stub = channel.unary_unary(f"/echo.Echo/{method}")
            return bytes(stub(b"hi", timeout=5)).decode()

    def said() -> str | None:
        try:
            return call("Say")
        except grpc.RpcError:
            return None

    assert wait_for(said, timeout=30, what="echo.Echo/Say through the gateway") == "echoed hi"
    with pytest.raises(grpc.RpcError) as raised:
        call("Flaky")  # no rule matches this method: the gateway answers 404
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_status_conditions_readable(front: Front) -> None:
    gateway = front.get_status("gateway.gateway.networking.k8s.io", "bookinfo-gateway")
    conditions = {c["type"]: c["status"] for c in gateway["conditions"]}
    assert conditions == {"Accepted": "True", "Programmed": "True"}
    attached = {item["name"]: item["attachedRoutes"] for item in gateway["listeners"]}
    # bookinfo (no sectionName) binds every HTTP/HTTPS listener of its namespace
    assert attached == {"http": 2, "https": 1, "tcp": 1, "tls": 1, "grpc": 2}
    route = front.get_status("httproute", "bookinfo")
    (parent,) = route["parents"]
    assert {c["type"]: c["status"] for c in parent["conditions"]} == {
        "Accepted": "True", "ResolvedRefs": "True"}
    broken = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: broken}\n"
        "spec:\n  parentRefs: [{name: bookinfo-gateway}]\n  hostnames: [broken.example.com]\n"
        "  rules: [{backendRefs: [{name: nowhere, port: 9080}],\n"
        "           filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}]}]\n"
    )
    applied = front.mesh.apply(broken, "broken.yaml")
    assert applied.returncode == 0, applied.stderr
    told = applied.stdout + applied.stderr
    assert "RAT0001" in told and "spec.rules[0].filters[0]" in told and "ExtensionRef" in told
    (parent,) = front.get_status("httproute", "broken")["parents"]
    refs = next(c for c in parent["conditions"] if c["type"] == "ResolvedRefs")
    assert refs["status"] == "False" and refs["reason"] == "BackendNotFound"
    assert re.search(r"nowhere", refs["message"])
    assert front.get("/", host="broken.example.com")[0] == 500
    table = front.mesh.ratline("get", "httproutes", "--mesh", str(front.mesh.dir)).stdout
    assert re.search(r"default\s+broken\s+True\s+False", table), table


def test_the_share_of_a_missing_backend_answers_500(front: Front) -> None:
    host = "half.example.com"
    route = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: half}\n"
        f"spec:\n  parentRefs: [{{name: bookinfo-gateway}}]\n  hostnames: [{host}]\n"
        "  rules: [{backendRefs: [{name: productpage, port: 9080, weight: 3},\n"
        "                         {name: nowhere, port: 9080, weight: 1}]}]\n"
    )
    path = front.mesh.apply_ok(route, "half.yaml")
    try:
        wait_for(lambda: front.get("/productpage", host=host)[0] == 200 or None, timeout=30,
                 what="the half-missing route")
        codes = Counter(front.get("/productpage", host=host)[0] for _ in range(400))
        assert set(codes) == {200, 500}, codes
        # 25 % of 400: mean 100, sd 8.7; a lost share given to productpage (0) or split
        # evenly (200) is far outside.
        assert 70 <= codes[500] <= 130, codes
    finally:
        front.mesh.delete_file(path)
