"""Istio's Secure Gateways task on Bookinfo, through the real ingress gateway Envoy.

One mesh for the module: Bookinfo plus a Gateway with two HTTPS servers on port 443 chosen
by SNI (`bookinfo.example.com` SIMPLE, `mtls.example.com` MUTUAL) whose certificates are
`Secret`s named by `credentialName`, and an HTTP server redirecting
`bookinfo.example.com` to HTTPS. Certificates are made with openssl; clients are curl
(with `--resolve`, as the task) and Python's ssl (to read the served certificate).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.conftest import Mesh, mesh_env, wait_status
from tests.e2e.tls_certs import Pair, https_get, make_ca, make_leaf, tls_secret
from tests.helpers import free_fixed_port, http_get, wait_for

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "examples" / "bookinfo"
HOST, MTLS_HOST, MESH_HOST = "bookinfo.example.com", "mtls.example.com", "mesh.example.com"

GATEWAY = f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: mygateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [{HOST}]
    tls: {{mode: SIMPLE, credentialName: bookinfo-credential}}
  - port: {{number: 443, name: https-mtls, protocol: HTTPS}}
    hosts: [{MTLS_HOST}]
    tls: {{mode: MUTUAL, credentialName: mtls-credential, minProtocolVersion: TLSV1_2}}
  - port: {{number: 443, name: https-mesh, protocol: HTTPS}}
    hosts: [{MESH_HOST}]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 80, name: http-redirect, protocol: HTTP}}
    hosts: [{HOST}]
    tls: {{httpsRedirect: true}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo-secure}}
spec:
  hosts: [{HOST}, {MTLS_HOST}, {MESH_HOST}]
  gateways: [mygateway]
  http:
  - match: [{{uri: {{exact: /productpage}}}}]
    route:
    - destination: {{host: productpage, port: {{number: 9080}}}}
"""


class Edge:
    """The running mesh and the certificates of the test."""

    def __init__(self, mesh: Mesh, certs: Path) -> None:
        self.mesh = mesh
        self.certs = certs
        self.ca = certs / "example.com.crt"
        self.ca_pair = Pair(self.ca, certs / "example.com.key")
        self.client_ca = Pair(certs / "client.example.com.crt", certs / "client.example.com.key")
        self.port = int(mesh.env["RATLINE_GATEWAY_PORT_OFFSET"]) + 443
        self.http_port = int(mesh.env["RATLINE_GATEWAY_PORT_OFFSET"]) + 80

    def curl(
        self, host: str, *extra: str, path: str = "/productpage"
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
             "--cacert", str(self.ca), "--resolve", f"{host}:{self.port}:127.0.0.1",
             *extra, f"https://{host}:{self.port}{path}"],
            capture_output=True, text=True, timeout=30,
        )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root = tmp_path_factory.mktemp("secure-gw")
    certs = root / "certs"
    ca = make_ca(certs, "example.com")
    client_ca = make_ca(certs, "client.example.com")
    server = make_leaf(certs, ca, HOST, 1)
    mtls_server = make_leaf(certs, ca, MTLS_HOST, 1)
    mesh_dir = root / "mesh"
    shutil.copytree(BOOKINFO, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    (mesh_dir / "secure-gateway.yaml").write_text(GATEWAY)
    (mesh_dir / "secrets.yaml").write_text(
        tls_secret("bookinfo-credential", server)
        + "---\n"
        + tls_secret("mtls-credential", mtls_server, ca=client_ca.cert)
    )
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        mesh.up()
        result = Edge(mesh, certs)
        wait_status(mesh, mesh.gateway_url("/productpage"), timeout=60)
        wait_for(lambda: result.curl(HOST).stdout == "200", timeout=30,
                 what=f"https://{HOST} through the gateway")
        yield result
    finally:
        mesh.down()


def test_https_with_the_right_sni_and_a_wrong_one_refused(edge: Edge) -> None:
    ok = edge.curl(HOST)
    assert ok.stdout == "200", ok.stderr
    assert https_get(edge.port, HOST, edge.ca).serial == 1
    wrong = edge.curl("other.example.com")
    assert wrong.returncode != 0 and wrong.stdout == "000", wrong  # no filter chain: closed
    # The right SNI, but a host no server names in the certificate check: curl refuses.
    no_sni = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(edge.ca),
         f"https://127.0.0.1:{edge.port}/productpage"], capture_output=True, text=True, timeout=30)
    assert no_sni.returncode != 0


def test_mutual_tls_with_and_without_a_client_certificate(edge: Edge) -> None:
    client = make_leaf(edge.certs, edge.client_ca, "client.example.com", 7, client=True)
    without = edge.curl(MTLS_HOST)
    assert without.returncode != 0, without  # certificate required
    other = make_leaf(edge.certs, edge.ca_pair, "client.example.com", 8, client=True)
    untrusted = edge.curl(MTLS_HOST, "--cert", str(other.cert), "--key", str(other.key))
    assert untrusted.returncode != 0, untrusted  # signed by a CA the server does not trust
    ok = edge.curl(MTLS_HOST, "--cert", str(client.cert), "--key", str(client.key))
    assert ok.stdout == "200", ok.stderr
    # The SIMPLE server on the same port asks for no client certificate.
    assert edge.curl(HOST).stdout == "200"


