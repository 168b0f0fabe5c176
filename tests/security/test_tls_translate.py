"""PeerAuthentication inheritance, inbound mTLS listeners, auto mTLS and DestinationRule tls
as Envoy config (unit level; the traffic tests are in test_mtls_e2e.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from ratline.api.loader import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.model.snapshot import MeshSnapshot
from ratline.settings import Settings
from ratline.translate import peer_exchange, tls
from ratline.translate.generator import MeshGenerator
from tests.translate import mesh


def _snapshot(config: str, mesh_config: Any = None) -> MeshSnapshot:
    loaded = load_text(config, "test.yaml")
    loaded.raise_for_errors()
    base = mesh.snapshot(mesh.CONFIG if "DestinationRule" not in config else "", mesh_config)
    pas = tuple(r for r in loaded.resources if r.kind == "PeerAuthentication")
    drs = tuple(r for r in loaded.resources if r.kind == "DestinationRule")
    return replace(
        base,
        extra={"PeerAuthentication": pas},
        destination_rules=drs or base.destination_rules,
    )


def pa(name: str, namespace: str, mode: str | None, selector: str = "", ports: str = "") -> str:
    spec = []
    if selector:
        spec.append(f"  selector: {{matchLabels: {{{selector}}}}}")
    if mode:
        spec.append(f"  mtls: {{mode: {mode}}}")
    if ports:
        spec.append(f"  portLevelMtls: {{{ports}}}")
    body = "\n".join(spec) or "  {}"
    return (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}\n---\n"
    )


REVIEWS = {"app": "reviews", "version": "v1"}


@pytest.mark.parametrize(
    ("config", "port", "want"),
    [
        ("", 9080, "PERMISSIVE"),
        (pa("m", "istio-system", "STRICT"), 9080, "STRICT"),
        (pa("m", "istio-system", "STRICT") + pa("n", "default", "DISABLE"), 9080, "DISABLE"),
        (pa("m", "istio-system", "STRICT") + pa("n", "default", "UNSET"), 9080, "STRICT"),
        (pa("n", "default", "STRICT") + pa("w", "default", "PERMISSIVE", "app: reviews"),
         9080, "PERMISSIVE"),
        (pa("n", "default", "STRICT") + pa("w", "default", None, "app: reviews"), 9080, "STRICT"),
        (pa("n", "default", "STRICT") + pa("w", "default", "STRICT", "app: ratings"),
         9080, "STRICT"),
        (pa("n", "other", "DISABLE"), 9080, "PERMISSIVE"),
        (pa("w", "default", "STRICT", "app: reviews", "9080: {mode: DISABLE}"), 9080, "DISABLE"),
        (pa("w", "default", "STRICT", "app: reviews", "9080: {mode: DISABLE}"), 9090, "STRICT"),
        (pa("m", "istio-system", "STRICT")
         + pa("w", "default", None, "app: reviews", "9080: {mode: UNSET}"), 9080, "STRICT"),
    ],
)
def test_peer_authentication_inheritance(config: str, port: int, want: str) -> None:
    snapshot = _snapshot(config)
    assert tls.mtls_mode(snapshot, "default", REVIEWS, port) == want


def test_root_namespace_comes_from_mesh_config() -> None:
    snapshot = _snapshot(pa("m", "mesh-root", "STRICT"), MeshConfig(rootNamespace="mesh-root"))
    assert tls.mtls_mode(snapshot, "default", REVIEWS, 9080) == "STRICT"


def _resources(snapshot: MeshSnapshot, instance: str) -> Any:
    generator = MeshGenerator(snapshot, Settings(), mtls=True)
    resources = generator.protos_for(mesh.node(instance))
    assert resources is not None
    return resources


def _inbound(snapshot: MeshSnapshot, instance: str = "reviews-v1-0") -> Any:
    resources = _resources(snapshot, instance)
    return next(li for li in resources.listeners if li.name.startswith("inbound|"))


def test_strict_inbound_requires_client_certificates() -> None:
    listener = _inbound(_snapshot(pa("m", "istio-system", "STRICT")))
    assert len(listener.filter_chains) == 1
    context = tls_pb2.DownstreamTlsContext()
    listener.filter_chains[0].transport_socket.typed_config.Unpack(context)
    assert context.require_client_certificate.value is True
    common = context.common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["default"]
    assert common.combined_validation_context.validation_context_sds_secret_config.name == "ROOTCA"
    # Only the PROXY header of a client sidecar's metadata (translate.peer_exchange).
    assert [f.name for f in listener.listener_filters] == [peer_exchange.PROXY_PROTOCOL_FILTER]


def test_permissive_inbound_has_an_mtls_and_a_plaintext_chain() -> None:
    listener = _inbound(_snapshot(""))
    assert [c.filter_chain_match.transport_protocol for c in listener.filter_chains] == [
        "tls", "raw_buffer"
    ]
    assert listener.filter_chains[0].HasField("transport_socket")
    assert not listener.filter_chains[1].HasField("transport_socket")
    assert [f.name for f in listener.listener_filters] == [
        peer_exchange.PROXY_PROTOCOL_FILTER, tls.TLS_INSPECTOR
    ]


def test_disable_inbound_is_plaintext_and_clients_send_plaintext() -> None:
    snapshot = _snapshot(pa("w", "default", "DISABLE", "app: reviews"))
    listener = _inbound(snapshot)
    assert len(listener.filter_chains) == 1
    assert not listener.filter_chains[0].HasField("transport_socket")
    resources = _resources(snapshot, "productpage-v1-0")
    by_name = {a.cluster_name: a for a in resources.endpoints}
    reviews = by_name["outbound|9080||reviews.default.svc.cluster.local"]
    ratings = by_name["outbound|9080||ratings.default.svc.cluster.local"]
    labelled = [
        dict(e.metadata.filter_metadata["envoy.transport_socket_match"])
        for group in (reviews, ratings) for le in group.endpoints for e in le.lb_endpoints
    ]
    assert labelled.count({"tlsMode": "istio"}) == len(ratings.endpoints[0].lb_endpoints)


def _with_accounts(snapshot: MeshSnapshot) -> MeshSnapshot:
    """Give every sidecar endpoint the service account `bookinfo-APP`."""
    services = {
        host: replace(service, endpoints={
            port: tuple(replace(e, service_account=f"bookinfo-{service.name}") for e in eps)
            for port, eps in service.endpoints.items()
        })
        for host, service in snapshot.services.items()
    }
    return replace(snapshot, services=services)


def test_auto_mtls_matches_sidecar_endpoints_and_checks_their_identities() -> None:
    resources = _resources(_with_accounts(_snapshot("")), "productpage-v1-0")
    cluster = next(c for c in resources.clusters
                   if c.name == "outbound|9080||ratings.default.svc.cluster.local")
    (match,) = cluster.transport_socket_matches
    assert dict(match.match) == {"tlsMode": "istio"}
    context = tls_pb2.UpstreamTlsContext()
    match.transport_socket.typed_config.Unpack(context)
    assert context.sni == cluster.name
    sans = context.common_tls_context.combined_validation_context.default_validation_context
    assert [m.matcher.exact for m in sans.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/default/sa/bookinfo-ratings"
    ]
    external = next(c for c in resources.clusters if "httpbin.org" in c.name)
    assert not external.transport_socket_matches


def test_auto_mtls_off_in_mesh_config_sends_plaintext() -> None:
    snapshot = _snapshot("", MeshConfig(enableAutoMtls=False))
    resources = _resources(snapshot, "productpage-v1-0")
    assert not any(c.transport_socket_matches for c in resources.clusters)


DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    tls: {TLS}
"""


