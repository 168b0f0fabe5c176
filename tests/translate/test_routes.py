"""Route configurations: sidecar `http_proxy` domains and VirtualService routes, gateways."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from ratline.api.schemas.meshconfig import MeshConfig
from ratline.translate.common import Findings
from ratline.translate.route_features import DEFAULT_RETRY_ON
from ratline.translate.routes import (
    GatewayServer,
    ProxyScope,
    gateway_route_config,
    sidecar_route_config,
)
from tests.translate import mesh

REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"


def _sidecar(
    namespace: str = "default", config: str = mesh.CONFIG, mesh_config: MeshConfig | None = None
) -> tuple[route_pb2.RouteConfiguration, Findings]:
    findings = Findings()
    snapshot = mesh.snapshot(config, mesh_config)
    return sidecar_route_config(snapshot, ProxyScope.of(namespace), findings), findings


def _hosts(config: route_pb2.RouteConfiguration) -> dict[str, rc.VirtualHost]:
    return {h.name: h for h in config.virtual_hosts}


def test_domains_for_a_proxy_in_the_same_namespace() -> None:
    hosts = _hosts(_sidecar("default")[0])
    assert list(hosts[f"{REVIEWS}:9080"].domains) == [
        f"{REVIEWS}:9080",
        "reviews:9080",
        "reviews.default:9080",
        "reviews.default.svc:9080",
    ]


def test_short_name_only_in_the_same_namespace_and_portless_only_on_port_80() -> None:
    hosts = _hosts(_sidecar("other")[0])
    assert "reviews:9080" not in hosts[f"{REVIEWS}:9080"].domains
    assert "reviews.default:9080" in hosts[f"{REVIEWS}:9080"].domains
    assert all(":" in d for d in hosts[f"{REVIEWS}:9080"].domains)
    echo = hosts["echo.other.svc.cluster.local:80"].domains
    assert {"echo:80", "echo", "echo.other", "echo.other.svc.cluster.local"} <= set(echo)
    assert set(hosts["httpbin.org:80"].domains) == {"httpbin.org:80", "httpbin.org"}


def test_no_domain_is_claimed_twice() -> None:
    config, _ = _sidecar()
    domains = [d for h in config.virtual_hosts for d in h.domains]
    assert len(domains) == len(set(domains))


def test_service_without_virtual_service_gets_the_default_route_and_retries() -> None:
    [route] = _hosts(_sidecar()[0])["details.default.svc.cluster.local:9080"].routes
    assert route.match.prefix == "/"
    assert route.route.cluster == "outbound|9080||details.default.svc.cluster.local"
    assert route.route.timeout.seconds == 0
    retry = route.route.retry_policy
    assert retry.num_retries.value == 2
    assert retry.retry_on == DEFAULT_RETRY_ON
    # 503 too, as Istio before 1.24 (see docs/differences.md)
    assert list(retry.retriable_status_codes) == [503]
    assert [p.name for p in retry.retry_host_predicate] == [
        "envoy.retry_host_predicates.previous_hosts"
    ]


def test_header_match_and_weighted_subsets() -> None:
    jason, split = _hosts(_sidecar()[0])[f"{REVIEWS}:9080"].routes
    [header] = jason.match.headers
    assert header.name == "end-user"
    assert header.string_match.exact == "jason"
    assert jason.route.cluster == f"outbound|9080|v2|{REVIEWS}"
    assert split.match.prefix == "/"
    weights = {c.name: c.weight.value for c in split.route.weighted_clusters.clusters}
    assert weights == {f"outbound|9080|v1|{REVIEWS}": 80, f"outbound|9080|v3|{REVIEWS}": 20}
    assert split.route.retry_policy.num_retries.value == 2


def test_rule_features_rewrite_timeout_retries_headers() -> None:
    routes = _hosts(_sidecar()[0])[f"{RATINGS}:9080"].routes
    first = routes[0]
    assert first.match.prefix == "/ratings"
    assert first.match.headers[0].name == ":method"
    assert first.match.headers[0].string_match.exact == "GET"
    assert first.route.cluster == f"outbound|9080|v1|{RATINGS}"
    assert first.route.prefix_rewrite == "/v1/ratings"
    assert first.route.host_rewrite_literal == "ratings-backend"
    assert first.route.timeout.seconds == 2
    retry = first.route.retry_policy
    assert retry.num_retries.value == 3
    assert retry.retry_on == "5xx,retriable-status-codes"
    assert list(retry.retriable_status_codes) == [409]
    assert retry.per_try_timeout.nanos == 500_000_000
    [added] = first.request_headers_to_add
    assert (added.header.key, added.header.value) == ("x-ratline", "yes")
    assert list(first.request_headers_to_remove) == ["x-debug"]


def test_redirect_and_direct_response() -> None:
    routes = _hosts(_sidecar()[0])[f"{RATINGS}:9080"].routes
    redirect, direct = routes[1], routes[2]
    assert redirect.match.path == "/old"
    assert redirect.redirect.path_redirect == "/new"
    assert redirect.redirect.response_code == rc.RedirectAction.PERMANENT_REDIRECT
    assert direct.match.safe_regex.regex == "^/teapot/.*"
    assert direct.direct_response.status == 418
    assert direct.direct_response.body.inline_string == "teapot"


def test_fault_is_the_fault_filter_config_of_its_route() -> None:
    config, findings = _sidecar()
    routes = _hosts(config)[f"{RATINGS}:9080"].routes
    assert routes[3].route.cluster == f"outbound|9080||{RATINGS}"
    fault = fault_pb2.HTTPFault()
    routes[3].typed_per_filter_config["envoy.filters.http.fault"].Unpack(fault)
    assert fault.abort.http_status == 500
    assert fault.abort.percentage.numerator == 100_000  # 10 % as parts per million
    assert not fault.HasField("delay")
    assert findings.messages == []


def test_zero_attempts_disable_retries() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - retries: {attempts: 0}
    route:
    - destination: {host: details}
"""
    [route] = _hosts(_sidecar(config=config)[0])["details.default.svc.cluster.local:9080"].routes
    assert not route.route.HasField("retry_policy")