def test_istio_mutual_takes_a_client_certificate_of_the_mesh_ca(edge: Edge) -> None:
    ca_dir = edge.mesh.dir / ".ratline" / "ca"
    mesh_ca = Pair(ca_dir / "root-cert.pem", ca_dir / "root-key.pem")
    client = make_leaf(edge.certs, mesh_ca, "client.mesh", 9, client=True,
                       san="URI:spiffe://cluster.local/ns/default/sa/client")
    # The gateway presents its own workload certificate (a SPIFFE ID, no DNS name).
    answer = https_get(edge.port, MESH_HOST, mesh_ca.cert, client=client, check_hostname=False)
    assert answer.status == 200
    with pytest.raises(OSError):  # no client certificate
        https_get(edge.port, MESH_HOST, mesh_ca.cert, check_hostname=False)
    outsider = make_leaf(edge.certs, edge.client_ca, "client.example.com", 10, client=True)
    with pytest.raises(OSError):  # a client certificate from outside the mesh
        https_get(edge.port, MESH_HOST, mesh_ca.cert, client=outsider, check_hostname=False)


def test_https_redirect_answers_301(edge: Edge) -> None:
    def plain(*extra: str) -> str:
        return subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             "--max-time", "10", *extra, f"http://127.0.0.1:{edge.http_port}/productpage"],
            capture_output=True, text=True, timeout=30,
        ).stdout

    assert plain("-H", f"Host: {HOST}") == f"301 https://{HOST}/productpage"
    # Other hosts on port 80 are still served in plain text by Bookinfo's own Gateway.
    assert plain().startswith("200 ")


def _expired(pair: Pair) -> Pair:
    """A certificate for the same key that expired yesterday (openssl 3.0 cannot backdate)."""
    import datetime

    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, HOST)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(99)
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = pair.cert.with_name("expired.crt")
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pair(path, pair.key)


def test_a_bad_secret_is_refused_and_the_last_good_certificate_stays(edge: Edge) -> None:
    current = Pair(edge.certs / f"{HOST}-1.crt", edge.certs / f"{HOST}-1.key")  # served
    other = make_leaf(edge.certs, edge.ca_pair, HOST, 50)
    mismatched = tls_secret("bookinfo-credential", current, key=other.key)
    not_pem = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bookinfo-credential, namespace: "
        "istio-system}\ntype: kubernetes.io/tls\nstringData: {tls.crt: hello, tls.key: world}\n"
    )
    cases = [
        ("mismatch.yaml", mismatched, "data[tls.key]",
         "the private key does not match the certificate in data[tls.crt]"),
        ("expired.yaml", tls_secret("bookinfo-credential", _expired(current)), "data[tls.crt]",
         "the certificate expired on"),
        ("notpem.yaml", not_pem, "stringData[tls.crt]", "is not a PEM certificate"),
    ]
    for name, text, field, reason in cases:
        proc = edge.mesh.apply(text, name)
        assert proc.returncode != 0, proc.stdout
        assert name in proc.stderr and "Secret istio-system/bookinfo-credential" in proc.stderr
        assert field in proc.stderr and reason in proc.stderr, proc.stderr
    assert edge.curl(HOST).stdout == "200"
    assert https_get(edge.port, HOST, edge.ca).serial == 1
    # The same bad Secret in the mesh directory: `ratline analyze` names it, and the file's
    # last good version (the served certificate) stays in force until it is fixed.
    secrets_file = edge.mesh.dir / "secrets.yaml"
    good = secrets_file.read_text()
    secrets_file.write_text(mismatched)
    try:
        def analyzed() -> str | None:
            out = edge.mesh.ratline("analyze", "--mesh", str(edge.mesh.dir), check=False)
            text = out.stdout + out.stderr
            return text if "does not match the certificate" in text else None

        text = wait_for(analyzed, timeout=20, what="analyze reports the bad Secret file")
        assert "secrets.yaml" in text and "Secret istio-system/bookinfo-credential" in text
        assert https_get(edge.port, HOST, edge.ca).serial == 1
        assert edge.curl(MTLS_HOST).returncode != 0  # still MUTUAL: its Secret is kept too
    finally:
        secrets_file.write_text(good)


