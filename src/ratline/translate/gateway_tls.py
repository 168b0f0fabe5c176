"""Gateway servers that terminate TLS: HTTPS in SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL,
and TLS servers in those modes, whose decrypted bytes go to their `tcp:` routes.

One listener per port (`0.0.0.0_8443`) with the TLS inspector and a filter chain per
server, chosen by SNI (`server_names` = the server's hosts; a server with host `*` takes
any name). Each chain terminates TLS with its server's settings and routes with its own
route configuration over RDS (`https.443.NAME.GATEWAY.NAMESPACE`, as Istio names it),
holding only the hosts of that server; a client whose SNI no chain names is refused.

Certificates, as Istio users give them:
- `credentialName`: a `Secret` (see `ratline.api.secrets`) in the gateway's namespace (the
  gateway workload's, else the Gateway resource's), served to the gateway over SDS on its
  ADS stream as `kubernetes://NAME` (`kubernetes://NAME-cacert` for the client CA, from the
  Secret's `ca.crt`/`cacert` or a Secret named `NAME-cacert`). A new Secret version is a
  new SDS resource version: Envoy swaps certificates without dropping connections.
- `serverCertificate`, `privateKey`, `caCertificates`: files the gateway's Envoy reads.
- `ISTIO_MUTUAL`: the gateway's workload certificate and the mesh root, from its agent.

`minProtocolVersion` (TLS 1.2 unless set, as Istio), `maxProtocolVersion`, `cipherSuites`
and `subjectAltNames` (of client certificates) map to Envoy's TLS parameters.
"""

from __future__ import annotations

import base64
import binascii
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from ratline.api.envelope import Resource
from ratline.api.hosts import split_namespaced_host
from ratline.model.snapshot import MeshSnapshot
from ratline.translate import names, route_features, tls
from ratline.translate.common import CONFLICT, Findings, ads_config_source, pack_any
from ratline.translate.endpoints import socket_address
from ratline.translate.listeners import HCM_FILTER, connection_manager
from ratline.translate.routes import GatewayServer
from ratline.translate.tcp_routes import L4Chain, blackhole_chain, filter_chain
from ratline.translate.telemetry_envoy import HcmTelemetry, TcpTelemetry

CREDENTIAL_PREFIX = "kubernetes://"
CA_SUFFIX = "-cacert"
TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"})
MUTUAL_MODES = frozenset({"MUTUAL", "OPTIONAL_MUTUAL"})
ALPN = ("h2", "http/1.1")
_VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}
REDACTED = b"[redacted]"


def https_route_config_name(server: GatewayServer) -> str:
    """`https.443.https.bookinfo-gateway.default` (the port's name): one HTTPS server's
    routes."""
    label = server.server.port.name or server.server.name or f"server-{server.index}"
    return (
        f"https.{server.server.port.number}.{label}.{server.gateway.name}."
        f"{server.gateway.namespace}"
    )


@dataclass(frozen=True)
class HttpsChain:
    """One server's filter chain: the SNI names it takes, its TLS context and its routes."""

    server: GatewayServer
    server_names: tuple[str, ...]
    context: tls_pb2.DownstreamTlsContext
    route_config: str


