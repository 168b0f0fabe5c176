"""A DestinationRule's traffic policy on an outbound cluster, as Istio's cluster builder
applies it: load balancer (simple, consistent hash, warmup, locality weights), connection
pool (circuit breakers, connection options, HTTP protocol options), outlier detection and
retry budget.

What the policy needs on routes (hash policies) is in `translate.route_features`, and what
it needs in load assignments (locality priorities) in `translate.locality`.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2, outlier_detection_pb2
from envoy.config.common.matcher.v3 import matcher_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from ratline.api.envelope import Resource
from ratline.api.schemas.networking import (
    ConnectionPoolSettings,
    LoadBalancerSettings,
    OutlierDetection,
    RetryBudget,
    WarmupConfiguration,
)
from ratline.translate import locality
from ratline.translate.common import Findings, duration, pack_any
from ratline.translate.policy import EffectivePolicy

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

DEFAULT_LB = cluster_pb2.Cluster.LEAST_REQUEST
"""Istio's default load balancer (UNSPECIFIED) since 1.14."""
DEFAULT_RING_SIZE = 1024
"""Envoy's default minimum ring size, which Istio sets explicitly."""
DEFAULT_RETRY_BUDGET_PERCENT = 20.0
DEFAULT_MIN_RETRY_CONCURRENCY = 3
WARMUP_MIN_WEIGHT_PERCENT = 10.0
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
"""Port protocols whose clusters take HTTP protocol options."""


def protocol_options(cluster: cluster_pb2.Cluster) -> http_protocol_options_pb2.HttpProtocolOptions:
    """The cluster's HttpProtocolOptions (a fresh message when it has none yet)."""
    options = http_protocol_options_pb2.HttpProtocolOptions()
    packed = cluster.typed_extension_protocol_options.get(HTTP_PROTOCOL_OPTIONS)
    if packed is not None:
        packed.Unpack(options)
    return options


def store_protocol_options(
    cluster: cluster_pb2.Cluster, options: http_protocol_options_pb2.HttpProtocolOptions
) -> None:
    if not options.HasField("upstream_protocol_options"):
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack_any(options))


# ---- load balancer -----------------------------------------------------------------------


def _slow_start(lb: LoadBalancerSettings) -> cluster_pb2.Cluster.SlowStartConfig | None:
    warmup: WarmupConfiguration | None = lb.warmup
    if warmup is not None:
        config = cluster_pb2.Cluster.SlowStartConfig(slow_start_window=duration(warmup.duration))
        config.aggression.default_value = 1.0 if warmup.aggression is None else warmup.aggression
        config.aggression.runtime_key = "("  # fixed: Istio exposes no runtime key
        minimum = warmup.minimum_percent
        config.min_weight_percent.value = WARMUP_MIN_WEIGHT_PERCENT if minimum is None else minimum
        return config
    if lb.warmup_duration_secs is not None:
        return cluster_pb2.Cluster.SlowStartConfig(
            slow_start_window=duration(lb.warmup_duration_secs)
        )
    return None


def apply_load_balancer(
    cluster: cluster_pb2.Cluster,
    lb: LoadBalancerSettings | None,
    rule: Resource[Any] | None,
    path: str,
    findings: Findings,
) -> None:
    """The LB policy: simple algorithms (with warmup), or ring hash / Maglev."""
    cluster.lb_policy = DEFAULT_LB
    if lb is None:
        return
    simple = lb.simple or "UNSPECIFIED"
    slow_start = _slow_start(lb)
    if simple == "RANDOM":
        cluster.lb_policy = cluster_pb2.Cluster.RANDOM
    elif simple == "ROUND_ROBIN":
        cluster.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN
        if slow_start is not None:
            cluster.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
    elif simple == "PASSTHROUGH":
        if rule is not None:
            findings.add(
                rule,
                f"{path}.simple",
                "PASSTHROUGH is not supported in local mode (an app names a host, not an "
                "address, through HTTP_PROXY); LEAST_REQUEST is used",
            )
    elif slow_start is not None:
        cluster.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
    consistent = lb.consistent_hash
    if consistent is None:
        return
    if consistent.maglev is not None:
        cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
        if consistent.maglev.table_size:
            cluster.maglev_lb_config.table_size.value = consistent.maglev.table_size
    else:
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        size = consistent.ring_hash.minimum_ring_size if consistent.ring_hash else None
        size = size or consistent.minimum_ring_size or DEFAULT_RING_SIZE
        cluster.ring_hash_lb_config.minimum_ring_size.value = size


