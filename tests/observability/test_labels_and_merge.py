"""Istio's labels from Envoy's raw tags, and the merged metrics page (pure functions)."""

from __future__ import annotations

from ratline.observability import istio_metrics as im
from ratline.observability.edges import edges
from ratline.observability.labels import identity, istio_labels, pick_service, service_parts
from ratline.observability.merge import istio_series, merged_metrics
from ratline.observability.peer_metadata import PeerMetadata, decode_header
from ratline.observability.prometheus_text import parse, sample_line

REVIEWS = PeerMetadata("reviews-v2-0", "default", "reviews-v2", {"app": "reviews", "version": "v2"},
                       "bookinfo-reviews")
PRODUCTPAGE = PeerMetadata("productpage-v1-0", "default", "productpage-v1",
                           {"app": "productpage", "version": "v1"}, "bookinfo-productpage")


def own(side: str, peer: PeerMetadata) -> dict[str, str]:
    return {
        f"{side}_workload": peer.workload,
        f"{side}_workload_namespace": peer.namespace,
        f"{side}_app": peer.app,
        f"{side}_version": peer.version,
        f"{side}_canonical_service": peer.canonical_service,
        f"{side}_canonical_revision": peer.canonical_revision,
        f"{side}_cluster": peer.cluster_id,
    }


def test_peer_metadata_round_trips_through_the_header() -> None:
    decoded = decode_header(REVIEWS.header_value())
    assert decoded is not None
    assert (decoded.namespace, decoded.workload, dict(decoded.labels)) == (
        "default", "reviews-v2", {"app": "reviews", "version": "v2"}
    )
    assert decode_header("not base64!") is None
    assert decode_header("-") is None


def test_canonical_service_and_revision_follow_istio_label_order() -> None:
    peer = PeerMetadata("x-0", "ns", "x-wl", {"service.istio.io/canonical-name": "canon",
                                               "app": "app", "version": "v9"})
    assert (peer.canonical_service, peer.canonical_revision) == ("canon", "v9")
    bare = PeerMetadata("y-0", "ns", "y-wl", {})
    assert (bare.canonical_service, bare.canonical_revision) == ("y-wl", "latest")
    assert (bare.app, bare.version) == ("unknown", "unknown")


def test_destination_reporter_labels() -> None:
    raw = {
        "reporter": "destination",
        **own("destination", REVIEWS),
        "source_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        "destination_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
        im.RAW_SERVICES: "reviews.default.svc.cluster.local",
        im.RAW_AUTHORITY: "reviews:9080",
        im.RAW_PEER: PRODUCTPAGE.header_value(),
        im.RAW_CONTENT_TYPE: "application/grpc",
        "response_code": "200",
        "response_flags": "-",
        "grpc_response_status": "0",
    }
    labels = dict(istio_labels(raw))
    assert list(labels) == list(im.LABELS)
    assert labels["source_workload"] == "productpage-v1"
    assert labels["destination_service_name"] == "reviews"
    assert labels["destination_service_namespace"] == "default"
    assert labels["connection_security_policy"] == "mutual_tls"
    assert labels["request_protocol"] == "grpc"
    assert labels["grpc_response_status"] == "0"


def test_source_reporter_without_a_peer_is_unknown_but_names_the_service() -> None:
    raw = {
        "reporter": "source",
        **own("source", PRODUCTPAGE),
        "source_principal": "-",
        "destination_principal": "-",
        im.RAW_CLUSTER: "outbound|9080|v2|reviews.default.svc.cluster.local",
        im.RAW_PEER: "",
        "response_code": "500",
        "response_flags": "FI",
    }
    labels = dict(istio_labels(raw))
    assert labels["destination_workload"] == "unknown"
    assert labels["destination_service"] == "reviews.default.svc.cluster.local"
    assert labels["destination_principal"] == "unknown"
    assert labels["connection_security_policy"] == "unknown"
    assert (labels["response_code"], labels["response_flags"]) == ("500", "FI")
    assert labels["request_protocol"] == "http"


def test_hosts_outside_the_registry_are_passthrough_or_blackhole_as_in_istio() -> None:
    base = {"reporter": "source", **own("source", PRODUCTPAGE), im.RAW_PEER: ""}
    passed = dict(istio_labels({**base, im.RAW_CLUSTER: "PassthroughCluster",
                                im.RAW_ROUTE: "allow_any"}))
    assert passed["destination_service"] == "PassthroughCluster"
    assert passed["destination_service_name"] == "PassthroughCluster"
    blocked = dict(istio_labels({**base, im.RAW_CLUSTER: "-", im.RAW_ROUTE: "block_all",
                                 "response_code": "502"}))
    assert blocked["destination_service_name"] == "BlackHoleCluster"
    assert blocked["destination_service_namespace"] == "unknown"
    other = dict(istio_labels({**base, im.RAW_CLUSTER: "-", im.RAW_ROUTE: "-"}))
    assert other["destination_service"] == "unknown"