def test_secret_values_are_never_shown(edge: Edge) -> None:
    key_text = (edge.certs / f"{HOST}-1.key").read_text()
    key_line = key_text.splitlines()[1]
    mesh = edge.mesh
    admin = mesh.run_info()["control_plane"]["admin"].rpartition(":")[2]
    listed = http_get(
        f"http://127.0.0.1:{admin}/v1/resources?kind=Secret", mesh.admin_headers())[1]
    assert "bookinfo-credential" in listed and key_line not in listed
    assert json.loads(listed)["resources"][0]["resource"]["data"]["tls.key"] == "<redacted>"
    gateway = mesh.run_info()["gateways"][0]
    dump = http_get(f"http://127.0.0.1:{gateway['admin_port']}/config_dump?include_eds")[1]
    assert "kubernetes://bookinfo-credential" in dump and key_line not in dump
    table = mesh.ratline("proxy-config", "secret", gateway["name"], "--mesh", str(mesh.dir))
    assert any(line.split()[:3] == ["kubernetes://bookinfo-credential", "Cert", "Chain"]
               for line in table.stdout.splitlines()), table.stdout
    for args in (("proxy-config", "secret", gateway["name"], "-o", "json"),
                 ("proxy-config", "listeners", gateway["name"], "-o", "json")):
        out = mesh.ratline(*args, "--mesh", str(mesh.dir))
        assert "kubernetes://bookinfo-credential" in out.stdout
        assert key_line not in out.stdout + out.stderr
    logs = [p for p in (mesh.dir / ".ratline" / "logs").rglob("*") if p.is_file()]
    assert any(p.name.startswith("istio-ingressgateway") for p in logs), logs
    for log in logs:
        assert key_line not in log.read_text(errors="replace"), log


def test_a_rotated_secret_reaches_the_gateway_under_load_with_no_failure(edge: Edge) -> None:
    new = make_leaf(edge.certs, edge.ca_pair, HOST, 2)
    results: list[object] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set() and len(results) < 20000:
            try:
                results.append(https_get(edge.port, HOST, edge.ca))
            except OSError as exc:
                results.append(exc)

    loop = threading.Thread(target=client, daemon=True)
    loop.start()
    try:
        wait_for(lambda: len(results) >= 20, timeout=30, what="the client loop runs")
        edge.mesh.apply_ok(tls_secret("bookinfo-credential", new), "rotated.yaml")
        wait_for(
            lambda: sum(1 for r in results[-5:] if getattr(r, "serial", 0) == 2) == 5,
            timeout=30, what="five requests in a row see the new certificate",
        )
        seen = len(results)
        wait_for(lambda: len(results) >= seen + 20, timeout=30, what="more requests after")
    finally:
        stop.set()
        loop.join(timeout=30)
    failed = [r for r in results if getattr(r, "status", 0) != 200]
    serials = {getattr(r, "serial", None) for r in results}
    assert failed == [], failed[:5]
    assert serials == {1, 2}
    assert edge.curl(HOST).stdout == "200"


TCP_HOST = "tcp.example.com"


def tls_tcp_gateway(port: int) -> str:
    """A `TLS` server terminating TLS (SIMPLE) whose bytes go to a `tcp:` route."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tls-tcp}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tls-tcp, protocol: TLS}}
    hosts: [{TCP_HOST}]
    tls: {{mode: SIMPLE, credentialName: tcp-credential}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tls-tcp}}
spec:
  hosts: [{TCP_HOST}]
  gateways: [tls-tcp]
  tcp:
  - match: [{{port: {port}}}]
    route:
    - destination: {{host: productpage, port: {{number: 9080}}}}
"""


def test_a_tls_server_terminates_tls_for_its_tcp_route(edge: Edge) -> None:
    port = free_fixed_port()
    pair = make_leaf(edge.certs, edge.ca_pair, TCP_HOST, 21)
    secret = edge.mesh.apply_ok(tls_secret("tcp-credential", pair), "tcp-credential.yaml")
    gateway = edge.mesh.apply_ok(tls_tcp_gateway(port), "tls-tcp.yaml")

    def through() -> int:
        try:
            return https_get(port, TCP_HOST, edge.ca).serial
        except OSError:
            return 0

    try:
        wait_for(lambda: through() == 21, timeout=30, what="TLS terminated on the TLS server")
        # The decrypted bytes (an HTTP request) reached productpage over the tcp: route.
        assert https_get(port, TCP_HOST, edge.ca).status == 200
        with pytest.raises(OSError):  # an SNI the server does not name: no filter chain
            https_get(port, "other.example.com", edge.ca, check_hostname=False)
        listener = next(
            item["active_state"]["listener"]
            for item in _gateway_dump(edge, "dynamic_listeners")
            if item["name"] == f"0.0.0.0_{port}"
        )
        (chain,) = listener["filter_chains"]
        assert chain["filter_chain_match"]["server_names"] == [TCP_HOST]
        assert chain["filters"][-1]["name"] == "envoy.filters.network.tcp_proxy"
        tls_context = json.dumps(chain["transport_socket"])
        assert "alpn_protocols" not in tls_context  # opaque bytes inside: no ALPN offered
    finally:
        edge.mesh.delete_file(gateway)
        edge.mesh.delete_file(secret)


def _gateway_dump(edge: Edge, resource: str) -> list[dict[str, object]]:
    admin = edge.mesh.run_info()["gateways"][0]["admin_port"]
    _, body, _ = http_get(f"http://127.0.0.1:{admin}/config_dump?resource={resource}")
    return list(json.loads(body)["configs"])