@dataclass
class GatewaySecrets:
    """The Secrets a gateway proxy may read, and the SDS resources its chains use."""

    snapshot: MeshSnapshot
    proxy_namespace: str
    mesh_certificates: bool = True
    """The gateway has its workload certificate over SDS (for ISTIO_MUTUAL)."""
    used: dict[str, secret_pb2.Secret] = field(default_factory=dict)

    def _find(self, name: str, gateway: Resource[Any]) -> Resource[Any] | None:
        for namespace in dict.fromkeys((self.proxy_namespace, gateway.namespace)):
            for secret in self.snapshot.extra.get("Secret", ()):
                if secret.name == name and secret.namespace == namespace:
                    return secret
        return None

    def _resource_name(self, secret: Resource[Any], suffix: str = "") -> str:
        if secret.namespace == self.proxy_namespace:
            return f"{CREDENTIAL_PREFIX}{secret.name}{suffix}"
        return f"{CREDENTIAL_PREFIX}{secret.namespace}/{secret.name}{suffix}"

    def certificate(self, name: str, gateway: Resource[Any]) -> str | None:
        """The SDS name of the server certificate in Secret `name`, or None if it has none."""
        secret = self._find(name, gateway)
        if secret is None or not secret.spec.has_certificate:
            return None
        resource = self._resource_name(secret)
        if resource not in self.used:
            cert = common_pb2.TlsCertificate()
            cert.certificate_chain.inline_bytes = secret.spec.cert_pem.encode()
            cert.private_key.inline_bytes = secret.spec.key_pem.encode()
            self.used[resource] = secret_pb2.Secret(name=resource, tls_certificate=cert)
        return resource

    def client_ca(self, name: str, gateway: Resource[Any]) -> str | None:
        """The SDS name of the client CA: Secret `name`'s ca.crt, else Secret `name-cacert`."""
        secret = self._find(name, gateway)
        suffix = CA_SUFFIX
        if secret is None or not secret.spec.ca_pem:
            secret = self._find(name + CA_SUFFIX, gateway)
            suffix = ""
            if secret is None:
                return None
        pem = secret.spec.ca_pem or secret.spec.cert_pem
        if not pem:
            return None
        resource = self._resource_name(secret, suffix)
        if resource not in self.used:
            validation = common_pb2.CertificateValidationContext()
            validation.trusted_ca.inline_bytes = pem.encode()
            self.used[resource] = secret_pb2.Secret(name=resource, validation_context=validation)
        return resource


def _ads_secret(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_config_source())


def _tls_params(settings: Any) -> common_pb2.TlsParameters:
    params = common_pb2.TlsParameters(
        tls_minimum_protocol_version=_VERSIONS[settings.min_protocol_version or "TLSV1_2"]
    )
    if settings.max_protocol_version:
        params.tls_maximum_protocol_version = _VERSIONS[settings.max_protocol_version]
    params.cipher_suites.extend(settings.cipher_suites)
    return params