# ---- connection pool ---------------------------------------------------------------------


def apply_connection_pool(
    cluster: cluster_pb2.Cluster,
    pool: ConnectionPoolSettings | None,
    retry_budget: RetryBudget | None,
    port_protocol: str,
    mesh_config: Any,
) -> None:
    """Circuit breakers, connect timeout, TCP keepalive and the HTTP connection options."""
    limits = cluster.circuit_breakers.thresholds[0]
    if retry_budget is not None:
        percent = retry_budget.percent
        limits.retry_budget.budget_percent.value = (
            DEFAULT_RETRY_BUDGET_PERCENT if percent is None else percent
        )
        limits.retry_budget.min_retry_concurrency.value = (
            retry_budget.min_retry_concurrency or DEFAULT_MIN_RETRY_CONCURRENCY
        )
    tcp = pool.tcp if pool is not None else None
    http = pool.http if pool is not None else None
    keepalive = (tcp.tcp_keepalive if tcp is not None else None) or getattr(
        mesh_config, "tcp_keepalive", None
    )
    if keepalive is not None:
        out = cluster.upstream_connection_options.tcp_keepalive
        if keepalive.probes is not None:
            out.keepalive_probes.value = keepalive.probes
        if keepalive.time is not None:
            out.keepalive_time.value = int(keepalive.time)
        if keepalive.interval is not None:
            out.keepalive_interval.value = int(keepalive.interval)
    if tcp is not None:
        if tcp.connect_timeout is not None:
            cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
        if tcp.max_connections is not None:
            limits.max_connections.value = tcp.max_connections
    if http is not None:
        if http.http1_max_pending_requests is not None:
            limits.max_pending_requests.value = http.http1_max_pending_requests
        if http.http2_max_requests is not None:
            limits.max_requests.value = http.http2_max_requests
        if http.max_retries:
            limits.max_retries.value = http.max_retries
    if port_protocol.upper() in HTTP_PROTOCOLS:
        _apply_http_options(cluster, pool, port_protocol, mesh_config)


def _upgrades_to_h2(pool: ConnectionPoolSettings | None, protocol: str, mesh_config: Any) -> bool:
    """Istio's h2UpgradePolicy: the DestinationRule's, else MeshConfig's, for HTTP ports."""
    http = pool.http if pool is not None else None
    if http is not None:
        if http.use_client_protocol:
            return False
        if http.h2_upgrade_policy in ("UPGRADE", "DO_NOT_UPGRADE"):
            return http.h2_upgrade_policy == "UPGRADE"
    mesh_policy = getattr(mesh_config, "h2_upgrade_policy", "DO_NOT_UPGRADE")
    return protocol.upper() == "HTTP" and mesh_policy == "UPGRADE"


def _apply_http_options(
    cluster: cluster_pb2.Cluster,
    pool: ConnectionPoolSettings | None,
    protocol: str,
    mesh_config: Any,
) -> None:
    options = protocol_options(cluster)
    changed = False
    http = pool.http if pool is not None else None
    tcp = pool.tcp if pool is not None else None
    if _upgrades_to_h2(pool, protocol, mesh_config):
        options.explicit_http_config.http2_protocol_options.SetInParent()
        changed = True
    if http is not None and http.use_client_protocol:
        options.use_downstream_protocol_config.SetInParent()
        changed = True
    common = options.common_http_protocol_options
    idle = http.idle_timeout if http is not None and http.idle_timeout is not None else None
    if idle is None and tcp is not None:
        idle = tcp.idle_timeout
    if idle is not None:
        common.idle_timeout.CopyFrom(duration(idle))
        changed = True
    if http is not None and http.max_requests_per_connection:
        common.max_requests_per_connection.value = http.max_requests_per_connection
        changed = True
    if tcp is not None and tcp.max_connection_duration is not None:
        common.max_connection_duration.CopyFrom(duration(tcp.max_connection_duration))
        changed = True
    h2 = options.explicit_http_config.http2_protocol_options
    if http is not None and options.explicit_http_config.HasField("http2_protocol_options"):
        if http.max_concurrent_streams:
            h2.max_concurrent_streams.value = http.max_concurrent_streams
            changed = True
        if http.http2_keep_alive is not None:
            h2.connection_keepalive.interval.CopyFrom(duration(http.http2_keep_alive.interval))
            h2.connection_keepalive.timeout.CopyFrom(duration(http.http2_keep_alive.timeout))
            changed = True
    if changed:
        store_protocol_options(cluster, options)


