"""Locality load balancing: workloads' localities, priorities and weights per client."""

from __future__ import annotations

from dataclasses import replace

from ratline.api.loader import load_text
from ratline.model.services import locality_of
from ratline.model.snapshot import Endpoint
from ratline.settings import Settings
from ratline.translate.endpoints import load_assignment
from ratline.translate.generator import MeshGenerator
from ratline.translate.locality import ClientLocality, locality_matches, localize
from tests.translate import mesh

REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"


def test_locality_from_labels() -> None:
    assert locality_of({REGION: "us-east", ZONE: "a"}) == "us-east/a"
    labels = {REGION: "r", ZONE: "z", "topology.istio.io/subzone": "s"}
    assert locality_of(labels) == "r/z/s"
    assert locality_of({"istio-locality": "r.z"}) == "r/z"
    assert locality_of({}) == ""
    assert locality_matches("us-east/a/x", "us-east/*")
    assert locality_matches("us-east/a", "us-east")
    assert not locality_matches("us-west/a", "us-east/*")


def _assignment() -> object:
    endpoints = [
        Endpoint("127.0.0.1", 1, labels={"v": "1"}, locality="r1/z1"),
        Endpoint("127.0.0.1", 2, labels={"v": "2"}, locality="r1/z2"),
        Endpoint("127.0.0.1", 3, labels={"v": "1"}, locality="r2/z1"),
        Endpoint("127.0.0.1", 4, labels={"v": "1"}, locality="r3/z1"),
    ]
    return load_assignment("c", endpoints), {(e.address, e.port): e.labels for e in endpoints}


def _setting(yaml: str) -> object:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
        "spec:\n  host: d\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting: " + yaml
    )
    loaded = load_text(text, "d.yaml")
    loaded.raise_for_errors()
    return loaded.resources[0].spec.traffic_policy.load_balancer.locality_lb_setting


def _priorities(assignment: object) -> dict[int, int]:
    return {
        lb.endpoint.address.socket_address.port_value: group.priority
        for group in assignment.endpoints  # type: ignore[attr-defined]
        for lb in group.lb_endpoints
    }


def test_failover_by_closeness_and_failover_rules() -> None:
    assignment, labels = _assignment()
    outlier = object()
    out = localize(assignment, _setting("{}"), outlier, ClientLocality("r1/z1"), labels)
    assert _priorities(out) == {1: 0, 2: 1, 3: 2, 4: 2}
    setting = _setting("{failover: [{from: r1, to: r3}]}")
    out = localize(assignment, setting, outlier, ClientLocality("r1/z1"), labels)
    assert _priorities(out) == {1: 0, 2: 1, 4: 2, 3: 3}
    # without outlier detection Envoy never fails over: the assignment stays shared
    assert localize(assignment, setting, None, ClientLocality("r1/z1"), labels) is assignment


def test_failover_priority_labels() -> None:
    assignment, labels = _assignment()
    setting = _setting("{failoverPriority: [v]}")
    client = ClientLocality("r9", frozenset({("v", "2")}))
    out = localize(assignment, setting, object(), client, labels)
    assert _priorities(out) == {2: 0, 1: 1, 3: 1, 4: 1}


def test_distribute_weights_localities_for_matching_clients() -> None:
    assignment, labels = _assignment()
    setting = _setting('{distribute: [{from: "r1/*", to: {"r1/z1": 70, "r2/*": 30}}]}')
    out = localize(assignment, setting, None, ClientLocality("r1/z2"), labels)
    weights = {
        g.lb_endpoints[0].endpoint.address.socket_address.port_value: g.load_balancing_weight.value
        for g in out.endpoints
        if g.lb_endpoints
    }
    assert weights == {1: 70, 3: 30}  # r1/z2 and r3 get nothing
    other = localize(assignment, setting, None, ClientLocality("r2/z1"), labels)
    assert len([g for g in other.endpoints if g.lb_endpoints]) == 4  # no rule for r2 clients


def test_generator_gives_clients_their_own_priorities() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
"""
    snapshot = mesh.snapshot(config)
    near, far = ("us-east", "a"), ("us-west", "b")
    instances = dict(snapshot.instances)
    for node_id, instance in snapshot.instances.items():
        where = near if instance.name in ("reviews-v1-0", "ratings-v1-0") else far
        instances[node_id] = replace(
            instance, labels={**instance.labels, REGION: where[0], ZONE: where[1]}
        )
    services = dict(snapshot.services)
    ratings = services["ratings.default.svc.cluster.local"]
    far_copy = replace(ratings.endpoints[9080][0], port=1, locality="us-west/b")
    near_one = replace(ratings.endpoints[9080][0], locality="us-east/a")
    services[ratings.hostname] = replace(ratings, endpoints={9080: (near_one, far_copy)})
    snapshot = replace(snapshot, instances=instances, services=services)
    generator = MeshGenerator(snapshot, Settings())

    def ratings_priorities(name: str) -> dict[int, int]:
        resources = generator.protos_for(mesh.node(name))
        assert resources is not None
        [assignment] = [
            a for a in resources.endpoints if a.cluster_name == f"outbound|9080||{ratings.hostname}"
        ]
        return _priorities(assignment)

    near_port = near_one.port
    # other regions: Istio's priority 3, renumbered without gaps
    assert ratings_priorities("reviews-v1-0") == {near_port: 0, 1: 1}
    assert ratings_priorities("reviews-v2-0") == {1: 0, near_port: 1}
    # details has no locality-dependent rule: one shared assignment for every client
    first = generator.protos_for(mesh.node("reviews-v1-0"))
    second = generator.protos_for(mesh.node("reviews-v2-0"))
    assert first is not None and second is not None
    pick = "outbound|9080||details.default.svc.cluster.local"
    a = next(x for x in first.endpoints if x.cluster_name == pick)
    b = next(x for x in second.endpoints if x.cluster_name == pick)
    assert a is b
