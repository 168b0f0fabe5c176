"""Istio's resource names."""

from __future__ import annotations

import pytest

from ratline.translate import names


def test_outbound_cluster_names_round_trip() -> None:
    name = names.outbound_cluster(9080, "v1", "reviews.default.svc.cluster.local")
    assert name == "outbound|9080|v1|reviews.default.svc.cluster.local"
    assert names.parse_outbound_cluster(name) == (9080, "v1", "reviews.default.svc.cluster.local")
    assert names.outbound_cluster(80, "", "httpbin.org") == "outbound|80||httpbin.org"


def test_parse_outbound_cluster_refuses_other_names() -> None:
    with pytest.raises(ValueError):
        names.parse_outbound_cluster("inbound|9080||")


def test_inbound_and_gateway_names() -> None:
    assert names.inbound_cluster(9080) == "inbound|9080||"
    assert names.inbound_listener(9080) == "inbound|9080||"
    assert names.gateway_listener(8080) == "0.0.0.0_8080"
    assert names.gateway_route_config(8080) == "http.8080"
    assert names.virtual_host("reviews.default.svc.cluster.local", 9080) == (
        "reviews.default.svc.cluster.local:9080"
    )
    assert (names.BLACKHOLE_CLUSTER, names.PASSTHROUGH_CLUSTER, names.HTTP_PROXY) == (
        "BlackHoleCluster",
        "PassthroughCluster",
        "http_proxy",
    )