def _dr_cluster(tls_yaml: str) -> Any:
    resources = _resources(_snapshot(DR.replace("{TLS}", tls_yaml)), "productpage-v1-0")
    return next(c for c in resources.clusters
                if c.name == "outbound|9080||ratings.default.svc.cluster.local")


def _upstream(cluster: Any) -> tls_pb2.UpstreamTlsContext:
    context = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(context)
    return context


def test_destination_rule_disable_turns_auto_mtls_off() -> None:
    cluster = _dr_cluster("{mode: DISABLE}")
    assert not cluster.transport_socket_matches and not cluster.HasField("transport_socket")


def test_destination_rule_istio_mutual_with_sni_and_sans() -> None:
    cluster = _dr_cluster(
        "{mode: ISTIO_MUTUAL, sni: r.example, subjectAltNames: [spiffe://cluster.local/ns/x/sa/y]}"
    )
    context = _upstream(cluster)
    assert context.sni == "r.example"
    common = context.common_tls_context
    assert common.tls_certificate_sds_secret_configs[0].name == "default"
    matchers = common.combined_validation_context.default_validation_context
    assert [m.matcher.exact for m in matchers.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/x/sa/y"
    ]


def test_destination_rule_simple_and_mutual_use_the_named_files() -> None:
    simple = _upstream(_dr_cluster(
        "{mode: SIMPLE, caCertificates: /etc/ca.pem, sni: api.example, "
        "subjectAltNames: [api.example]}"
    ))
    assert simple.sni == "api.example"
    validation = simple.common_tls_context.validation_context
    assert validation.trusted_ca.filename == "/etc/ca.pem"
    assert validation.match_typed_subject_alt_names[0].san_type == 2  # DNS
    assert not simple.common_tls_context.tls_certificates
    mutual = _upstream(_dr_cluster(
        "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}"
    ))
    cert = mutual.common_tls_context.tls_certificates[0]
    assert (cert.certificate_chain.filename, cert.private_key.filename) == ("/c.pem", "/k.pem")


def test_credential_name_names_the_secret_over_sds_and_a_missing_one_is_reported() -> None:
    snapshot = _snapshot(DR.replace("{TLS}", "{mode: MUTUAL, credentialName: my-secret}"))
    generator = MeshGenerator(snapshot, Settings(), mtls=True)
    generator.protos_for(mesh.node("productpage-v1-0"))
    texts = [str(m) for m in generator.messages]
    assert any("credentialName" in t and "no Secret my-secret" in t for t in texts), texts
    mutual = _upstream(_dr_cluster("{mode: MUTUAL, credentialName: my-secret}"))
    common = mutual.common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["kubernetes://my-secret"]
    sds = common.combined_validation_context.validation_context_sds_secret_config
    assert sds.name == "kubernetes://my-secret-cacert"
    simple = _upstream(_dr_cluster("{mode: SIMPLE, credentialName: my-secret}"))
    assert not simple.common_tls_context.tls_certificate_sds_secret_configs
