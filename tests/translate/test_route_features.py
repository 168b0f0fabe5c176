"""Per-route features and DestinationRule policies as Istio translates them (unit level;
the e2e tests in tests/e2e/test_traffic_tasks*.py prove them through real Envoy)."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from ratline.settings import Settings
from ratline.translate.cluster_policy import HTTP_PROTOCOL_OPTIONS
from ratline.translate.clusters import outbound_clusters
from ratline.translate.common import Findings
from ratline.translate.generator import MeshGenerator
from ratline.translate.routes import ProxyScope, sidecar_route_config
from tests.translate import mesh

RATINGS = "ratings.default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"


def _routes(config: str, host: str = RATINGS) -> list[Any]:
    findings = Findings()
    routes = sidecar_route_config(mesh.snapshot(config), ProxyScope.of("default"), findings)
    return list(next(h for h in routes.virtual_hosts if h.name == f"{host}:9080").routes)


def _vs(http: str, host: str = "ratings") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
        f"spec:\n  hosts: [{host}]\n  http:\n{http}"
    )


def _dr(policy: str, host: str = "ratings", subsets: str = "") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
        f"spec:\n  host: {host}\n  trafficPolicy:\n{policy}{subsets}"
    )


def test_grpc_abort_and_legacy_delay_percent() -> None:
    [route] = _routes(
        _vs(
            "  - fault:\n"
            "      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 12.5}}\n"
            "      delay: {fixedDelay: 2s, percent: 30}\n"
            "    route: [{destination: {host: ratings}}]\n"
        )
    )
    fault = fault_pb2.HTTPFault()
    route.typed_per_filter_config["envoy.filters.http.fault"].Unpack(fault)
    assert fault.abort.grpc_status == 14
    assert fault.abort.percentage.numerator == 125_000
    assert fault.delay.fixed_delay.seconds == 2
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (30, 0)


def test_cors_policy_fields() -> None:
    [route] = _routes(
        _vs(
            "  - corsPolicy:\n"
            "      allowOrigins: [{exact: 'https://a'}, {regex: 'https://.*\\.b'}]\n"
            "      allowMethods: [GET, PUT]\n      allowHeaders: [x-a, x-b]\n"
            "      exposeHeaders: [x-c]\n      maxAge: 1h\n      allowCredentials: true\n"
            "    route: [{destination: {host: ratings}}]\n"
        )
    )
    cors = cors_pb2.CorsPolicy()
    route.typed_per_filter_config["envoy.filters.http.cors"].Unpack(cors)
    assert [m.exact or m.safe_regex.regex for m in cors.allow_origin_string_match] == [
        "https://a",
        "https://.*\\.b",
    ]
    assert (cors.allow_methods, cors.allow_headers, cors.expose_headers) == (
        "GET,PUT",
        "x-a,x-b",
        "x-c",
    )
    assert cors.max_age == "3600"
    assert cors.allow_credentials.value is True
    assert cors.forward_not_matching_preflights.value is True  # unmatchedPreflights unset


def test_retries_remote_localities_and_hashing() -> None:
    [route] = _routes(
        _vs(
            "  - retries:\n"
            "      {attempts: 4, retryOn: 'gateway-error,409', retryRemoteLocalities: true}\n"
            "    route: [{destination: {host: ratings}}]\n"
        )
        + "---\n"
        + _dr("    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n")
    )
    policy = route.route.retry_policy
    assert policy.num_retries.value == 4
    assert policy.retry_on == "gateway-error,retriable-status-codes"
    assert list(policy.retriable_status_codes) == [409]
    assert policy.retry_priority.name == "envoy.retry_priorities.previous_priorities"
    assert list(policy.retry_host_predicate) == []  # hashing: retries stay on the host
    [hashing] = route.route.hash_policy
    assert hashing.header.header_name == "x-user"


def test_redirect_ports_and_codes() -> None:
    routes = _routes(
        _vs(
            "  - match: [{uri: {prefix: /a}}]\n"
            "    redirect: {uri: /b, derivePort: FROM_REQUEST_PORT, redirectCode: 302}\n"
            "  - match: [{uri: {prefix: /c}}]\n"
            "    redirect: {scheme: https, port: 443}\n"
            "  - match: [{uri: {prefix: /d}}]\n"
            "    redirect: {uri: /e, redirectCode: 305}\n"
            "  - route: [{destination: {host: ratings}}]\n"
        )
    )
    first, second, last = routes  # the 305 rule is left out (Envoy cannot send it)
    assert (first.redirect.path_redirect, first.redirect.port_redirect) == ("/b", 9080)
    assert first.redirect.response_code == first.redirect.FOUND
    assert (second.redirect.scheme_redirect, second.redirect.port_redirect) == ("https", 0)
    assert last.route.cluster == f"outbound|9080||{RATINGS}"


def test_authority_headers_mirrors_and_zero_weights() -> None:
    [route] = _routes(
        _vs(
            "  - headers: {request: {set: {host: other, x-a: '1'}, remove: [x-b]}}\n"
            "    mirrors: [{destination: {host: details}, percentage: {value: 25}},\n"
            "              {destination: {host: ratings}, percentage: {value: 0}}]\n"
            "    route:\n"
            "    - {destination: {host: ratings}, weight: 100}\n"
            "    - {destination: {host: details}, weight: 0}\n"
        )
    )
    assert route.route.host_rewrite_literal == "other"
    assert [h.header.key for h in route.request_headers_to_add] == ["x-a"]
    assert list(route.request_headers_to_remove) == ["x-b"]
    [mirror] = route.route.request_mirror_policies  # 0 % turns the second one off
    assert mirror.cluster == "outbound|9080||details.default.svc.cluster.local"
    assert mirror.runtime_fraction.default_value.numerator == 250_000
    assert [c.name for c in route.route.weighted_clusters.clusters] == [f"outbound|9080||{RATINGS}"]


def test_claims_match_and_present_regex() -> None:
    [route, _] = _routes(
        _vs(
            "  - match:\n"
            "    - headers: {'@request.auth.claims.groups': {exact: admin}, x-any: {regex: '*'}}\n"
            "    route: [{destination: {host: ratings}}]\n"
            "  - route: [{destination: {host: ratings}}]\n"
        )
    )
    [claim] = route.match.dynamic_metadata
    assert claim.filter == "envoy.filters.http.jwt_authn"
    assert [p.key for p in claim.path] == ["payload", "groups"]
    [present] = route.match.headers
    assert present.name == "x-any" and present.present_match


def test_gateway_merges_virtual_services_oldest_first_catch_alls_last() -> None:
    config = mesh.CONFIG + "".join(
        f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge-{name}, creationTimestamp: "{created}"}}
spec:
  hosts: ["*"]
  gateways: [istio-system/bookinfo-gateway]
  http:
  - match: [{{uri: {{prefix: /{name}}}}}]
    route: [{{destination: {{host: ratings}}}}]
  - route: [{{destination: {{host: {name}}}}}]
"""
        for name, created in (
            ("reviews", "2024-01-02T00:00:00Z"),
            ("details", "2024-01-01T00:00:00Z"),
        )
    )
    generator = MeshGenerator(mesh.snapshot(config), Settings())
    resources = generator.protos_for(mesh.node("istio-ingressgateway-0"))
    assert resources is not None
    [host] = [h for r in resources.routes for h in r.virtual_hosts if h.domains == ["*"]]
    described = [
        (r.match.prefix or r.match.path, r.route.cluster.split("|")[-1]) for r in host.routes
    ]
    assert described == [
        ("/details", RATINGS),
        ("/reviews", RATINGS),
        ("/productpage", "productpage.default.svc.cluster.local"),
        ("/static", "productpage.default.svc.cluster.local"),
        ("/", "details.default.svc.cluster.local"),
        ("/", REVIEWS),
    ]


