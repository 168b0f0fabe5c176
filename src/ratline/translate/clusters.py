"""CDS: outbound clusters per service port and DestinationRule subset, the special
BlackHole and Passthrough clusters, and the inbound clusters of one sidecar.

Outbound clusters are the same for every proxy of a snapshot. Their endpoints come over
EDS (registry services) or inline (DNS services). Traffic policy (load balancer, connect
timeout, circuit breakers, outlier detection) comes from the DestinationRule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import cluster_pb2 as dfp_cluster_pb2
from envoy.extensions.common.dynamic_forward_proxy.v3 import dns_cache_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import wrappers_pb2

from ratline.api.envelope import Resource
from ratline.api.protocols import is_http
from ratline.model.snapshot import Endpoint, MeshSnapshot, Resolution, Service, ServicePort
from ratline.registry.instances import WorkloadInstance
from ratline.translate import cluster_policy, names, peer_exchange, tls
from ratline.translate.common import Findings, ads_config_source, duration, pack_any
from ratline.translate.endpoints import load_assignment, subset_endpoints
from ratline.translate.policy import (
    EffectivePolicy,
    destination_rule_for,
    effective_policy,
    subsets_of,
)

DEFAULT_CONNECT_TIMEOUT_S = 10.0
"""Istio's default connect timeout (MeshConfig connectTimeout)."""

MAX_CIRCUIT = 4_294_967_295
"""Istio lifts Envoy's default 1024 circuit-breaker limits to the uint32 maximum."""

HTTP2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})
"""Service port protocols whose upstream connections speak HTTP/2."""

HTTP_PROTOCOL_OPTIONS = cluster_policy.HTTP_PROTOCOL_OPTIONS
HTTP_PORTS = cluster_policy.HTTP_PROTOCOLS

DEFAULT_LB = cluster_policy.DEFAULT_LB


def _max_thresholds() -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    big = wrappers_pb2.UInt32Value(value=MAX_CIRCUIT)
    return circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=big, max_pending_requests=big, max_requests=big, max_retries=big
    )


def _protocol_options(*, http2: bool = False, downstream: bool = False) -> Any:
    """Typed HttpProtocolOptions: explicit HTTP/2, or the protocol the client used."""
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if downstream:
        options.use_downstream_protocol_config.SetInParent()
    elif http2:
        options.explicit_http_config.http2_protocol_options.SetInParent()
    else:
        options.explicit_http_config.http_protocol_options.SetInParent()
    return pack_any(options)


def _base_cluster(
    name: str, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name, connect_timeout=duration(connect_timeout_s), lb_policy=DEFAULT_LB
    )
    cluster.circuit_breakers.thresholds.append(_max_thresholds())
    return cluster


def apply_policy(
    cluster: cluster_pb2.Cluster,
    policy: EffectivePolicy,
    rule: Resource[Any] | None,
    findings: Findings,
    tls_handled: bool = False,
    port_protocol: str = "HTTP",
    mesh_config: Any = None,
) -> None:
    """Apply the traffic policy in force for this cluster's port and subset."""
    cluster_policy.apply_policy(cluster, policy, rule, findings, port_protocol, mesh_config)
    if (
        policy.tls is not None
        and policy.tls.mode != "DISABLE"
        and rule is not None
        and (not tls_handled)
    ):
        findings.not_supported(rule, f"{policy.field_path}.tls", f"tls mode {policy.tls.mode}")


def dns_cache_config() -> dns_cache_pb2.DnsCacheConfig:
    """The DNS cache of the dynamic forward proxy (identical in cluster and filter)."""
    return dns_cache_pb2.DnsCacheConfig(
        name=names.DNS_CACHE, dns_lookup_family=cluster_pb2.Cluster.V4_ONLY
    )


def forward_proxy_cluster(name: str) -> cluster_pb2.Cluster:
    """A dynamic forward proxy cluster: connects to the request's Host, resolved by DNS.

    ORIGINAL_DST cannot work behind an HTTP proxy listener (the connection's destination
    is the proxy itself), so passthrough resolves the Host instead.
    """
    cluster = _base_cluster(name)
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    cluster.cluster_type.name = "envoy.clusters.dynamic_forward_proxy"
    cluster.cluster_type.typed_config.CopyFrom(
        pack_any(dfp_cluster_pb2.ClusterConfig(dns_cache_config=dns_cache_config()))
    )
    return cluster


def passthrough_cluster() -> cluster_pb2.Cluster:
    """`PassthroughCluster`: where ALLOW_ANY sends hosts outside the registry."""
    return forward_proxy_cluster(names.PASSTHROUGH_CLUSTER)


def blackhole_cluster() -> cluster_pb2.Cluster:
    """`BlackHoleCluster`: no endpoints, so everything sent there fails."""
    cluster = cluster_pb2.Cluster(
        name=names.BLACKHOLE_CLUSTER,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT_S),
    )
    cluster.load_assignment.cluster_name = names.BLACKHOLE_CLUSTER
    return cluster


def _dns_endpoints(service: Service, port: ServicePort) -> list[Endpoint]:
    """DNS endpoints of a port: the declared ones, or the service host itself."""
    declared = list(service.endpoints.get(port.port, ()))
    if declared:
        return declared
    return [Endpoint(address=service.hostname, port=port.port)]


