"""Mutual TLS in the data plane: PeerAuthentication on inbound listeners, auto mTLS and
DestinationRule `tls` on outbound clusters. Certificates come from the proxy's agent over
SDS (`default`: the workload's cert and key, `ROOTCA`: the mesh trust bundle).

Istio semantics kept here: PeerAuthentication resolves workload (selector, own
namespace) over namespace (no selector) over mesh (root namespace, no selector); UNSET
inherits from the level above, and portLevelMtls overrides the workload policy for one
container port; with nothing set the mode is PERMISSIVE. Auto mTLS: a client sends mTLS
to endpoints that have a sidecar whose port does not DISABLE mTLS, plain text otherwise;
a DestinationRule's `tls` replaces that choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2

from ratline.api.envelope import Resource
from ratline.model.snapshot import Endpoint, MeshSnapshot, Service
from ratline.registry.instances import WorkloadInstance
from ratline.translate import client_credentials
from ratline.translate.common import UNRESOLVED, Findings, labels_match, pack_any

SDS_CLUSTER = "sds-grpc"
"""The bootstrap cluster reaching the agent's SDS server (as Istio names it)."""
DEFAULT_SECRET = "default"
ROOT_SECRET = "ROOTCA"
TLS_SOCKET = "envoy.transport_sockets.tls"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"
TLS_MODE_KEY = "tlsMode"
TLS_MODE_ISTIO = "istio"
PEER_AUTHENTICATION = "PeerAuthentication"

STRICT, PERMISSIVE, DISABLE, UNSET = "STRICT", "PERMISSIVE", "DISABLE", "UNSET"


# ---- PeerAuthentication ---------------------------------------------------------------


def _mode_of(mtls: Any) -> str:
    return str(getattr(mtls, "mode", None) or UNSET) if mtls is not None else UNSET


def peer_authentication_levels(
    snapshot: MeshSnapshot, namespace: str, labels: Any
) -> tuple[Resource[Any] | None, Resource[Any] | None, Resource[Any] | None]:
    """(mesh, namespace, workload) PeerAuthentications for a workload; the first of each
    level by namespace/name when several exist."""
    root = str(getattr(snapshot.mesh_config, "root_namespace", "istio-system"))
    mesh = ns_level = workload = None
    for pa in snapshot.extra.get(PEER_AUTHENTICATION, ()):
        selector = pa.spec.selector
        if selector is None:
            if pa.namespace == root and mesh is None:
                mesh = pa
            if pa.namespace == namespace and ns_level is None and pa.namespace != root:
                ns_level = pa
        elif (
            pa.namespace == namespace
            and workload is None
            and labels_match(selector.match_labels, labels)
        ):
            workload = pa
    return mesh, ns_level, workload


def mtls_mode(snapshot: MeshSnapshot, namespace: str, labels: Any, container_port: int) -> str:
    """The PeerAuthentication mode in force for one workload port: STRICT, PERMISSIVE or
    DISABLE."""
    mesh, ns_level, workload = peer_authentication_levels(snapshot, namespace, labels)
    mode = PERMISSIVE
    for pa in (mesh, ns_level, workload):
        if pa is not None and _mode_of(pa.spec.mtls) != UNSET:
            mode = _mode_of(pa.spec.mtls)
    if workload is not None:
        port_mode = _mode_of(workload.spec.port_level_mtls.get(container_port))
        if port_mode != UNSET:
            mode = port_mode
    return mode


# ---- SDS and TLS contexts ---------------------------------------------------------------


def sds_config(name: str) -> secret_pb2.SdsSecretConfig:
    """A secret fetched from the agent's SDS server (the bootstrap's `sds-grpc` cluster)."""
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    api = source.api_config_source
    api.api_type = config_source_pb2.ApiConfigSource.GRPC
    api.transport_api_version = config_source_pb2.V3
    api.grpc_services.append(
        grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
        )
    )
    return secret_pb2.SdsSecretConfig(name=name, sds_config=source)