def test_more_matches_query_ignore_case_and_presence() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  http:
  - match:
    - uri: {prefix: /API}
      ignoreUriCase: true
      headers: {x-present: {}, x-pre: {prefix: ab}}
      queryParams: {debug: {exact: "1"}}
      withoutHeaders: {x-skip: {regex: ".+"}}
      authority: {exact: details.example}
    route:
    - destination: {host: details}
"""
    [route] = _hosts(_sidecar(config=config)[0])["details.default.svc.cluster.local:9080"].routes
    match = route.match
    assert not match.case_sensitive.value and match.HasField("case_sensitive")
    headers = {h.name: h for h in match.headers}
    assert headers["x-present"].present_match
    assert headers["x-pre"].string_match.prefix == "ab"
    assert headers["x-skip"].invert_match
    assert headers[":authority"].string_match.exact == "details.example"
    [query] = match.query_parameters
    assert (query.name, query.string_match.exact) == ("debug", "1")


def test_destination_port_omitted_uses_the_only_port_and_unknown_hosts_are_reported() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details, nowhere]
  http:
  - route:
    - destination: {host: echo.other.svc.cluster.local}
"""
    config_proto, findings = _sidecar(config=config)
    [route] = _hosts(config_proto)["details.default.svc.cluster.local:9080"].routes
    assert route.route.cluster == "outbound|80||echo.other.svc.cluster.local"
    assert any("nowhere.default.svc.cluster.local" in m.message for m in findings.messages)


def test_virtual_service_bound_to_a_gateway_only_does_not_touch_sidecars() -> None:
    [route] = _hosts(_sidecar()[0])["productpage.default.svc.cluster.local:9080"].routes
    assert route.name == "default"


def test_catch_all_follows_the_outbound_traffic_policy() -> None:
    allow = _sidecar()[0].virtual_hosts[-1]
    assert (allow.name, list(allow.domains)) == ("allow_any", ["*"])
    assert allow.routes[0].route.cluster == "PassthroughCluster"
    registry_only = MeshConfig.model_validate({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})
    block = _sidecar(mesh_config=registry_only)[0].virtual_hosts[-1]
    assert block.name == "block_all"
    assert block.routes[0].direct_response.status == 502


def _gateway_config(config: str, server_hosts_port: int = 80) -> route_pb2.RouteConfiguration:
    snapshot = mesh.snapshot(config)
    servers = [
        GatewayServer(gw, server, i)
        for gw in snapshot.gateways
        for i, server in enumerate(gw.spec.servers)
        if server.port.number == server_hosts_port
    ]
    return gateway_route_config(snapshot, servers, 8080, ProxyScope.of("istio-system"), Findings())


def test_gateway_routes_come_from_bound_virtual_services() -> None:
    config = _gateway_config(mesh.CONFIG)
    assert config.name == "http.8080"
    [host] = config.virtual_hosts
    assert list(host.domains) == ["*"]
    assert [r.match.path or r.match.prefix for r in host.routes] == ["/productpage", "/static"]
    assert host.routes[0].route.cluster == "outbound|9080||productpage.default.svc.cluster.local"


def test_gateway_domains_are_the_intersection_of_server_and_virtual_service_hosts() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com", "other/*", "static.test"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: ["shop.example.com", "*", "elsewhere.org"]
  gateways: [gw]
  http:
  - route:
    - destination: {host: details}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other-ns, namespace: other}
spec:
  hosts: ["echo.local"]
  gateways: [default/gw]
  http:
  - route:
    - destination: {host: echo}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: unbound}
spec:
  hosts: ["unbound.example.com"]
  http:
  - route:
    - destination: {host: details}
"""
    hosts = {h.name: list(h.domains) for h in _gateway_config(config).virtual_hosts}
    assert hosts == {
        "*.example.com:8080": ["*.example.com"],
        "echo.local:8080": ["echo.local"],
        "shop.example.com:8080": ["shop.example.com"],
        "static.test:8080": ["static.test"],
    }
