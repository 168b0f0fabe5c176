"""Load assignments: endpoints per port, filtered by subset labels, health kept."""

from __future__ import annotations

from envoy.config.core.v3 import health_check_pb2

from ratline.translate.endpoints import outbound_load_assignments
from tests.translate import mesh

REVIEWS = "reviews.default.svc.cluster.local"


def _ports(assignment: object) -> list[int]:
    return [
        e.endpoint.address.socket_address.port_value
        for group in assignment.endpoints  # type: ignore[attr-defined]
        for e in group.lb_endpoints
    ]


def test_subsets_hold_only_endpoints_with_their_labels() -> None:
    snapshot = mesh.snapshot()
    assignments = {a.cluster_name: a for a in outbound_load_assignments(snapshot)}
    endpoints = snapshot.services[REVIEWS].endpoints[9080]
    by_version = {e.labels["version"]: e.port for e in endpoints}
    assert sorted(_ports(assignments[f"outbound|9080||{REVIEWS}"])) == sorted(by_version.values())
    for version in ("v1", "v2", "v3"):
        assert _ports(assignments[f"outbound|9080|{version}|{REVIEWS}"]) == [by_version[version]]


def test_unhealthy_endpoints_are_marked() -> None:
    assignments = {a.cluster_name: a for a in outbound_load_assignments(mesh.snapshot())}
    [v3] = assignments[f"outbound|9080|v3|{REVIEWS}"].endpoints[0].lb_endpoints
    [v1] = assignments[f"outbound|9080|v1|{REVIEWS}"].endpoints[0].lb_endpoints
    assert v3.health_status == health_check_pb2.UNHEALTHY
    assert v1.health_status == health_check_pb2.HEALTHY


def test_dns_services_have_no_eds_assignment() -> None:
    names = {a.cluster_name for a in outbound_load_assignments(mesh.snapshot())}
    assert "outbound|80||httpbin.org" not in names
    assert "outbound|9080||ratings.default.svc.cluster.local" in names