def san_matchers(names: Iterable[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    """Exact matchers: `spiffe://…` as URI SANs, anything else as DNS names."""
    result = []
    for name in sorted(set(names)):
        kind = (
            common_pb2.SubjectAltNameMatcher.URI
            if "://" in name
            else common_pb2.SubjectAltNameMatcher.DNS
        )
        result.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=kind, matcher=string_pb2.StringMatcher(exact=name)
            )
        )
    return result


def mesh_tls_context(sans: Iterable[str] = ()) -> tls_pb2.CommonTlsContext:
    """The workload cert over SDS, peers validated against the mesh root (and `sans`)."""
    context = tls_pb2.CommonTlsContext()
    context.tls_certificate_sds_secret_configs.append(sds_config(DEFAULT_SECRET))
    combined = context.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.extend(san_matchers(sans))
    combined.validation_context_sds_secret_config.CopyFrom(sds_config(ROOT_SECRET))
    return context


def downstream_mtls() -> tls_pb2.DownstreamTlsContext:
    """Inbound mTLS: present the workload cert, require a client cert of the mesh."""
    context = tls_pb2.DownstreamTlsContext(common_tls_context=mesh_tls_context())
    context.require_client_certificate.value = True
    return context


def upstream_istio_mutual(sans: Iterable[str], sni: str) -> tls_pb2.UpstreamTlsContext:
    """Outbound mTLS with the workload cert, checking the server's SPIFFE IDs."""
    return tls_pb2.UpstreamTlsContext(common_tls_context=mesh_tls_context(sans), sni=sni)


def transport_socket(context: Any) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack_any(context))


# ---- inbound -----------------------------------------------------------------------------


def secure_inbound(listener: listener_pb2.Listener, mode: str) -> listener_pb2.Listener:
    """Apply a PeerAuthentication mode to an inbound listener built with one plain chain.

    STRICT: that chain only accepts mTLS. PERMISSIVE: a TLS inspector picks an mTLS copy
    of the chain for TLS clients and the plain chain for the others. DISABLE: unchanged.
    """
    if mode == DISABLE or len(listener.filter_chains) != 1:
        return listener
    plain = listener.filter_chains[0]
    secured = listener_components_pb2.FilterChain()
    secured.CopyFrom(plain)
    secured.name = f"{listener.name}|mtls"
    secured.transport_socket.CopyFrom(transport_socket(downstream_mtls()))
    if mode == STRICT:
        del listener.filter_chains[:]
        listener.filter_chains.append(secured)
        return listener
    plain.name = f"{listener.name}|plaintext"
    plain.filter_chain_match.transport_protocol = "raw_buffer"
    secured.filter_chain_match.transport_protocol = "tls"
    listener.filter_chains.insert(0, secured)
    listener.listener_filters.add(
        name=TLS_INSPECTOR, typed_config=pack_any(tls_inspector_pb2.TlsInspector())
    )
    return listener


def inbound_mode(snapshot: MeshSnapshot, instance: WorkloadInstance, container_port: int) -> str:
    return mtls_mode(snapshot, instance.namespace, instance.labels, container_port)


# ---- outbound ---------------------------------------------------------------------------


def _trust_domain(snapshot: MeshSnapshot) -> str:
    return str(getattr(snapshot.mesh_config, "trust_domain", "cluster.local"))


def service_identities(snapshot: MeshSnapshot, service: Service) -> list[str]:
    """The SPIFFE IDs of the sidecars behind a service (what its clients accept), or a
    ServiceEntry's `subjectAltNames` when it has them."""
    if service.subject_alt_names:
        return sorted(service.subject_alt_names)
    td = _trust_domain(snapshot)
    ids = {
        f"spiffe://{td}/ns/{e.namespace}/sa/{e.service_account}"
        for endpoints in service.endpoints.values()
        for e in endpoints
        if e.has_sidecar and e.namespace and e.service_account
    }
    return sorted(ids)