def _client_sans(values: Iterable[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    """A client certificate's SAN, as any of DNS, URI or email (Istio matches any type)."""
    kinds = (
        common_pb2.SubjectAltNameMatcher.DNS,
        common_pb2.SubjectAltNameMatcher.URI,
        common_pb2.SubjectAltNameMatcher.EMAIL,
    )
    result = []
    for value in values:
        for kind in kinds:
            found = common_pb2.SubjectAltNameMatcher(san_type=kind)
            found.matcher.exact = value
            result.append(found)
    return result


def _is_spki(value: str) -> bool:
    """A base64 SHA-256 digest (of a certificate's SubjectPublicKeyInfo)."""
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _is_hash(value: str) -> bool:
    """A hex SHA-256 digest of a certificate, with or without colons."""
    digits = value.replace(":", "")
    return len(digits) == 64 and all(c in string.hexdigits for c in digits)


def _client_checks(
    validation: common_pb2.CertificateValidationContext, server: GatewayServer, findings: Findings
) -> None:
    """subjectAltNames, verifyCertificateSpki and verifyCertificateHash of client certs
    (a digest Envoy would refuse is reported and left out)."""
    settings = server.server.tls
    validation.match_typed_subject_alt_names.extend(_client_sans(settings.subject_alt_names))
    where = f"spec.servers[{server.index}].tls"
    for name, values, check, what in (
        ("verifyCertificateSpki", settings.verify_certificate_spki, _is_spki, "base64 SHA-256"),
        ("verifyCertificateHash", settings.verify_certificate_hash, _is_hash, "hex SHA-256"),
    ):
        for index, value in enumerate(values):
            if not check(value):
                findings.add(
                    server.gateway,
                    f"{where}.{name}[{index}]",
                    f"{value!r} is not a {what} digest; left out",
                    CONFLICT,
                )
            elif name == "verifyCertificateSpki":
                validation.verify_certificate_spki.append(value)
            else:
                validation.verify_certificate_hash.append(value)


def server_tls_context(
    server: GatewayServer, secrets: GatewaySecrets, findings: Findings
) -> tls_pb2.DownstreamTlsContext | None:
    """The TLS a server terminates; None (reported) when its certificate is missing."""
    settings = server.server.tls
    where = f"spec.servers[{server.index}].tls"
    gateway = server.gateway
    mode = settings.mode
    if mode == "ISTIO_MUTUAL":
        if not secrets.mesh_certificates:
            findings.add(
                gateway,
                f"{where}.mode",
                "ISTIO_MUTUAL needs the gateway's mesh certificate, and mesh security is "
                "off; the server is ignored",
                CONFLICT,
            )
            return None
        context = tls_pb2.DownstreamTlsContext(common_tls_context=tls.mesh_tls_context())
        context.require_client_certificate.value = True
        context.common_tls_context.tls_params.CopyFrom(_tls_params(settings))
        return context
    context = tls_pb2.DownstreamTlsContext()
    common = context.common_tls_context
    common.tls_params.CopyFrom(_tls_params(settings))
    common.alpn_protocols.extend(ALPN)
    credential = settings.credential_name or next(iter(settings.credential_names), None)
    if credential:
        cert = secrets.certificate(credential, gateway)
        if cert is None:
            findings.add(
                gateway,
                f"{where}.credentialName",
                f"no Secret {credential!r} with a certificate and key in namespace "
                f"{secrets.proxy_namespace} (the gateway's) or {gateway.namespace}; "
                "the server is not served until it exists",
                CONFLICT,
            )
            return None
        common.tls_certificate_sds_secret_configs.append(_ads_secret(cert))
    elif settings.server_certificate and settings.private_key:
        files = common.tls_certificates.add()
        files.certificate_chain.filename = settings.server_certificate
        files.private_key.filename = settings.private_key
    else:
        findings.add(
            gateway,
            where,
            f"tls mode {mode} needs credentialName, or serverCertificate and privateKey; "
            "the server is ignored",
            CONFLICT,
        )
        return None
    if mode in MUTUAL_MODES:
        if credential:
            ca = secrets.client_ca(credential, gateway)
            if ca is None:
                findings.add(
                    gateway,
                    f"{where}.credentialName",
                    f"tls mode {mode}: no client CA (ca.crt in Secret {credential!r} or a "
                    f"Secret {credential + CA_SUFFIX!r}); the server is not served",
                    CONFLICT,
                )
                return None
            combined = common.combined_validation_context
            _client_checks(combined.default_validation_context, server, findings)
            combined.validation_context_sds_secret_config.CopyFrom(_ads_secret(ca))
        elif settings.ca_certificates:
            common.validation_context.trusted_ca.filename = settings.ca_certificates
            _client_checks(common.validation_context, server, findings)
        else:
            findings.add(
                gateway,
                f"{where}.caCertificates",
                f"tls mode {mode} needs caCertificates or a credentialName with a CA; "
                "the server is ignored",
                CONFLICT,
            )
            return None
        context.require_client_certificate.value = mode == "MUTUAL"
    return context


def https_chains(
    servers: Sequence[GatewayServer], secrets: GatewaySecrets, findings: Findings
) -> list[HttpsChain]:
    """The filter chains of one HTTPS port; an SNI name a chain already takes is reported."""
    chains: list[HttpsChain] = []
    taken: dict[str, GatewayServer] = {}
    catch_all: GatewayServer | None = None
    for server in servers:
        hosts = [split_namespaced_host(h, server.gateway.namespace)[1] for h in server.server.hosts]
        where = f"spec.servers[{server.index}].hosts"
        if "*" in hosts:
            if catch_all is not None:
                findings.add(
                    server.gateway,
                    where,
                    f"host * on port {server.server.port.number} is already served by "
                    f"{catch_all.ref} spec.servers[{catch_all.index}]; ignored",
                    CONFLICT,
                )
                continue
            server_names: list[str] = []
        else:
            server_names = []
            for host in dict.fromkeys(hosts):
                if host in taken:
                    other = taken[host]
                    findings.add(
                        server.gateway,
                        where,
                        f"host {host} on port {server.server.port.number} is already served "
                        f"by {other.ref} spec.servers[{other.index}]; ignored here",
                        CONFLICT,
                    )
                    continue
                server_names.append(host)
            if not server_names:
                continue
        context = server_tls_context(server, secrets, findings)
        if context is None:
            continue
        if not server_names:
            catch_all = server
        for host in server_names:
            taken[host] = server
        chains.append(
            HttpsChain(server, tuple(server_names), context, https_route_config_name(server))
        )
    return chains


def _sni_listener(address: str, listen_port: int) -> listener_pb2.Listener:
    """`0.0.0.0_PORT` with the TLS inspector: its chains are chosen by SNI."""
    listener = listener_pb2.Listener(
        name=names.gateway_listener(listen_port),
        address=socket_address(address, listen_port),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.listener_filters.add(name=tls.TLS_INSPECTOR).typed_config.CopyFrom(
        pack_any(tls_inspector_pb2.TlsInspector())
    )
    return listener


def https_listener(
    address: str,
    listen_port: int,
    chains: Sequence[HttpsChain],
    mesh_config: Any,
    http_filters: Sequence[hcm_pb2.HttpFilter] = (),
    telemetry: HcmTelemetry | None = None,
) -> listener_pb2.Listener:
    """`0.0.0.0_8443`: the TLS inspector, then a chain per server chosen by SNI."""
    listener = _sni_listener(address, listen_port)
    name = listener.name
    for chain in chains:
        hcm = connection_manager(
            f"outbound_{name}",
            rds=chain.route_config,
            use_remote_address=True,
            strip_host_port=True,
            mesh_config=mesh_config,
            http_filters=[*http_filters, *route_features.http_filters()],
            telemetry=telemetry,
        )
        filter_chain = listener.filter_chains.add(name=chain.route_config)
        filter_chain.filter_chain_match.server_names.extend(chain.server_names)
        filter_chain.filters.add(name=HCM_FILTER).typed_config.CopyFrom(pack_any(hcm))
        filter_chain.transport_socket.CopyFrom(tls.transport_socket(chain.context))
    return listener


def redacted_secret(secret: secret_pb2.Secret) -> secret_pb2.Secret:
    """A copy without the private key, for any output meant for people."""
    copy = secret_pb2.Secret()
    copy.CopyFrom(secret)
    if copy.HasField("tls_certificate"):
        copy.tls_certificate.private_key.inline_bytes = REDACTED
    return copy


def secrets_by_name(secrets: Mapping[str, secret_pb2.Secret]) -> tuple[secret_pb2.Secret, ...]:
    return tuple(secrets[name] for name in sorted(secrets))


def terminated_l4_listener(
    address: str,
    listen_port: int,
    servers: Sequence[tuple[HttpsChain, Sequence[L4Chain]]],
    mesh_config: Any,
    extra_filters: Sequence[Any] = (),
    telemetry: TcpTelemetry | None = None,
) -> listener_pb2.Listener:
    """`0.0.0.0_9443`: `TLS` servers terminating TLS, chosen by SNI as HTTPS servers are,
    each then routed by its `tcp:` rules (no route: the connection is closed). No ALPN is
    offered: what is inside the TLS is opaque bytes."""
    listener = _sni_listener(address, listen_port)
    for server, chains in servers:
        context = tls_pb2.DownstreamTlsContext()
        context.CopyFrom(server.context)
        del context.common_tls_context.alpn_protocols[:]
        for chain in chains or [blackhole_chain(f"{server.route_config}|no-route")]:
            built = filter_chain(
                replace(chain, server_names=server.server_names),
                mesh_config,
                extra_filters,
                telemetry,
            )
            built.transport_socket.CopyFrom(tls.transport_socket(context))
            listener.filter_chains.append(built)
    return listener
