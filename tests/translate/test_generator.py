"""The generator: per-proxy resources, listeners, sharing, packing for the xDS server."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from ratline.translate.proxy_resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
)
from ratline.xds import types
from tests.translate import mesh

SETTINGS = Settings(envoy="envoy", bind_address="127.0.0.1")


def _generator(**settings: object) -> MeshGenerator:
    from dataclasses import replace

    return MeshGenerator(mesh.snapshot(), replace(SETTINGS, **settings))


def _hcm(listener: listener_pb2.Listener) -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    return hcm


def test_type_urls_are_the_xds_servers() -> None:
    assert (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE) == (
        types.CLUSTER,
        types.ENDPOINT,
        types.LISTENER,
        types.ROUTE,
    )


def test_unknown_node_gets_nothing() -> None:
    assert _generator().protos_for("sidecar~127.0.0.1~ghost.default~default.svc") is None


def test_sidecar_listeners() -> None:
    instance = next(i for i in mesh.instances() if i.name == "reviews-v2-0")
    resources = _generator().protos_for(instance.node_id)
    assert resources is not None
    listeners = {lst.name: lst for lst in resources.listeners}
    assert set(listeners) == {"http_proxy", "inbound|9080||"}
    assert instance.sidecar is not None
    proxy = listeners["http_proxy"]
    assert proxy.address.socket_address.port_value == instance.sidecar.outbound_port
    assert proxy.address.socket_address.address == "127.0.0.1"
    hcm = _hcm(proxy)
    assert hcm.rds.route_config_name == "http_proxy"
    assert hcm.rds.config_source.HasField("ads")
    assert [f.name for f in hcm.http_filters] == [
        "envoy.filters.http.header_to_metadata",
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.dynamic_forward_proxy",
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]
    inbound = listeners["inbound|9080||"]
    assert inbound.address.socket_address.port_value == instance.ports[0].inbound_port
    route = _hcm(inbound).route_config.virtual_hosts[0].routes[0]
    assert route.route.cluster == "inbound|9080||"
    assert route.route.timeout.seconds == 0
    assert [r.name for r in resources.routes] == ["http_proxy"]
    assert "inbound|9080||" in {c.name for c in resources.clusters}


def test_gateway_listens_on_the_offset_port_with_its_route_config() -> None:
    resources = _generator(bind_address="0.0.0.0").protos_for(mesh.node("istio-ingressgateway-0"))
    assert resources is not None
    [listener] = resources.listeners
    assert listener.name == "0.0.0.0_8080"
    assert listener.address.socket_address.port_value == 8080
    assert listener.address.socket_address.address == "0.0.0.0"
    assert _hcm(listener).rds.route_config_name == "http.8080"
    assert [r.name for r in resources.routes] == ["http.8080"]
    other = _generator(gateway_port_offset=10000).protos_for(mesh.node("istio-ingressgateway-0"))
    assert other is not None and other.listeners[0].name == "0.0.0.0_10080"


def test_a_gateway_in_its_own_network_namespace_listens_on_all_addresses() -> None:
    from dataclasses import replace

    snap = mesh.snapshot()
    node = mesh.node("istio-ingressgateway-0")
    pod = replace(snap.instances[node], address="10.245.0.9", listen_address="0.0.0.0")
    others = {k: v for k, v in snap.instances.items() if k != node}
    snap = replace(snap, instances={**others, pod.node_id: pod})
    resources = MeshGenerator(snap, SETTINGS).protos_for(pod.node_id)
    assert resources is not None
    [listener] = resources.listeners
    assert listener.address.socket_address.address == "0.0.0.0"  # SETTINGS bind 127.0.0.1


def test_work_is_shared_between_proxies() -> None:
    generator = _generator()
    a = generator.protos_for(mesh.node("reviews-v1-0"))
    b = generator.protos_for(mesh.node("ratings-v1-0"))
    c = generator.protos_for(mesh.node("echo-v1-0"))
    assert a is not None and b is not None and c is not None
    assert a.routes[0] is b.routes[0]  # same namespace: one route configuration
    assert a.routes[0] is not c.routes[0]
    assert a.endpoints is b.endpoints
    assert all(x is y for x, y in zip(a.clusters[:-1], c.clusters[:-1], strict=True))
    assert a.shared[CLUSTER_TYPE] is c.shared[CLUSTER_TYPE]
    assert a.clusters[: len(a.shared[CLUSTER_TYPE])] == a.shared[CLUSTER_TYPE]


def test_findings_are_collected_once() -> None:
    generator = _generator()
    for instance in mesh.instances():
        generator.protos_for(instance.node_id)
    texts = [str(m) for m in generator.messages]
    assert len(texts) == len(set(texts))
    assert any("no Secret 'cert' with a certificate and key" in t for t in texts)


def test_source_labels_give_proxies_their_own_routes() -> None:
    config = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match:
    - sourceLabels: {app: reviews, version: v2}
    route:
    - destination: {host: ratings, subset: v1}
  - route:
    - destination: {host: ratings}
"""
    generator = MeshGenerator(mesh.snapshot(config), SETTINGS)
    routes = {}
    for name in ("reviews-v1-0", "reviews-v2-0"):
        resources = generator.protos_for(mesh.node(name))
        assert resources is not None
        [config_proto] = resources.routes
        host = next(h for h in config_proto.virtual_hosts if h.name.startswith("ratings."))
        routes[name] = [r.route.cluster for r in host.routes]
    ratings = "ratings.default.svc.cluster.local"
    assert routes["reviews-v1-0"] == [f"outbound|9080||{ratings}"]
    # For reviews-v2 the first rule is a catch-all (its source labels hold): as in Istio,
    # nothing after it is translated.
    assert routes["reviews-v2-0"] == [f"outbound|9080|v1|{ratings}"]


