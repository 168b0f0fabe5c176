"""The Istio `Sidecar` resource end to end: egress scoping with real Envoys.

A `client` workload calls services `a` and `b` through its own sidecar (the app's
HTTP_PROXY). Applying a Sidecar that limits its egress to `a` (REGISTRY_ONLY) changes the
running sidecar live: `a` still answers, `b` gets Envoy's 502 and b's clusters are gone
from the sidecar's admin `/clusters`; without REGISTRY_ONLY `b` falls to the passthrough
cluster (503 locally); deleting the Sidecar brings `b` back. Neither the app nor
the sidecar restarts.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import Mesh
from tests.e2e.hello_mesh import HELLO_APP, workload_yaml
from tests.helpers import http_get, wait_for

pytestmark = pytest.mark.e2e


def service(name: str) -> str:
    return (
        "apiVersion: v1\nkind: Service\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: 8000}}\n---\n"
    )


MESH_YAML = (
    service("a")
    + service("b")
    + workload_yaml("a-v1", labels={"app": "a"})
    + "---\n"
    + workload_yaml("b-v1", labels={"app": "b"})
    + "---\n"
    + workload_yaml("client", labels={"app": "client"})
)

SIDECAR_YAML = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - hosts: [./a.default.svc.cluster.local]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""

B_CLUSTER = "outbound|8000||b.default.svc.cluster.local"
A_CLUSTER = "outbound|8000||a.default.svc.cluster.local"


def through_sidecar(outbound_port: int, url: str) -> tuple[int, str]:
    """(status, body) of a GET sent to a sidecar's HTTP proxy listener, as the app does."""
    proxy = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{outbound_port}"})
    try:
        with urllib.request.build_opener(proxy).open(url, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _client(mesh: Mesh) -> dict[str, Any]:
    return next(i for i in mesh.run_info()["instances"] if i["name"] == "client-0")


def _cluster_names(admin_port: int) -> set[str]:
    _, body, _ = http_get(f"http://127.0.0.1:{admin_port}/clusters")
    return {line.split("::", 1)[0] for line in body.splitlines() if "::" in line}


def test_sidecar_resource_scopes_egress_live(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh({"scope.yaml": MESH_YAML, "hello_app.py": HELLO_APP.read_text()})
    client = _client(mesh)
    outbound = int(client["sidecar"]["outbound_port"])
    admin = int(client["sidecar"]["admin_port"])
    pids = (client["app_pid"], client["proxy_pid"])

    def answers(host: str, want: int) -> str | None:
        status, body = through_sidecar(outbound, f"http://{host}:8000/")
        return body if status == want else None

    # No Sidecar: the client sees both services.
    assert "hello from a-v1-0" in wait_for(lambda: answers("a", 200), 30, what="a → 200")
    assert "hello from b-v1-0" in wait_for(lambda: answers("b", 200), 30, what="b → 200")
    assert {A_CLUSTER, B_CLUSTER} <= _cluster_names(admin)

    proc = mesh.apply(SIDECAR_YAML, name="sidecar.yaml")
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: answers("b", 502) is not None, 30, what="b → 502 (REGISTRY_ONLY)")
    status, body = through_sidecar(outbound, "http://a:8000/")
    assert status == 200 and "hello from a-v1-0" in body
    # Long names of the visible service work too; b's are unknown in every form.
    assert through_sidecar(outbound, "http://a.default.svc.cluster.local:8000/")[0] == 200
    assert through_sidecar(outbound, "http://b.default.svc.cluster.local:8000/")[0] == 502
    def without_b() -> set[str] | None:
        names = _cluster_names(admin)
        return names if B_CLUSTER not in names else None

    clusters = wait_for(without_b, 30, what="b's cluster removed from the client's sidecar")
    assert A_CLUSTER in clusters
    # Other sidecars are not scoped: a's sidecar still has b's cluster.
    a_admin = next(i for i in mesh.run_info()["instances"] if i["name"] == "a-v1-0")
    assert B_CLUSTER in _cluster_names(int(a_admin["sidecar"]["admin_port"]))

    # Without the Sidecar's REGISTRY_ONLY, the mesh's ALLOW_ANY applies: b goes to the
    # passthrough cluster, which resolves `b` by DNS (no service VIPs locally) and fails.
    allow_any = SIDECAR_YAML.replace("  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n", "")
    assert mesh.apply(allow_any, name="sidecar.yaml").returncode == 0
    def b_not_blocked() -> tuple[int, str] | None:
        answer = through_sidecar(outbound, "http://b:8000/")
        return answer if answer[0] != 502 else None

    status, body = wait_for(b_not_blocked, 30, what="b no longer 502 under ALLOW_ANY")
    assert status == 503 and "hello" not in body, (status, body)
    assert through_sidecar(outbound, "http://a:8000/")[0] == 200

    sidecar_file = mesh.dir.parent / "sidecar.yaml"
    mesh.ratline("delete", "-f", str(sidecar_file), "--mesh", str(mesh.dir))
    assert "hello from b-v1-0" in wait_for(lambda: answers("b", 200), 30, what="b → 200 again")
    assert B_CLUSTER in _cluster_names(admin)
    client = _client(mesh)
    assert (client["app_pid"], client["proxy_pid"]) == pids, "app or sidecar restarted"
