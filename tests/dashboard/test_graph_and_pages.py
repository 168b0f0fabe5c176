"""The graph and the pages' data from a Bookinfo-like snapshot and given traffic (pure)."""

from __future__ import annotations

from ratline.dashboard.graph import build_graph, health
from ratline.dashboard.pages import proxies_table, service_detail, services_list
from ratline.dashboard.traffic import Traffic
from tests.translate import mesh

REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"


def ok(rps: float, p: float = 5.0) -> Traffic:
    return Traffic({"200": rps}, {p: rps, float("inf"): rps}, mtls=True, protocols={"http"})


TRAFFIC = {
    ("istio-ingressgateway", "istio-system", "productpage.default.svc.cluster.local",
     "productpage-v1", "default"): ok(2.0),
    ("productpage-v1", "default", REVIEWS, "reviews-v2", "default"): ok(1.0),
    ("reviews-v2", "default", RATINGS, "unknown", "unknown"): Traffic({"500": 1.0}),
    ("unknown", "unknown", RATINGS, "ratings-v1", "default"): ok(0.5),
}


def test_graph_nodes_groups_and_edges() -> None:
    snapshot = mesh.snapshot()
    connected = {i.node_id for i in snapshot.instances.values() if i.name != "ratings-v1-0"}
    graph = build_graph(snapshot, connected, TRAFFIC)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["w:istio-system/istio-ingressgateway"]["kind"] == "gateway"
    assert nodes["w:default/reviews-v2"]["group"] == f"s:{REVIEWS}"
    assert nodes["w:default/ratings-v1"]["connected"] == 0
    assert nodes["unknown"]["kind"] == "unknown"
    groups = {g["id"]: g for g in graph["groups"]}
    assert groups[f"s:{REVIEWS}"]["members"] == [
        "w:default/reviews-v1", "w:default/reviews-v2", "w:default/reviews-v3"]
    assert "s:httpbin.org" not in groups  # outside the mesh and no traffic: not drawn
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert set(edges) == {
        ("w:istio-system/istio-ingressgateway", "w:default/productpage-v1"),
        ("w:default/productpage-v1", "w:default/reviews-v2"),
        ("w:default/reviews-v2", f"s:{RATINGS}"),  # no workload answered: to the service
        ("unknown", "w:default/ratings-v1"),
    }
    fault = edges[("w:default/reviews-v2", f"s:{RATINGS}")]
    assert fault["health"] == "failing" and fault["error_rate"] == 1.0
    # Interpolated in the 0..5 ms bucket, as histogram_quantile does.
    assert edges[("w:default/productpage-v1", "w:default/reviews-v2")]["p99_ms"] == 4.95
    assert nodes["w:default/reviews-v1"]["inbound"]["health"] == "idle"
    assert groups[f"s:{RATINGS}"]["inbound"]["rps"] == 1.5


def test_tcp_edges_carry_bytes_and_connections_per_second() -> None:
    from ratline.dashboard.traffic import delta
    from ratline.observability.edges import Edge

    key = ("ratings-v1", "default", "mongodb.default.svc.cluster.local", "mongodb-v1", "default")
    older = Edge(key, tcp_bytes=1000.0, tcp_opened=2.0, protocols={"tcp"})
    newer = Edge(key, tcp_bytes=6000.0, tcp_opened=12.0, mtls=True, protocols={"tcp"})
    graph = build_graph(mesh.snapshot(), set(), {key: delta(newer, older, 10.0)})
    (edge,) = graph["edges"]
    assert edge["tcp_bytes_per_s"] == 500.0 and edge["tcp_connections_per_s"] == 1.0
    assert edge["rps"] == 0.0 and edge["protocols"] == ["tcp"] and edge["mtls"]
    assert edge["health"] == "healthy"
    assert edge["target"] == "w:default/mongodb-v1"  # seen only in traffic: a node of its own
    assert any(n["id"] == "w:default/mongodb-v1" and not n["registered"] for n in graph["nodes"])


def test_health_thresholds_are_kialis() -> None:
    assert [health(x) for x in (None, 0.0, 0.0009, 0.001, 0.19, 0.2)] == [
        "idle", "healthy", "healthy", "degraded", "degraded", "failing"]


def test_service_detail_lists_endpoints_ejections_and_the_config_that_applies() -> None:
    snapshot = mesh.snapshot()
    service = snapshot.services[REVIEWS]
    ejected_address = next(f"{e.address}:{e.port}" for e in service.endpoints[9080])
    detail = service_detail(snapshot, service, TRAFFIC, [], {ejected_address: ["productpage-v1-0"]})
    assert len(detail["endpoints"]) == 3
    assert [e["ejected_by"] for e in detail["endpoints"]].count(["productpage-v1-0"]) == 1
    config = {(c["kind"], c["name"]): c["why"] for c in detail["config"]}
    assert config[("DestinationRule", "reviews")] == "traffic policy and subsets in force"
    assert config[("VirtualService", "reviews")] == "routes requests for this service"
    assert detail["inbound"]["rps"] == 1.0
    rows = {s["hostname"]: s for s in services_list(snapshot, TRAFFIC)}
    assert rows[REVIEWS]["workloads"] == ["reviews-v1", "reviews-v2", "reviews-v3"]


def test_proxies_table_shows_registered_proxies_that_never_connected() -> None:
    snapshot = mesh.snapshot()
    seen = [{"node": i.node_id, "instance": i.name, "namespace": i.namespace, "connected": True,
             "xds": "delta", "types": {t: {"state": "SYNCED", "nack": None}
                                       for t in ("CDS", "LDS", "EDS", "RDS")}}
            for i in snapshot.instances.values() if i.name != "ratings-v1-0"]
    seen[0]["types"]["LDS"] = {"state": "SYNCED", "nack": "bad listener"}
    rows = {r["instance"]: r for r in proxies_table(snapshot, seen)}
    assert rows["ratings-v1-0"]["sync"] == "NOT CONNECTED"
    assert rows["ratings-v1-0"]["types"]["CDS"]["state"] == "NOT SENT"
    assert rows[seen[0]["instance"]]["sync"] == "NACK"
    assert sum(r["sync"] == "SYNCED" for r in rows.values()) == len(rows) - 2
