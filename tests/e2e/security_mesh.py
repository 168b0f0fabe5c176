"""A small mesh for security tests: one `httpbin` workload behind the ingress gateway.

The backend echoes the request (path and headers) as JSON; policies are applied with
`ratline apply` as a user would, and requests go through the gateway to the backend's
sidecar, where AuthorizationPolicy and RequestAuthentication are enforced.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Mesh, mesh_env, wait_status
from tests.helpers import free_fixed_port, wait_for

ECHO_APP = '''
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
'''

BACKEND = """
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec:
  selector: {app: httpbin}
  ports:
  - {name: http, port: 8000, targetPort: 8080}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: httpbin
  namespace: default
  labels: {app: httpbin, version: v1}
spec:
  serviceAccount: httpbin
  command: [python3, apps/echo.py]
  ports:
  - {name: http, containerPort: 8080}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/gateway]
  http:
  - route:
    - destination: {host: httpbin, port: {number: 8000}}
"""

RBAC_DENIED = "RBAC: access denied"


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """(status, body) of one request, ignoring any proxy environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = b"" if method in ("POST", "PUT") else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


@dataclass(frozen=True)
class Case:
    """One request and the answer the mesh must give."""

    path: str
    status: int
    body: str = ""
    """A substring the body must contain (`RBAC: access denied` for RBAC denials)."""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.method} {self.path} {self.headers or ''}"


class SecurityMesh:
    """The running mesh plus helpers to swap policies and check a matrix of requests."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._applied: Path | None = None
        self._count = 0

    def url(self, path: str) -> str:
        return self.mesh.gateway_url(path)

    def use(self, policies: str) -> None:
        """Replace the policies applied by the previous `use` with `policies`."""
        if self._applied is not None:
            self.mesh.ratline(
                "delete", "-f", str(self._applied), "--ignore-not-found",
                "--mesh", str(self.mesh.dir),
            )
            self._applied = None
        if policies.strip():
            self._count += 1
            name = f"policies-{self._count}.yaml"
            result = self.mesh.apply(policies, name)
            assert result.returncode == 0, result.stdout + result.stderr
            self._applied = self.mesh.dir.parent / name

    def answers(self, cases: Sequence[Case]) -> list[tuple[Case, int, str]]:
        return [(c, *request(self.url(c.path), c.method, c.headers)) for c in cases]

    def expect(self, cases: Sequence[Case], timeout: float = 20) -> None:
        """Poll until every case gets its status (and body); fail listing the mismatches."""
        last: list[str] = []

        def all_match() -> bool:
            last.clear()
            for case, status, body in self.answers(cases):
                if status != case.status or case.body not in body:
                    last.append(f"{case.describe()}: want {case.status} {case.body!r}, "
                                f"got {status} {body[:200]!r}")
            return not last

        try:
            wait_for(all_match, timeout=timeout, what="the policy matrix")
        except AssertionError as exc:
            raise AssertionError("\n".join(last)) from exc


def start_mesh(root: Path, mesh_yaml: str = "") -> Mesh:
    """Write the mesh directory under `root` and bring it up; the caller stops it."""
    mesh_dir = root / "mesh"
    (mesh_dir / "apps").mkdir(parents=True)
    (mesh_dir / "apps" / "echo.py").write_text(ECHO_APP)
    (mesh_dir / "httpbin.yaml").write_text(BACKEND)
    if mesh_yaml:
        (mesh_dir / "mesh.yaml").write_text(mesh_yaml)
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    mesh.up()
    wait_status(mesh, mesh.gateway_url("/ready"), timeout=30)
    return mesh


# ---- small HTTP servers the tests run themselves ----------------------------------------------


class StubServer:
    """A threaded HTTP server on 127.0.0.1 answering with `handle(method, path, headers)`."""

    def __init__(self, handle: Callable[[str, str, dict[str, str]], tuple[int, str]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.requests.append((self.command, self.path, headers))
                status, body = handle(self.command, self.path, headers)
                data = body.encode()
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
