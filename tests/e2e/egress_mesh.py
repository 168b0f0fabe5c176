"""The egress tests' mesh: a `client` workload, Istio's egress gateway declared as Istio users
declare it (a Deployment with `inject.istio.io/templates: gateway` plus a Service), and
"external" servers in the test process on 127.0.0.1, outside the mesh, which
ServiceEntries reach by DNS resolution of `localhost`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Mesh, mesh_env
from tests.e2e.egress_servers import (
    Pki,
    RunningServer,
    external_server,
    make_pki,
    server_context,
)
from tests.e2e.hello_mesh import HELLO_APP, workload_yaml
from tests.helpers import free_fixed_port, http_get

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
    def __init__(self, mesh: Mesh, external: RunningServer, other: RunningServer,
                 secure: RunningServer, mutual: RunningServer, pki: Pki) -> None:
        self.mesh = mesh
        self.external = external
        self.other = other
        """A second plain server (another endpoint of a STATIC ServiceEntry)."""
        self.secure = secure
        """TLS server (certificate for secure.external.test and mutual.external.test)."""
        self.mutual = mutual
        """The same, requiring a client certificate signed by the test CA."""
        self.pki = pki

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



@contextmanager
def running_egress_mesh(root: Path) -> Iterator[EgressMesh]:
    """The mesh up, with its external servers, until the block ends."""
    mesh_dir = root / "mesh"
    mesh_dir.mkdir()
    pki = make_pki(root / "pki", ("secure.external.test", "mutual.external.test"), ("client",))
    with (
        external_server("plain") as plain,
        external_server("other") as other,
        external_server("secure", server_context(pki)) as secure,
        external_server("mutual", server_context(pki, require_client_cert=True)) as mutual,
    ):
        (mesh_dir / "hello_app.py").write_text(HELLO_APP.read_text())
        (mesh_dir / "egress.yaml").write_text(
            workload_yaml("client", labels={"app": "client"}) + "---\n" + EGRESS_GATEWAY_YAML
            + "---\n" + service_entry("external", "edition.external.test", 80, plain.port)
        )
        mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
        try:
            mesh.up()
            yield EgressMesh(mesh, plain, other, secure, mutual, pki)
        finally:
            mesh.down()