def endpoint_tls_predicate(snapshot: MeshSnapshot) -> Callable[[Endpoint], bool]:
    """Whether an endpoint takes mTLS: it has a sidecar whose port does not DISABLE it."""
    by_name = {(i.name, i.namespace): i for i in snapshot.instances.values()}
    cache: dict[tuple[str, str, int], bool] = {}

    def takes_mtls(endpoint: Endpoint) -> bool:
        if not endpoint.has_sidecar:
            return False
        key = (endpoint.instance, endpoint.namespace, endpoint.port)
        if key not in cache:
            instance = by_name.get((endpoint.instance, endpoint.namespace))
            if instance is None:
                cache[key] = True
            else:
                port = next((p for p in instance.ports if p.inbound_port == endpoint.port), None)
                number = port.container_port if port is not None else 0
                cache[key] = inbound_mode(snapshot, instance, number) != DISABLE
        return cache[key]

    return takes_mtls


def mark_endpoint(lb_endpoint: Any) -> None:
    """Label an LbEndpoint `tlsMode: istio` for the cluster's transport socket match."""
    fields = lb_endpoint.metadata.filter_metadata[TRANSPORT_SOCKET_MATCH]
    fields.update({TLS_MODE_KEY: TLS_MODE_ISTIO})


def auto_mtls(cluster: cluster_pb2.Cluster, sans: Iterable[str], sni: str) -> None:
    """mTLS to endpoints labelled `tlsMode: istio`; the cluster's plain socket otherwise."""
    match = cluster.transport_socket_matches.add(name="tlsMode-istio")
    match.match.CopyFrom(struct_pb2.Struct(fields={}))
    match.match.update({TLS_MODE_KEY: TLS_MODE_ISTIO})
    match.transport_socket.CopyFrom(transport_socket(upstream_istio_mutual(sans, sni)))


def _file_tls(tls: Any) -> tls_pb2.UpstreamTlsContext:
    """SIMPLE / MUTUAL with certificate files named in the DestinationRule."""
    context = tls_pb2.UpstreamTlsContext(sni=tls.sni or "")
    common = context.common_tls_context
    if tls.mode == "MUTUAL":
        cert = common.tls_certificates.add()
        cert.certificate_chain.filename = tls.client_certificate or ""
        cert.private_key.filename = tls.private_key or ""
    if not tls.insecure_skip_verify:
        if tls.ca_certificates:
            common.validation_context.trusted_ca.filename = tls.ca_certificates
        if tls.subject_alt_names:
            common.validation_context.match_typed_subject_alt_names.extend(
                san_matchers(tls.subject_alt_names)
            )
    return context


def apply_client_tls(
    cluster: cluster_pb2.Cluster,
    snapshot: MeshSnapshot,
    service: Service,
    tls: Any,
    rule: Resource[Any] | None,
    where: str,
    findings: Findings,
) -> None:
    """Set how this outbound cluster's connections are secured (DR `tls` or auto mTLS)."""
    if tls is None:
        if getattr(snapshot.mesh_config, "enable_auto_mtls", True) and not service.mesh_external:
            auto_mtls(cluster, service_identities(snapshot, service), cluster.name)
        return
    path = f"{where}.tls"
    if tls.mode == "DISABLE":
        return
    if tls.mode == "ISTIO_MUTUAL":
        sans = list(tls.subject_alt_names) or service_identities(snapshot, service)
        context = upstream_istio_mutual(sans, tls.sni or cluster.name)
        cluster.transport_socket.CopyFrom(transport_socket(context))
        return
    if tls.credential_name:
        known = {secret.name for secret in snapshot.extra.get("Secret", ())}
        if tls.credential_name not in known and rule is not None:
            message = (
                f"no Secret {tls.credential_name} (apply one beside the proxies using this "
                "rule); until then the cluster has no certificate and its requests fail"
            )
            findings.add(rule, f"{path}.credentialName", message, UNRESOLVED)
        sans = san_matchers(tls.subject_alt_names)
        context = client_credentials.credential_context(tls, tls.sni or "", sans)
        cluster.transport_socket.CopyFrom(transport_socket(context))
        return
    if tls.ca_crl and rule is not None:
        findings.not_supported(rule, f"{path}.caCrl", "caCrl")
    cluster.transport_socket.CopyFrom(transport_socket(_file_tls(tls)))