def test_tag_overrides_remove_and_set_labels() -> None:
    raw = {"reporter": "source", **own("source", PRODUCTPAGE),
           im.RAW_REMOVE: "source_principal,request_protocol",
           im.RAW_OVERRIDE_PREFIX + "request_host": "reviews:9080"}
    labels = dict(istio_labels(raw))
    assert "source_principal" not in labels and "request_protocol" not in labels
    assert labels["request_host"] == "reviews:9080"


def test_service_picked_by_authority_among_several() -> None:
    services = "a.ns.svc.cluster.local,b.ns.svc.cluster.local"
    assert pick_service(services, "b:80", "ns") == "b.ns.svc.cluster.local"
    assert pick_service(services, "b.ns", "ns") == "b.ns.svc.cluster.local"
    assert pick_service(services, "elsewhere", "ns") == "a.ns.svc.cluster.local"
    assert pick_service("", "c:80", "ns") == "c.ns.svc.cluster.local"
    assert service_parts("httpbin.org") == ("httpbin.org", "unknown")


def _envoy_line(name: str, tags: dict[str, str], value: float) -> str:
    return sample_line(f"envoy_{name}", tuple(tags.items()), value)


def test_merge_sums_raw_series_that_share_istio_labels_and_keeps_envoy_stats() -> None:
    base = {"reporter": "destination", **own("destination", REVIEWS),
            im.RAW_SERVICES: "reviews.default.svc.cluster.local", "response_code": "200"}
    peer_a = PeerMetadata("productpage-v1-0", "default", "productpage-v1", PRODUCTPAGE.labels)
    peer_b = PeerMetadata("productpage-v1-1", "default", "productpage-v1", PRODUCTPAGE.labels)
    lines = [
        "# TYPE envoy_istio_requests_total counter",
        _envoy_line("istio_requests_total", {**base, im.RAW_PEER: peer_a.header_value()}, 3),
        _envoy_line("istio_requests_total", {**base, im.RAW_PEER: peer_b.header_value()}, 4),
        _envoy_line("istio_request_duration_milliseconds_bucket",
                    {**base, im.RAW_PEER: peer_a.header_value(), "le": "5"}, 2),
        _envoy_line("istio_request_duration_milliseconds_bucket",
                    {**base, im.RAW_PEER: peer_b.header_value(), "le": "5"}, 1),
        _envoy_line("istio_request_duration_milliseconds_count",
                    {**base, im.RAW_PEER: peer_a.header_value()}, 3),
        _envoy_line("istio_request_duration_milliseconds_count",
                    {**base, im.RAW_PEER: peer_b.header_value()}, 4),
        "envoy_server_live 1",
    ]
    text = merged_metrics("\n".join(lines))
    samples = list(parse(text))
    counters = [s for s in samples if s.name == "istio_requests_total"]
    assert len(counters) == 1 and counters[0].value == 7
    assert dict(counters[0].labels)["source_workload"] == "productpage-v1"
    assert im.RAW_PEER not in dict(counters[0].labels)
    bucket = next(s for s in samples if s.name.endswith("_bucket"))
    assert bucket.value == 3 and dict(bucket.labels)["le"] == "5"
    assert "# TYPE istio_requests_total counter" in text
    assert any(s.name == "envoy_server_live" for s in samples)
    graph = edges(istio_series([("\n".join(lines), ())]))
    assert [(e.key[0], e.key[3], e.requests) for e in graph] == [
        ("productpage-v1", "reviews-v2", 7.0)
    ]


def test_the_agent_adds_the_reporting_proxy_identity() -> None:
    raw = {"reporter": "source", im.RAW_PEER: REVIEWS.header_value(),
           im.RAW_CLUSTER: "outbound|9080|v2|reviews.default.svc.cluster.local"}
    labels = dict(istio_labels(raw, own=identity(PRODUCTPAGE)))
    assert labels["source_workload"] == "productpage-v1"
    assert labels["source_canonical_revision"] == "v1"
    assert labels["destination_workload"] == "reviews-v2"


def test_label_values_with_quotes_and_backslashes_round_trip() -> None:
    line = sample_line("m", (("a", 'x"y\\z'),), 1)
    assert next(iter(parse(line))).labels == (("a", 'x"y\\z'),)