def _cluster(policy: str, name: str = f"outbound|9080||{RATINGS}", subsets: str = "") -> Any:
    findings = Findings()
    clusters = outbound_clusters(mesh.snapshot(_dr(policy, subsets=subsets)), findings)
    return next(c for c in clusters if c.name == name)


def test_outlier_detection_takes_hold_at_once() -> None:
    cluster = _cluster("    outlierDetection: {consecutive5xxErrors: 1, interval: 1s}\n")
    assert cluster.common_lb_config.HasField("update_merge_window")
    assert cluster.common_lb_config.update_merge_window.ToTimedelta().total_seconds() == 0
    assert cluster.common_lb_config.healthy_panic_threshold.value == 0
    assert cluster.outlier_detection.enforcing_consecutive_5xx.value == 100


def test_connection_pool_protocol_options() -> None:
    cluster = _cluster(
        "    connectionPool:\n"
        "      tcp: {maxConnectionDuration: 60s, tcpKeepalive: {time: 30s}}\n"
        "      http: {h2UpgradePolicy: UPGRADE, maxRequestsPerConnection: 7, idleTimeout: 5s,\n"
        "             maxConcurrentStreams: 9, http2KeepAlive: {interval: 10s, timeout: 2s}}\n"
        "    retryBudget: {percent: 30}\n"
        "    outlierDetection: {outlierDetectionHttpErrorCodes: [502, 504]}\n"
    )
    options = http_protocol_options_pb2.HttpProtocolOptions()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(options)
    h2 = options.explicit_http_config.http2_protocol_options
    assert h2.max_concurrent_streams.value == 9
    assert h2.connection_keepalive.interval.seconds == 10
    common = options.common_http_protocol_options
    assert (common.max_requests_per_connection.value, common.idle_timeout.seconds) == (7, 5)
    assert common.max_connection_duration.seconds == 60
    assert len(options.outlier_detection.error_matcher.or_match.rules) == 2
    assert cluster.upstream_connection_options.tcp_keepalive.keepalive_time.value == 30
    budget = cluster.circuit_breakers.thresholds[0].retry_budget
    assert (budget.budget_percent.value, budget.min_retry_concurrency.value) == (30, 3)


def test_load_balancers() -> None:
    maglev = _cluster(
        "    loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 7}}}\n"
    )
    assert maglev.lb_policy == cluster_pb2.Cluster.MAGLEV
    assert maglev.maglev_lb_config.table_size.value == 7
    warm = _cluster("    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 20s}\n")
    assert warm.round_robin_lb_config.slow_start_config.slow_start_window.seconds == 20
    weighted = _cluster(
        "    loadBalancer:\n      localityLbSetting:\n"
        "        distribute: [{from: 'r/*', to: {'r/*': 100}}]\n"
    )
    assert weighted.common_lb_config.HasField("locality_weighted_lb_config")
    findings = Findings()
    snapshot = mesh.snapshot(_dr("    loadBalancer: {simple: PASSTHROUGH}\n"))
    outbound_clusters(snapshot, findings)
    [finding] = findings.messages
    assert finding.field == "spec.trafficPolicy.loadBalancer.simple"
    assert "PASSTHROUGH is not supported in local mode" in finding.message
