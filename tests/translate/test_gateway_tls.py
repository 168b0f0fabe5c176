"""Gateway servers terminating TLS: a filter chain per server chosen by SNI, each TLS mode's
context, Secrets served over SDS, conflicts reported, and real Envoy accepting the config.
The end-to-end proof is `tests/e2e/test_secure_gateways.py`."""

from __future__ import annotations

import base64
import datetime
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from ratline.api.loader import load_text
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from ratline.translate.proxy_resources import ProxyResources
from tests.translate import mesh
from tests.translate.static_config import validate, write_bootstrap


def _pem(cn: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(3)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _secret(name: str, ca: bool = False) -> str:
    cert, key = _pem(f"{name}.example.com")
    data = {"tls.crt": cert, "tls.key": key}
    if ca:
        data["ca.crt"] = _pem("ca")[0]
    lines = "".join(f"  {k}: {base64.b64encode(v.encode()).decode()}\n" for k, v in data.items())
    return (f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: "
            f"istio-system}}\ntype: kubernetes.io/tls\ndata:\n{lines}")


GATEWAY = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a, minProtocolVersion: TLSV1_3,
          cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [b.example.com, a.example.com]
    tls: {mode: MUTUAL, credentialName: b, subjectAltNames: [client.example.com]}
  - port: {number: 443, name: https-c, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: c}
  - port: {number: 443, name: https-missing, protocol: HTTPS}
    hosts: [d.example.com]
    tls: {mode: SIMPLE, credentialName: missing}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [a.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: ["*.example.com"]
  gateways: [secure]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
"""
CONFIG = GATEWAY + _secret("a") + _secret("b", ca=True) + _secret("c", ca=True)


def _resources(config: str = CONFIG, mtls: bool = True) -> tuple[ProxyResources, MeshGenerator]:
    snapshot = mesh.snapshot(config)
    secrets = tuple(r for r in load_text(config, "t.yaml").resources if r.kind == "Secret")
    generator = MeshGenerator(
        replace(snapshot, extra={"Secret": secrets}), Settings.from_env(), mtls=mtls
    )
    resources = generator.protos_for(mesh.node("istio-ingressgateway-0"))
    assert resources is not None
    return resources, generator


def _contexts(resources: ProxyResources) -> dict[tuple[str, ...], Any]:
    listener = next(x for x in resources.listeners if x.name == "0.0.0.0_8443")
    found = {}
    for chain in listener.filter_chains:
        context = tls_pb2.DownstreamTlsContext()
        chain.transport_socket.typed_config.Unpack(context)
        found[tuple(chain.filter_chain_match.server_names)] = (chain, context)
    return found


def test_a_chain_per_server_by_sni_with_its_mode() -> None:
    resources, generator = _resources()
    contexts = _contexts(resources)
    assert set(contexts) == {("a.example.com",), ("b.example.com",), ()}
    chain_a, simple = contexts[("a.example.com",)]
    assert not simple.require_client_certificate.value
    params = simple.common_tls_context.tls_params
    assert params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_3
    assert list(params.cipher_suites) == ["ECDHE-ECDSA-AES128-GCM-SHA256"]
    assert [c.name for c in simple.common_tls_context.tls_certificate_sds_secret_configs] == [
        "kubernetes://a"
    ]
    assert chain_a.name == "https.443.https-a.secure.default"
    _, mutual = contexts[("b.example.com",)]
    assert mutual.require_client_certificate.value
    combined = mutual.common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "kubernetes://b-cacert"
    sans = combined.default_validation_context.match_typed_subject_alt_names
    assert {m.matcher.exact for m in sans} == {"client.example.com"}
    _, optional = contexts[()]
    assert not optional.require_client_certificate.value
    assert optional.common_tls_context.combined_validation_context.HasField(
        "validation_context_sds_secret_config")
    assert {s.name for s in resources.secrets} == {
        "kubernetes://a", "kubernetes://b", "kubernetes://b-cacert",
        "kubernetes://c", "kubernetes://c-cacert",
    }
    texts = [str(m) for m in generator.messages]
    assert any("host a.example.com on port 443 is already served" in t for t in texts), texts
    assert any("no Secret 'missing'" in t for t in texts), texts
    routes = {r.name: r for r in resources.routes}
    assert [h.domains[0] for h in routes["https.443.https-a.secure.default"].virtual_hosts] == [
        "a.example.com"
    ]
    redirect = next(h for h in routes["http.8080"].virtual_hosts if h.domains[0] == "a.example.com")
    assert redirect.require_tls == rc.VirtualHost.ALL


def test_file_certificates_and_istio_mutual() -> None:
    config = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: files}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [f.example.com]
    tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}
  - port: {number: 443, name: https-mesh, protocol: HTTPS}
    hosts: [m.example.com]
    tls: {mode: ISTIO_MUTUAL}
"""
    contexts = _contexts(_resources(config)[0])
    _, files = contexts[("f.example.com",)]
    common = files.common_tls_context
    assert common.tls_certificates[0].certificate_chain.filename == "/c.pem"
    assert common.validation_context.trusted_ca.filename == "/ca.pem"
    _, mesh_mtls = contexts[("m.example.com",)]
    assert mesh_mtls.require_client_certificate.value
    assert [c.name for c in mesh_mtls.common_tls_context.tls_certificate_sds_secret_configs] == [
        "default"
    ]


def test_istio_mutual_without_mesh_certificates_is_reported() -> None:
    config = GATEWAY.replace("tls: {mode: OPTIONAL_MUTUAL, credentialName: c}",
                             "tls: {mode: ISTIO_MUTUAL}") + _secret("a") + _secret("b", ca=True)
    resources, generator = _resources(config, mtls=False)
    assert () not in _contexts(resources)
    assert any("ISTIO_MUTUAL needs the gateway's mesh certificate" in str(m)
               for m in generator.messages)


def test_envoy_accepts_the_https_gateway(tmp_path: Path) -> None:
    resources, _ = _resources(mtls=False)
    result = validate(Settings.from_env().envoy, write_bootstrap(tmp_path / "gw.json", resources))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
