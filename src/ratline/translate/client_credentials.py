"""A DestinationRule's `tls.credentialName`: TLS origination with a Secret's certificates.

As in Istio, `credentialName` names a Secret (`ratline.api.secrets`: `tls.crt`/`tls.key`
and `ca.crt`, or `cert`/`key`/`cacert`) instead of file paths: MUTUAL presents its
certificate and key, SIMPLE and MUTUAL check the server against its CA. Outbound
clusters are shared by every proxy, so they name the Secret by SDS name only
(`kubernetes://NAME`, `kubernetes://NAME-cacert`, the names gateways use too); each
proxy is sent the Secrets of those names from its own namespace (Istio's rule: the
Secret lives beside the workload or gateway using it), else from the DestinationRule's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from ratline.api.envelope import Resource
from ratline.model.snapshot import MeshSnapshot
from ratline.translate.common import ads_config_source

CREDENTIAL_PREFIX = "kubernetes://"
CA_SUFFIX = "-cacert"


def certificate_name(credential: str) -> str:
    return f"{CREDENTIAL_PREFIX}{credential}"


def ca_name(credential: str) -> str:
    return f"{CREDENTIAL_PREFIX}{credential}{CA_SUFFIX}"


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_config_source())


def credential_context(
    tls: Any, sni: str, sans: list[common_pb2.SubjectAltNameMatcher]
) -> tls_pb2.UpstreamTlsContext:
    """SIMPLE or MUTUAL with the certificates of Secret `tls.credentialName` over SDS."""
    context = tls_pb2.UpstreamTlsContext(sni=sni)
    common = context.common_tls_context
    if tls.mode == "MUTUAL":
        common.tls_certificate_sds_secret_configs.append(
            _sds(certificate_name(tls.credential_name))
        )
    if not tls.insecure_skip_verify:
        combined = common.combined_validation_context
        combined.validation_context_sds_secret_config.CopyFrom(_sds(ca_name(tls.credential_name)))
        combined.default_validation_context.match_typed_subject_alt_names.extend(sans)
    return context


def _rules_credentials(snapshot: MeshSnapshot) -> Iterator[tuple[str, Resource[Any]]]:
    for rule in snapshot.destination_rules:
        spec = rule.spec
        policies = [spec.traffic_policy, *(s.traffic_policy for s in spec.subsets)]
        for policy in list(policies):
            if policy is not None:
                policies.extend(p for p in policy.port_level_settings)
        for policy in policies:
            tls = getattr(policy, "tls", None) if policy is not None else None
            if tls is not None and tls.credential_name and tls.mode in ("SIMPLE", "MUTUAL"):
                yield tls.credential_name, rule


def _find(snapshot: MeshSnapshot, name: str, namespaces: tuple[str, ...]) -> Resource[Any] | None:
    for namespace in namespaces:
        for secret in snapshot.extra.get("Secret", ()):
            if secret.name == name and secret.namespace == namespace:
                return secret
    return None


def client_secrets(snapshot: MeshSnapshot, proxy_namespace: str) -> dict[str, secret_pb2.Secret]:
    """The SDS Secrets a proxy in `proxy_namespace` needs for the DestinationRules'
    credentialNames, by name (none when no rule uses one)."""
    found: dict[str, secret_pb2.Secret] = {}
    for credential, rule in _rules_credentials(snapshot):
        namespaces = tuple(dict.fromkeys((proxy_namespace, rule.namespace)))
        secret = _find(snapshot, credential, namespaces)
        if secret is None:
            continue
        spec = secret.spec
        if spec.has_certificate and certificate_name(credential) not in found:
            cert = common_pb2.TlsCertificate()
            cert.certificate_chain.inline_bytes = spec.cert_pem.encode()
            cert.private_key.inline_bytes = spec.key_pem.encode()
            found[certificate_name(credential)] = secret_pb2.Secret(
                name=certificate_name(credential), tls_certificate=cert
            )
        if spec.ca_pem and ca_name(credential) not in found:
            validation = common_pb2.CertificateValidationContext()
            validation.trusted_ca.inline_bytes = spec.ca_pem.encode()
            found[ca_name(credential)] = secret_pb2.Secret(
                name=ca_name(credential), validation_context=validation
            )
    return found


def missing_credentials(snapshot: MeshSnapshot) -> Iterator[tuple[str, Resource[Any]]]:
    """(credentialName, rule) of the names no Secret of that name exists for anywhere."""
    names = {s.name for s in snapshot.extra.get("Secret", ())}
    for credential, rule in _rules_credentials(snapshot):
        if credential not in names:
            yield credential, rule
