"""Which security policies (AuthorizationPolicy, RequestAuthentication) apply to a proxy,
and clusters for the external services they call (ext_authz servers, JWKS URIs).

Istio semantics kept here: a policy applies to workloads in its own namespace whose labels
match its selector (no selector: all of them); a policy in the mesh's root namespace
applies mesh-wide (its selector, if any, still filters by labels). `targetRef(s)` of kind
Service attach the policy to the instances behind that Service; other kinds are refused
with a finding.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from ratline.api.envelope import Resource
from ratline.api.hosts import fqdn
from ratline.model.snapshot import Endpoint, MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from ratline.translate import names
from ratline.translate.common import UNRESOLVED, Findings, duration, labels_match, pack_any
from ratline.translate.endpoints import load_assignment

SERVICE_KINDS = frozenset({"Service", "ServiceEntry"})
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""An HTTP header name (RFC 9110 token), as Envoy's config validation requires."""


def _targets(policy: Resource[Any]) -> list[Any]:
    spec = policy.spec
    refs = list(spec.target_refs or ())
    if spec.target_ref is not None:
        refs.append(spec.target_ref)
    return refs


def _behind_service(snapshot: MeshSnapshot, name: str, namespace: str, inst: Any) -> bool:
    for service in snapshot.services.values():
        if service.namespace != namespace or service.name != name:
            continue
        for endpoints in service.endpoints.values():
            if any(e.instance == inst.name and e.namespace == inst.namespace for e in endpoints):
                return True
    return False


def policy_applies(
    snapshot: MeshSnapshot,
    policy: Resource[Any],
    instance: WorkloadInstance,
    findings: Findings,
) -> bool:
    """Whether `policy` (AuthorizationPolicy or RequestAuthentication) governs `instance`."""
    root = getattr(snapshot.mesh_config, "root_namespace", "istio-system") or "istio-system"
    if policy.namespace not in (instance.namespace, root):
        return False
    refs = _targets(policy)
    if not refs:
        selector = policy.spec.selector
        return labels_match(selector.match_labels if selector else None, instance.labels)
    for index, ref in enumerate(refs):
        field = "spec.targetRef" if policy.spec.target_ref is ref else f"spec.targetRefs[{index}]"
        if ref.kind not in SERVICE_KINDS or ref.group not in ("", "core", "networking.istio.io"):
            findings.not_supported(policy, field, f"targetRef kind {ref.group}/{ref.kind}")
            continue
        namespace = ref.namespace or policy.namespace
        if _behind_service(snapshot, ref.name, namespace, instance):
            return True
    return False


def applicable(
    snapshot: MeshSnapshot, kind: str, instance: WorkloadInstance, findings: Findings
) -> list[Resource[Any]]:
    """The policies of `kind` governing `instance`, in a stable order (namespace, name)."""
    found = [
        p for p in snapshot.extra.get(kind, ()) if policy_applies(snapshot, p, instance, findings)
    ]
    return sorted(found, key=lambda p: (p.namespace, p.name))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def mesh_service_cluster(
    snapshot: MeshSnapshot, host: str, port: int, namespace: str
) -> str | None:
    """`outbound|PORT||HOST` when `host` (short names resolve in `namespace`) is a mesh
    service with that port, else None."""
    for candidate in dict.fromkeys((host, fqdn(host, namespace))):
        service = snapshot.services.get(candidate)
        if service is not None and service.port(port) is not None:
            return names.outbound_cluster(port, "", service.hostname)
    return None


def external_cluster(
    name: str,
    host: str,
    port: int,
    *,
    http2: bool = False,
    tls: bool = False,
    connect_timeout_s: float = 10.0,
) -> cluster_pb2.Cluster:
    """A cluster to one `host:port` outside the registry (STATIC for an IP, else DNS)."""
    cluster = cluster_pb2.Cluster(name=name)
    cluster.connect_timeout.CopyFrom(duration(connect_timeout_s))
    address = host.strip("[]")
    if _is_ip(address):
        cluster.type = cluster_pb2.Cluster.STATIC
    else:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    cluster.load_assignment.CopyFrom(load_assignment(name, [Endpoint(address=address, port=port)]))
    if http2:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack_any(options))
    if tls:
        context = tls_pb2.UpstreamTlsContext(sni=address)
        context.common_tls_context.validation_context.trusted_ca.filename = SYSTEM_CA_BUNDLE
        socket = cluster.transport_socket
        socket.name = "envoy.transport_sockets.tls"
        socket.typed_config.CopyFrom(pack_any(context))
    return cluster


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """(`host`, port) from `host`, `host:port` or `[v6]:port`."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port)
    return value, default_port


def unresolved(findings: Findings, resource: Resource[Any], field: str, message: str) -> None:
    findings.add(resource, field, message, code=UNRESOLVED)