def mesh_connect_timeout(snapshot: MeshSnapshot) -> float:
    """MeshConfig connectTimeout (Istio's default 10s)."""
    value = getattr(snapshot.mesh_config, "connect_timeout", None)
    return float(value) if value else DEFAULT_CONNECT_TIMEOUT_S


def _service_port_cluster(
    service: Service, port: ServicePort, subset: Any | None, connect_timeout_s: float
) -> cluster_pb2.Cluster:
    """One outbound cluster of a service port (and subset)."""
    subset_name = subset.name if subset is not None else ""
    name = names.outbound_cluster(port.port, subset_name, service.hostname)
    if service.resolution is Resolution.NONE:
        return forward_proxy_cluster(name)
    cluster = _base_cluster(name, connect_timeout_s)
    if service.resolution is Resolution.EDS:
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    else:
        endpoints = _dns_endpoints(service, port)
        if subset is not None:
            endpoints = subset_endpoints(endpoints, subset.labels)
        if service.resolution is Resolution.DNS_ROUND_ROBIN:
            cluster.type = cluster_pb2.Cluster.LOGICAL_DNS
            endpoints = endpoints[:1]
        else:
            cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
        cluster.load_assignment.CopyFrom(load_assignment(name, endpoints))
    if port.protocol.upper() in HTTP2_PROTOCOLS:
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(
            _protocol_options(http2=True)
        )
    return cluster


def service_clusters(
    snapshot: MeshSnapshot, service: Service, findings: Findings, mtls: bool = False
) -> list[cluster_pb2.Cluster]:
    """Per port: the cluster of the whole service, then one per DestinationRule subset."""
    rule = destination_rule_for(snapshot, service)
    connect_timeout_s = mesh_connect_timeout(snapshot)
    result = []
    for port in service.ports:
        for subset in (None, *subsets_of(rule)):
            cluster = _service_port_cluster(service, port, subset, connect_timeout_s)
            if not cluster.HasField("cluster_type"):  # forward proxy clusters take no policy
                policy = effective_policy(rule, port.port, subset.name if subset else "")
                apply_policy(
                    cluster,
                    policy,
                    rule,
                    findings,
                    tls_handled=mtls,
                    port_protocol=port.protocol,
                    mesh_config=snapshot.mesh_config,
                )
                if mtls:
                    tls.apply_client_tls(
                        cluster, snapshot, service, policy.tls, rule, policy.field_path, findings
                    )
                    _auto_sni(cluster, policy.tls, port)
                    if not is_http(port.protocol):
                        peer_exchange.with_header(cluster)
            result.append(cluster)
    return result


def _auto_sni(cluster: cluster_pb2.Cluster, tls_settings: Any, port: ServicePort) -> None:
    """TLS origination (SIMPLE, MUTUAL) of an HTTP port without `sni`: the SNI is the
    request's Host, and with a CA and no `subjectAltNames` the server's certificate is
    checked against it (Istio's ENABLE_AUTO_SNI and VERIFY_CERTIFICATE_AT_CLIENT)."""
    if tls_settings is None or tls_settings.mode not in ("SIMPLE", "MUTUAL") or tls_settings.sni:
        return
    if not cluster.HasField("transport_socket") or port.protocol.upper() not in HTTP_PORTS:
        return
    options = cluster_policy.protocol_options(cluster)
    options.upstream_http_protocol_options.auto_sni = True
    verifying = tls_settings.ca_certificates and not tls_settings.insecure_skip_verify
    if verifying and not tls_settings.subject_alt_names:
        options.upstream_http_protocol_options.auto_san_validation = True
    cluster_policy.store_protocol_options(cluster, options)


def outbound_clusters(
    snapshot: MeshSnapshot,
    findings: Findings,
    mtls: bool = False,
    visible: Callable[[Service], bool] | None = None,
) -> list[cluster_pb2.Cluster]:
    """Every outbound cluster plus BlackHole and Passthrough (shared by proxies alike).

    With `mtls`, clusters secure their connections (auto mTLS or DestinationRule tls);
    with `visible`, only the services it accepts get clusters (a Sidecar's egress scope)."""
    result = [blackhole_cluster(), passthrough_cluster()]
    for hostname in sorted(snapshot.services):
        service = snapshot.services[hostname]
        if visible is None or visible(service):
            result.extend(service_clusters(snapshot, service, findings, mtls))
    return result


def inbound_clusters(instance: WorkloadInstance) -> list[cluster_pb2.Cluster]:
    """`inbound|PORT||` per container port: STATIC to the app on 127.0.0.1:app_port.

    The upstream speaks whatever protocol the client used (HTTP/1.1 or HTTP/2).
    """
    result = []
    for port in sorted(instance.ports, key=lambda p: p.container_port):
        if port.inbound_port is None:
            continue
        name = names.inbound_cluster(port.container_port)
        cluster = _base_cluster(name)
        cluster.type = cluster_pb2.Cluster.STATIC
        cluster.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN
        app = Endpoint(address="127.0.0.1", port=port.app_port)
        cluster.load_assignment.CopyFrom(load_assignment(name, [app]))
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(
            _protocol_options(downstream=True)
        )
        result.append(cluster)
    return result
