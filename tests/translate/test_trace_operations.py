"""Istio's span names: route decorators from the single cluster or the VirtualService."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from ratline.translate.listeners import inbound_route_config
from ratline.translate.trace_operations import route_operation


def _route(cluster: str = "", **match: str) -> rc.Route:
    route = rc.Route(match=rc.RouteMatch(**match))
    if cluster:
        route.route.cluster = cluster
    return route


def test_single_cluster_names_host_port_and_path() -> None:
    cluster = "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert route_operation(_route(cluster, prefix="/"), "reviews", 9080) == (
        "reviews.default.svc.cluster.local:9080/*"
    )
    assert route_operation(_route(cluster, prefix="/api"), "vs", 80) == (
        "reviews.default.svc.cluster.local:9080/api*"
    )
    assert route_operation(_route(cluster, path="/productpage"), "vs", 80) == (
        "reviews.default.svc.cluster.local:9080/productpage"
    )


def test_weighted_or_no_cluster_names_the_virtual_service() -> None:
    route = _route(prefix="/")
    route.route.weighted_clusters.clusters.add(name="outbound|9080|v1|reviews").weight.value = 50
    assert route_operation(route, "reviews-split", 9080) == "reviews-split:9080/*"
    assert route_operation(_route(path="/x"), "redirects", 80) == "redirects:80/x"


def test_inbound_route_is_named_by_its_service() -> None:
    config = inbound_route_config(9080, "ratings.default.svc.cluster.local")
    route = config.virtual_hosts[0].routes[0]
    assert route.decorator.operation == "ratings.default.svc.cluster.local:9080/*"
    assert not inbound_route_config(9080).virtual_hosts[0].routes[0].HasField("decorator")
