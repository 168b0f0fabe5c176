"""Workload identity and mTLS through real Envoy, real TLS and the real CA (one mesh).

openssl s_client sees a workload's SPIFFE certificate chained to the mesh root; plain
text reaches a workload under PERMISSIVE and is refused under STRICT while mesh clients
keep working; the CSR endpoint refuses other identities, forged tokens and bad CSRs and
issues nothing for them; the admin API and xDS need credentials.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from ratline.ca.csr import make_csr, new_private_key, private_key_pem
from ratline.ca.tokens import mint_token
from tests.ca.test_csr_and_tokens import _tampered_signature
from tests.e2e.conftest import Mesh, wait_status
from tests.helpers import free_fixed_port, http_get, wait_for
from tests.security.conftest import mesh_files

pytestmark = pytest.mark.e2e

HELLO_ID = "spiffe://cluster.local/ns/default/sa/hello-sa"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client-sa"

STRICT = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """One mesh for the module (the e2e `make_mesh` fixture is per test)."""
    from tests.e2e.conftest import mesh_env

    mesh_dir = tmp_path_factory.mktemp("secured") / "mesh"
    mesh_dir.mkdir()
    for rel, text in mesh_files().items():
        (mesh_dir / rel).write_text(text)
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        mesh.up()
        wait_status(mesh, mesh.gateway_url("/"), timeout=30)
        yield mesh
    finally:
        mesh.down()


def _instance(mesh: Mesh, name: str) -> dict[str, Any]:
    return next(i for i in mesh.run_info()["instances"] if i["name"] == name)


def _inbound(mesh: Mesh, name: str = "hello-v1-0") -> int:
    return int(_instance(mesh, name)["ports"][0]["inbound_port"])


def _state(mesh: Mesh) -> Path:
    return mesh.dir / ".ratline"


def _call_through_client(mesh: Mesh) -> tuple[int, str]:
    app_port = _instance(mesh, "client-0")["ports"][0]["app_port"]
    status, body, _ = http_get(f"http://127.0.0.1:{app_port}/call?url=http://hello:8000/")
    return status, body


def test_s_client_shows_the_spiffe_id_and_the_chain_to_the_mesh_root(secured: Mesh) -> None:
    bundle = _state(secured) / "ca" / "trust-bundle.pem"
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{_inbound(secured)}", "-showcerts",
         "-CAfile", str(bundle)],
        input="", capture_output=True, text=True, timeout=20,
    )
    out = proc.stdout + proc.stderr
    assert "Verify return code: 0 (ok)" in out, out
    pems = [
        "-----BEGIN CERTIFICATE-----" + block.split("-----END CERTIFICATE-----")[0]
        + "-----END CERTIFICATE-----\n"
        for block in out.split("-----BEGIN CERTIFICATE-----")[1:]
    ]
    leaf = x509.load_pem_x509_certificate(pems[0].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [HELLO_ID]
    root = x509.load_pem_x509_certificate(bundle.read_bytes())
    leaf.verify_directly_issued_by(root)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() <= 24 * 3600 + 120


def _plain_ok(mesh: Mesh) -> bool:
    try:
        status, _, _ = http_get(f"http://127.0.0.1:{_inbound(mesh)}/", timeout=2)
    except (OSError, urllib.error.URLError):
        return False
    return status == 200


def test_plaintext_under_permissive_refused_under_strict_mesh_clients_work(
    secured: Mesh,
) -> None:
    assert _plain_ok(secured), "PERMISSIVE (the default) accepts plain text"
    assert _call_through_client(secured)[0] == 200
    proc = secured.apply(STRICT, "strict.yaml")
    assert proc.returncode == 0, proc.stderr
    try:
        wait_for(lambda: not _plain_ok(secured), timeout=15, what="plain text refused")
        for _ in range(5):
            assert _call_through_client(secured)[0] == 200
            assert secured.get(secured.gateway_url("/"))[0] == 200
        stats = http_get(
            f"http://127.0.0.1:{_instance(secured, 'hello-v1-0')['sidecar']['admin_port']}/stats"
        )[1]
        handshakes = [
            line for line in stats.splitlines()
            if line.startswith("listener.") and ".ssl.handshake:" in line
        ]
        assert handshakes and all(int(h.rsplit(":", 1)[1]) > 0 for h in handshakes), handshakes
    finally:
        secured.ratline("delete", "-f", str(secured.dir.parent / "strict.yaml"),
                        "--mesh", str(secured.dir))
    wait_for(lambda: _plain_ok(secured), timeout=15, what="plain text accepted again")


def _csr_endpoint(mesh: Mesh) -> str:
    data = json.loads((_state(mesh) / "controlplane.json").read_text())
    return f"https://{data['ca']}/v1/certificates"


def _post_csr(mesh: Mesh, token: str, csr: bytes) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(_state(mesh) / "ca" / "trust-bundle.pem"))
    body = json.dumps({"csr": csr.decode(), "ttl_s": 600}).encode()
    request = urllib.request.Request(
        _csr_endpoint(mesh), data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _issued_count(mesh: Mesh) -> int:
    return (_state(mesh) / "logs" / "controlplane.log").read_text().count("issued certificate")


def test_csr_endpoint_refuses_and_issues_nothing(secured: Mesh) -> None:
    key = (_state(secured) / "ca" / "token-key").read_bytes()
    hello_token = mint_token(key, namespace="default", service_account="hello-sa", instance="t")
    before = _issued_count(secured)

    status, answer = _post_csr(secured, hello_token, make_csr(new_private_key(), CLIENT_ID))
    assert status == 403 and "proves only " + HELLO_ID in answer["errors"][0]["text"]

    forged = mint_token(b"x" * 32, namespace="default", service_account="client-sa", instance="t")
    status, answer = _post_csr(secured, forged, make_csr(new_private_key(), CLIENT_ID))
    assert status == 401 and "signature" in answer["errors"][0]["text"]

    bad = _tampered_signature(make_csr(new_private_key(), HELLO_ID))
    status, answer = _post_csr(secured, hello_token, bad)
    assert status == 403 and "signature does not verify" in answer["errors"][0]["text"]

    assert _issued_count(secured) == before
    log = (_state(secured) / "logs" / "controlplane.log").read_text()
    assert log.count("certificate request from") >= 3

    status, answer = _post_csr(secured, hello_token, make_csr(new_private_key(), HELLO_ID))
    assert status == 200
    leaf = x509.load_pem_x509_certificates(answer["cert_chain"].encode())[0]
    assert leaf.public_bytes(serialization.Encoding.PEM)


def test_admin_api_needs_the_admin_credential(secured: Mesh) -> None:
    admin = secured.run_info()["control_plane"]["admin"]
    status, body, _ = http_get(f"http://{admin}/v1/status")
    assert status == 401 and "admin-token" in body
    token = (_state(secured) / "admin-token").read_text().strip()
    status, _, _ = http_get(f"http://{admin}/v1/status", {"Authorization": f"Bearer {token}"})
    assert status == 200
    mode = (_state(secured) / "admin-token").stat().st_mode & 0o777
    assert mode == 0o600


def test_xds_refuses_a_client_without_a_mesh_certificate(secured: Mesh) -> None:
    host, port = secured.run_info()["control_plane"]["xds"].rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(_state(secured) / "ca" / "trust-bundle.pem"))
    context.set_alpn_protocols(["h2"])
    # The server's certificate verifies against the mesh root (hostname = its IP SAN) …
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        # … but without a client certificate of the mesh the server hangs up
        # without answering (an HTTP/2 server would send its SETTINGS first).
        received = b""
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            while chunk := conn.recv(4096):
                received += chunk
    assert received == b""


def _identity_credentials(mesh: Mesh, service_account: str) -> grpc.ChannelCredentials:
    """TLS client credentials of a mesh identity, issued by the real CSR endpoint."""
    key_bytes = (_state(mesh) / "ca" / "token-key").read_bytes()
    token = mint_token(key_bytes, namespace="default", service_account=service_account,
                       instance="probe")
    key = new_private_key()
    uri = f"spiffe://cluster.local/ns/default/sa/{service_account}"
    status, answer = _post_csr(mesh, token, make_csr(key, uri))
    assert status == 200, answer
    root = (_state(mesh) / "ca" / "trust-bundle.pem").read_bytes()
    return grpc.ssl_channel_credentials(root, private_key_pem(key), answer["cert_chain"].encode())


def _first_xds_answer(mesh: Mesh, credentials: grpc.ChannelCredentials, node: str) -> Any:
    xds = mesh.run_info()["control_plane"]["xds"]
    request = discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id=node),
        type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
    )
    with grpc.secure_channel(xds, credentials) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        stream = stub.StreamAggregatedResources(iter([request]), timeout=10)
        return next(stream)


def test_a_workload_gets_only_its_own_xds_config(secured: Mesh) -> None:
    client_creds = _identity_credentials(secured, "client-sa")
    nodes = {i["name"]: i["node"] for i in secured.run_info()["instances"]}
    own = _first_xds_answer(secured, client_creds, nodes["client-0"])
    assert own.resources, "its own config is served"
    with pytest.raises(grpc.RpcError) as refused:
        _first_xds_answer(secured, client_creds, nodes["hello-v1-0"])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "only fetch its own config" in str(refused.value.details())
