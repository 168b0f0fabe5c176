"""proxy-config tables from real Envoy protos, converted to JSON as the admin API does."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import json_format, wrappers_pb2
from google.protobuf.message import Message

from ratline.cli.envoy_tables import (
    cluster_rows,
    endpoint_rows,
    listener_rows,
    parse_cluster_name,
    route_rows,
)

SNAKE_AND_CAMEL = pytest.mark.parametrize("snake", [True, False], ids=["snake", "camel"])


def to_json(message: Message, snake: bool) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=snake)


def socket(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def test_cluster_names_split_into_fqdn_port_subset_direction() -> None:
    assert parse_cluster_name("outbound|9080|v1|reviews.default.svc.cluster.local") == (
        "reviews.default.svc.cluster.local",
        "9080",
        "v1",
        "outbound",
    )
    assert parse_cluster_name("inbound|9080||") == ("", "9080", "-", "inbound")
    assert parse_cluster_name("BlackHoleCluster") == ("BlackHoleCluster", "-", "-", "-")


@SNAKE_AND_CAMEL
def test_cluster_rows(snake: bool) -> None:
    clusters = [
        cluster_pb2.Cluster(name="BlackHoleCluster"),
        cluster_pb2.Cluster(
            name="outbound|9080|v2|reviews.default.svc.cluster.local",
            type=cluster_pb2.Cluster.EDS,
        ),
        cluster_pb2.Cluster(name="inbound|9080||", type=cluster_pb2.Cluster.STATIC),
        cluster_pb2.Cluster(name="PassthroughCluster", type=cluster_pb2.Cluster.ORIGINAL_DST),
    ]
    rows = cluster_rows([to_json(c, snake) for c in clusters])
    assert rows == [
        ["", "9080", "-", "inbound", "STATIC"],
        ["reviews.default.svc.cluster.local", "9080", "v2", "outbound", "EDS"],
        ["BlackHoleCluster", "-", "-", "-", "STATIC"],
        ["PassthroughCluster", "-", "-", "-", "ORIGINAL_DST"],
    ]


@SNAKE_AND_CAMEL
def test_listener_rows_name_route_or_cluster(snake: bool) -> None:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix="http_proxy", rds=hcm_pb2.Rds(route_config_name="http_proxy")
    )
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix="in", cluster="inbound|9080||")

    def chain(config: Message) -> listener_components_pb2.FilterChain:
        network_filter = listener_components_pb2.Filter(name="f")
        network_filter.typed_config.Pack(config)
        return listener_components_pb2.FilterChain(filters=[network_filter])

    listeners = [
        listener_pb2.Listener(
            name="inbound|9080||", address=socket("127.0.0.1", 41001), filter_chains=[chain(tcp)]
        ),
        listener_pb2.Listener(
            name="http_proxy", address=socket("127.0.0.1", 15001), filter_chains=[chain(hcm)]
        ),
    ]
    rows = listener_rows([to_json(listener, snake) for listener in listeners])
    assert rows == [
        ["http_proxy", "127.0.0.1", "15001", "Route: http_proxy"],
        ["inbound|9080||", "127.0.0.1", "41001", "Cluster: inbound|9080||"],
    ]


@SNAKE_AND_CAMEL
def test_route_rows_show_match_and_destination(snake: bool) -> None:
    rc = route_components_pb2
    jason = rc.HeaderMatcher(name="end-user", string_match=string_pb2.StringMatcher(exact="jason"))
    weighted = rc.WeightedCluster(
        clusters=[
            rc.WeightedCluster.ClusterWeight(
                name="outbound|9080|v1|reviews.default.svc.cluster.local",
                weight=wrappers_pb2.UInt32Value(value=50),
            ),
            rc.WeightedCluster.ClusterWeight(
                name="outbound|9080|v3|reviews.default.svc.cluster.local",
                weight=wrappers_pb2.UInt32Value(value=50),
            ),
        ]
    )
    config = route_pb2.RouteConfiguration(
        name="http_proxy",
        virtual_hosts=[
            rc.VirtualHost(
                name="reviews.default.svc.cluster.local:9080",
                domains=["reviews.default.svc.cluster.local", "reviews", "reviews:9080"],
                routes=[
                    rc.Route(
                        match=rc.RouteMatch(prefix="/", headers=[jason]),
                        route=rc.RouteAction(
                            cluster="outbound|9080|v2|reviews.default.svc.cluster.local"
                        ),
                    ),
                    rc.Route(
                        match=rc.RouteMatch(prefix="/"),
                        route=rc.RouteAction(weighted_clusters=weighted),
                    ),
                ],
            ),
            rc.VirtualHost(
                name="gw",
                domains=["*"],
                routes=[
                    rc.Route(
                        match=rc.RouteMatch(path="/productpage"),
                        route=rc.RouteAction(cluster="c"),
                    ),
                    rc.Route(
                        match=rc.RouteMatch(prefix="/static"),
                        direct_response=rc.DirectResponseAction(status=404),
                    ),
                ],
            ),
        ],
    )
    rows = route_rows([to_json(config, snake)])
    vhost, domains = (
        "reviews.default.svc.cluster.local:9080",
        "reviews.default.svc.cluster.local + 2 more",
    )
    assert rows == [
        [
            "http_proxy",
            vhost,
            domains,
            "/* [end-user=jason]",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
        ],
        [
            "http_proxy",
            vhost,
            domains,
            "/*",
            "outbound|9080|v1|reviews.default.svc.cluster.local 50%, "
            "outbound|9080|v3|reviews.default.svc.cluster.local 50%",
        ],
        ["http_proxy", "gw", "*", "/productpage", "c"],
        ["http_proxy", "gw", "*", "/static*", "direct response 404"],
    ]


@SNAKE_AND_CAMEL
def test_endpoint_rows(snake: bool) -> None:
    ec = endpoint_components_pb2
    assignments = [
        endpoint_pb2.ClusterLoadAssignment(
            cluster_name="outbound|9080|v1|reviews.default.svc.cluster.local",
            endpoints=[
                ec.LocalityLbEndpoints(
                    lb_endpoints=[
                        ec.LbEndpoint(endpoint=ec.Endpoint(address=socket("127.0.0.1", 41002))),
                        ec.LbEndpoint(
                            endpoint=ec.Endpoint(address=socket("127.0.0.1", 41001)),
                            health_status=health_check_pb2.UNHEALTHY,
                        ),
                    ]
                )
            ],
        ),
        endpoint_pb2.ClusterLoadAssignment(cluster_name="outbound|9080||ratings"),
    ]
    rows = endpoint_rows([to_json(a, snake) for a in assignments])
    assert rows == [
        ["127.0.0.1:41001", "UNHEALTHY", "outbound|9080|v1|reviews.default.svc.cluster.local"],
        ["127.0.0.1:41002", "HEALTHY", "outbound|9080|v1|reviews.default.svc.cluster.local"],
        ["-", "NO ENDPOINTS", "outbound|9080||ratings"],
    ]