def _snapshot_with(instances: list, config_version: str, version: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    base = mesh.snapshot()
    return replace(
        base,
        version=version,
        config_version=config_version,
        instances={i.node_id: i for i in instances},
    )


def test_unchanged_proxies_reuse_their_own_resources_when_only_instances_changed() -> None:
    from dataclasses import replace

    instances = list(mesh.instances())
    first = MeshGenerator(_snapshot_with(instances, "c1", "v1"), SETTINGS)
    keep, change = mesh.node("reviews-v1-0"), mesh.node("ratings-v1-0")
    before_keep, before_change = first.protos_for(keep), first.protos_for(change)
    assert before_keep is not None and before_change is not None
    changed = [replace(i, healthy=False) if i.node_id == change else i for i in instances]
    second = MeshGenerator(_snapshot_with(changed, "c1", "v2"), SETTINGS, previous=first)
    after_keep, after_change = second.protos_for(keep), second.protos_for(change)
    assert after_keep is not None and after_change is not None
    assert after_keep.listeners is before_keep.listeners
    assert after_change.listeners is not before_change.listeners
    assert after_keep.shared[CLUSTER_TYPE] is second.outbound()[0]
    fresh = MeshGenerator(_snapshot_with(changed, "c1", "v2"), SETTINGS).protos_for(keep)
    assert fresh is not None
    for kind in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE):
        assert [m.SerializeToString(deterministic=True) for m in after_keep.by_type()[kind]] == [
            m.SerializeToString(deterministic=True) for m in fresh.by_type()[kind]
        ]


def test_a_config_change_translates_every_proxy_afresh() -> None:
    from dataclasses import replace

    instances = list(mesh.instances())
    first = MeshGenerator(_snapshot_with(instances, "c1", "v1"), SETTINGS)
    node = mesh.node("reviews-v1-0")
    before = first.protos_for(node)
    changed = _snapshot_with(instances, "c2", "v2")
    changed = replace(changed, destination_rules=changed.destination_rules[1:])
    second = MeshGenerator(changed, SETTINGS, previous=first)
    after = second.protos_for(node)
    assert before is not None and after is not None
    assert after.listeners is not before.listeners


def test_unchanged_services_keep_their_translation_across_snapshots() -> None:
    from dataclasses import replace

    instances = list(mesh.instances())
    first = MeshGenerator(_snapshot_with(instances, "c1", "v1"), SETTINGS)
    first.outbound()
    down = mesh.node("ratings-v1-0")
    changed = [replace(i, healthy=False) if i.node_id == down else i for i in instances]
    snapshot = replace(_snapshot_with(changed, "c1", "v2"), services=mesh.services(changed))
    second = MeshGenerator(snapshot, SETTINGS, previous=first)
    reviews = "reviews.default.svc.cluster.local"
    ratings = "ratings.default.svc.cluster.local"
    assert second.service_outbound(snapshot.services[reviews]) is first.service_outbound(
        first.snapshot.services[reviews]
    )
    assert second.service_outbound(snapshot.services[ratings]) is not first.service_outbound(
        first.snapshot.services[ratings]
    )
    fresh = MeshGenerator(snapshot, SETTINGS).outbound()
    for reused, built in zip(second.outbound(), fresh, strict=True):
        assert [m.SerializeToString(deterministic=True) for m in reused] == [
            m.SerializeToString(deterministic=True) for m in built
        ]


def test_route_configuration_is_carried_over_when_only_instances_changed() -> None:
    from dataclasses import replace

    instances = list(mesh.instances())
    first = MeshGenerator(_snapshot_with(instances, "c1", "v1"), SETTINGS)
    node = mesh.node("reviews-v1-0")
    before = first.protos_for(node)
    changed = [replace(i, healthy=False) if i.node_id == node else i for i in instances]
    second = MeshGenerator(_snapshot_with(changed, "c1", "v2"), SETTINGS, previous=first)
    after = second.protos_for(node)  # its own instance changed: translated again...
    assert before is not None and after is not None
    assert after.listeners is not before.listeners
    assert after.routes[0] is before.routes[0]  # ...but the namespace's routes are shared