# ---- outlier detection -------------------------------------------------------------------


def apply_outlier_detection(cluster: cluster_pb2.Cluster, od: OutlierDetection) -> None:
    """Outlier detection as Istio maps it, with two things that make ejection take hold at
    once: Envoy's panic threshold from `minHealthPercent` (0, panic off, unless set), and
    no merge window for host updates (Envoy holds an ejection back for up to its default
    1 s `update_merge_window` after any other host update, such as an endpoint's health)."""
    out = outlier_detection_pb2.OutlierDetection()
    out.enforcing_success_rate.value = 0
    five_xx = od.consecutive_5xx_errors
    if five_xx is None:
        five_xx = od.consecutive_errors
    if five_xx is not None:
        out.consecutive_5xx.value = five_xx
        out.enforcing_consecutive_5xx.value = 100 if five_xx > 0 else 0
    if od.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.value = od.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = (
            100 if od.consecutive_gateway_errors > 0 else 0
        )
    if od.interval is not None:
        out.interval.CopyFrom(duration(od.interval))
    if od.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if od.max_ejection_percent:
        out.max_ejection_percent.value = od.max_ejection_percent
    if od.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if od.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.value = od.consecutive_local_origin_failures
            out.enforcing_consecutive_local_origin_failure.value = 100
        out.enforcing_local_origin_success_rate.value = 0
    cluster.outlier_detection.CopyFrom(out)
    cluster.common_lb_config.healthy_panic_threshold.value = float(od.min_health_percent or 0)
    cluster.common_lb_config.update_merge_window.SetInParent()
    if od.outlier_detection_http_error_codes:
        _apply_error_codes(cluster, od.outlier_detection_http_error_codes)


def _apply_error_codes(cluster: cluster_pb2.Cluster, codes: tuple[int, ...]) -> None:
    """Only these response codes count as errors towards the consecutive thresholds."""
    rules = []
    for code in codes:
        rule = matcher_pb2.MatchPredicate()
        header = rule.http_response_headers_match.headers.add(name=":status")
        header.string_match.exact = str(code)
        rules.append(rule)
    options = protocol_options(cluster)
    predicate = options.outlier_detection.error_matcher
    if len(rules) == 1:
        predicate.CopyFrom(rules[0])
    else:
        predicate.or_match.rules.extend(rules)
    store_protocol_options(cluster, options)


# ---- all of it ---------------------------------------------------------------------------


def apply_policy(
    cluster: cluster_pb2.Cluster,
    policy: EffectivePolicy,
    rule: Resource[Any] | None,
    findings: Findings,
    port_protocol: str = "HTTP",
    mesh_config: Any = None,
) -> None:
    """Apply the traffic policy in force for this cluster's port and subset."""
    apply_load_balancer(cluster, policy.load_balancer, rule, policy.path("load_balancer"), findings)
    apply_connection_pool(
        cluster, policy.connection_pool, policy.retry_budget, port_protocol, mesh_config
    )
    if policy.outlier_detection is not None:
        apply_outlier_detection(cluster, policy.outlier_detection)
    setting = locality.effective_setting(policy.load_balancer, mesh_config)
    if locality.weighted_localities(setting, policy.outlier_detection):
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()
