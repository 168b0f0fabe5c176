"""Client-side TLS through real Envoy: plain text to a workload without a sidecar, and
DestinationRule tls (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL with sni, subjectAltNames,
caCertificates, client certificate files) against real TLS servers."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ratline.ca.authority import CertificateAuthority, self_signed_root
from ratline.ca.csr import private_key_pem
from ratline.ca.identity import Identity
from tests.e2e.conftest import Mesh, mesh_env, wait_status
from tests.helpers import free_fixed_port, http_get, wait_for
from tests.security.conftest import mesh_files

pytestmark = pytest.mark.e2e


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    body = b"plain hello"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SecureHello(_Hello):
    body = b"secure hello"


def _serve(handler: type[_Hello], context: ssl.SSLContext | None) -> tuple[Any, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def _test_pki(folder: Path) -> dict[str, Path]:
    """A CA of the test (not the mesh's), a server cert for secure.example, a client cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    root = self_signed_root(key, "test.example")
    ca = CertificateAuthority(root, key, (), (root,), "test")
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_text(ca.root_pem)
    for name, dns in (("server", "secure.example"), ("client", "client.example")):
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        issued = ca.issue_server(leaf_key.public_key(), Identity("t", "ns", name), [dns],
                                 ["127.0.0.1"], 3600)
        files[f"{name}_cert"] = folder / f"{name}.pem"
        files[f"{name}_cert"].write_text(issued.chain_pem)
        files[f"{name}_key"] = folder / f"{name}-key.pem"
        files[f"{name}_key"].write_bytes(private_key_pem(leaf_key))
    return files


def _service_entry(name: str, host: str, port: int) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, dict[str, Any]]]:
    base = tmp_path_factory.mktemp("drtls")
    pki = _test_pki(base)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"]))
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_cert_chain(pki["server_cert"], pki["server_key"])
    plain, plain_port = _serve(_Hello, None)
    secure, secure_port = _serve(_SecureHello, server_context)
    mesh_dir = base / "mesh"
    mesh_dir.mkdir()
    for rel, text in mesh_files().items():
        (mesh_dir / rel).write_text(text)
    (mesh_dir / "external.yaml").write_text(
        _service_entry("plain", "plain.example", plain_port)
        + _service_entry("secure", "secure.example", secure_port)
    )
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        mesh.up()
        wait_status(mesh, mesh.gateway_url("/"), timeout=30)
        yield mesh, {"pki": pki, "plain": plain_port, "secure": secure_port}
    finally:
        mesh.down()
        for server in (plain, secure):
            server.shutdown()
            server.server_close()


def _call(mesh: Mesh, url: str) -> tuple[int, str]:
    client = next(i for i in mesh.run_info()["instances"] if i["name"] == "client-0")
    status, body, _ = http_get(
        f"http://127.0.0.1:{client['ports'][0]['app_port']}/call?url={url}", timeout=10
    )
    return status, body


def _until(mesh: Mesh, url: str, ok: bool, what: str) -> None:
    def check() -> bool:
        return (_call(mesh, url)[0] == 200) == ok

    wait_for(check, timeout=15, interval=0.2, what=what)


def _rule(host: str, tls: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: dr-{host.split('.')[0]}}}
spec:
  host: {host}
  trafficPolicy:
    tls: {tls}
"""


def _apply(mesh: Mesh, text: str) -> None:
    proc = mesh.apply(text, "dr.yaml")
    assert proc.returncode == 0, proc.stderr


def _delete(mesh: Mesh) -> None:
    mesh.ratline("delete", "-f", str(mesh.dir.parent / "dr.yaml"), "--mesh", str(mesh.dir))


def test_plain_text_to_a_workload_without_a_sidecar(tls_mesh: Any) -> None:
    mesh, info = tls_mesh
    status, body = _call(mesh, f"http://plain.example:{info['plain']}/")
    assert (status, body) == (200, "plain hello")


def test_destination_rule_mutual_and_simple_with_files(tls_mesh: Any) -> None:
    mesh, info = tls_mesh
    pki = info["pki"]
    url = f"http://secure.example:{info['secure']}/"
    assert _call(mesh, url)[0] != 200, "plain text to a TLS server fails"
    mutual = (
        f"{{mode: MUTUAL, clientCertificate: {pki['client_cert']}, "
        f"privateKey: {pki['client_key']}, caCertificates: {pki['ca']}, "
        f"sni: secure.example, subjectAltNames: [secure.example]}}"
    )
    try:
        _apply(mesh, _rule("secure.example", mutual))
        _until(mesh, url, True, "MUTUAL with the client certificate files")
        assert _call(mesh, url) == (200, "secure hello")
        wrong_san = mutual.replace("subjectAltNames: [secure.example]",
                                   "subjectAltNames: [other.example]")
        _apply(mesh, _rule("secure.example", wrong_san))
        _until(mesh, url, False, "a server without the expected SAN refused")
        simple = f"{{mode: SIMPLE, caCertificates: {pki['ca']}, sni: secure.example}}"
        _apply(mesh, _rule("secure.example", simple))
        # SIMPLE sends no client certificate: this server requires one.
        _until(mesh, url, False, "SIMPLE refused by a server requiring client certs")
    finally:
        _delete(mesh)


STRICT = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: hello-strict}
spec:
  selector: {matchLabels: {app: hello}}
  mtls: {mode: STRICT}
---
"""


def test_destination_rule_istio_mutual_and_disable(tls_mesh: Any) -> None:
    mesh, _ = tls_mesh
    url = "http://hello:8000/"
    try:
        wrong = "{mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/default/sa/x]}"
        _apply(mesh, STRICT + _rule("hello", wrong))
        _until(mesh, url, False, "ISTIO_MUTUAL with a SAN the server does not have fails")
        right = (
            "{mode: ISTIO_MUTUAL, sni: hello.example, "
            "subjectAltNames: [spiffe://cluster.local/ns/default/sa/hello-sa]}"
        )
        _apply(mesh, STRICT + _rule("hello", right))
        _until(mesh, url, True, "ISTIO_MUTUAL with the server's SPIFFE ID works")
        _apply(mesh, STRICT + _rule("hello", "{mode: DISABLE}"))
        _until(mesh, url, False, "DISABLE sends plain text, which STRICT refuses")
    finally:
        _delete(mesh)
    _until(mesh, url, True, "auto mTLS again without the rules")
