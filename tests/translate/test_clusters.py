"""Outbound, inbound and special clusters, with DestinationRule traffic policy."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2

from ratline.api.schemas.meshconfig import MeshConfig
from ratline.api.schemas.networking import OutlierDetection
from ratline.model.snapshot import Resolution
from ratline.translate.cluster_policy import apply_outlier_detection
from ratline.translate.clusters import inbound_clusters, outbound_clusters
from ratline.translate.common import Findings
from tests.translate import mesh

REVIEWS = "reviews.default.svc.cluster.local"


def _clusters(config: str = mesh.CONFIG) -> dict[str, cluster_pb2.Cluster]:
    return {c.name: c for c in outbound_clusters(mesh.snapshot(config), Findings())}


def test_one_cluster_per_port_and_subset_plus_special_ones() -> None:
    clusters = _clusters()
    assert {
        "BlackHoleCluster",
        "PassthroughCluster",
        f"outbound|9080||{REVIEWS}",
        f"outbound|9080|v1|{REVIEWS}",
        f"outbound|9080|v2|{REVIEWS}",
        f"outbound|9080|v3|{REVIEWS}",
        "outbound|9080||details.default.svc.cluster.local",
        "outbound|80||echo.other.svc.cluster.local",
        "outbound|80||httpbin.org",
    } <= set(clusters)
    assert "outbound|9080|v2|details.default.svc.cluster.local" not in clusters


def test_registry_services_use_eds_over_ads() -> None:
    cluster = _clusters()[f"outbound|9080|v1|{REVIEWS}"]
    assert cluster.type == cluster_pb2.Cluster.EDS
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert not cluster.HasField("load_assignment")


def test_load_balancer_from_destination_rule_with_subset_override() -> None:
    clusters = _clusters()
    # Port 9080 has a port-level setting (a connection pool only): as in Istio it replaces
    # the rule's loadBalancer for that port, so RANDOM does not apply there.
    assert clusters[f"outbound|9080||{REVIEWS}"].lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert clusters[f"outbound|9080|v1|{REVIEWS}"].lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert clusters[f"outbound|9080|v2|{REVIEWS}"].lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    # no DestinationRule: Istio's default, LEAST_REQUEST
    details = clusters["outbound|9080||details.default.svc.cluster.local"]
    assert details.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST


def test_connect_timeout_default_and_port_level_connection_pool() -> None:
    clusters = _clusters()
    details = clusters["outbound|9080||details.default.svc.cluster.local"]
    assert details.connect_timeout.seconds == 10
    reviews = clusters[f"outbound|9080|v1|{REVIEWS}"]
    assert reviews.connect_timeout.seconds == 3
    assert reviews.circuit_breakers.thresholds[0].max_connections.value == 7
    assert details.circuit_breakers.thresholds[0].max_connections.value == 4_294_967_295


def test_outlier_detection_and_least_conn() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    outlierDetection: {consecutiveGatewayErrors: 3, interval: 5s, baseEjectionTime: 30s}
"""
    cluster = _clusters(config)["outbound|9080||details.default.svc.cluster.local"]
    assert cluster.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    detection = cluster.outlier_detection
    assert detection.consecutive_gateway_failure.value == 3
    assert detection.enforcing_consecutive_gateway_failure.value == 100
    # consecutive5xxErrors unset: Envoy's default (5, enforced), as Istio leaves it
    assert not detection.HasField("consecutive_5xx")
    assert not detection.HasField("enforcing_consecutive_5xx")
    assert detection.enforcing_success_rate.value == 0
    assert cluster.common_lb_config.healthy_panic_threshold.value == 0
    assert detection.interval.seconds == 5
    assert detection.base_ejection_time.seconds == 30


def test_consecutive_5xx_errors_are_enforced() -> None:
    cluster = cluster_pb2.Cluster()
    apply_outlier_detection(cluster, OutlierDetection(consecutive_5xx_errors=4))
    assert cluster.outlier_detection.consecutive_5xx.value == 4
    assert cluster.outlier_detection.enforcing_consecutive_5xx.value == 100


def test_consistent_hash_is_a_ring_hash() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
"""
    findings = Findings()
    clusters = {c.name: c for c in outbound_clusters(mesh.snapshot(config), findings)}
    details = clusters["outbound|9080||details.default.svc.cluster.local"]
    assert details.lb_policy == cluster_pb2.Cluster.RING_HASH
    assert details.ring_hash_lb_config.minimum_ring_size.value == 1024
    assert findings.messages == []


def test_dns_service_is_strict_dns_with_inline_endpoints() -> None:
    snapshot = mesh.snapshot()
    assert snapshot.services["httpbin.org"].resolution is Resolution.DNS
    cluster = _clusters()["outbound|80||httpbin.org"]
    assert cluster.type == cluster_pb2.Cluster.STRICT_DNS
    endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert endpoint.address.socket_address.address == "httpbin.org"
    assert endpoint.address.socket_address.port_value == 80


def test_passthrough_is_a_dynamic_forward_proxy_and_blackhole_has_no_endpoints() -> None:
    clusters = _clusters()
    passthrough = clusters["PassthroughCluster"]
    assert passthrough.cluster_type.name == "envoy.clusters.dynamic_forward_proxy"
    assert passthrough.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED
    blackhole = clusters["BlackHoleCluster"]
    assert blackhole.type == cluster_pb2.Cluster.STATIC
    assert len(blackhole.load_assignment.endpoints) == 0


def test_inbound_cluster_goes_to_the_app_port_on_loopback() -> None:
    instance = next(i for i in mesh.instances() if i.name == "reviews-v2-0")
    [cluster] = inbound_clusters(instance)
    assert cluster.name == "inbound|9080||"
    assert cluster.type == cluster_pb2.Cluster.STATIC
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert address.socket_address.address == "127.0.0.1"
    assert address.socket_address.port_value == instance.ports[0].app_port


def test_mesh_connect_timeout_is_the_default() -> None:
    mesh_config = MeshConfig.model_validate({"connectTimeout": "2s"})
    clusters = outbound_clusters(mesh.snapshot(mesh_config=mesh_config), Findings())
    details = next(c for c in clusters if c.name.endswith("details.default.svc.cluster.local"))
    assert details.connect_timeout.seconds == 2
