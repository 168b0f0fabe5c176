"""PackedConfig: the generator's messages packed once and layered on shared sets."""

from __future__ import annotations

from dataclasses import replace

from ratline.controlplane.config_source import PackedConfig
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from ratline.xds import types
from ratline.xds.resource_set import diff
from tests.translate import mesh

SETTINGS = Settings(envoy="envoy", bind_address="127.0.0.1")


def _config(
    version: str = "v1", previous: PackedConfig | None = None, **changes: object
) -> PackedConfig:
    snapshot = replace(mesh.snapshot(), version=version, config_version="c1", **changes)
    generator = MeshGenerator(
        snapshot, SETTINGS, previous=previous.generator if previous is not None else None
    )
    return PackedConfig(generator, previous=previous)


def test_resources_for_packs_every_resource_by_type_and_name() -> None:
    version, resources = _config().resources_for(mesh.node("reviews-v1-0")) or ("", {})
    assert version == "v1"
    clusters = resources[types.CLUSTER]
    assert clusters["inbound|9080||"].body.type_url == types.CLUSTER
    name = "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert resources[types.ENDPOINT][name].name == name
    assert set(resources[types.LISTENER]) == {"http_proxy", "inbound|9080||"}
    assert set(resources[types.ROUTE]) == {"http_proxy"}


def test_unknown_node_gets_nothing() -> None:
    assert _config().resources_for("sidecar~127.0.0.1~ghost.default~default.svc") is None


def test_proxies_share_one_base_set_and_one_packed_route() -> None:
    config = _config()
    _, a = config.resources_for(mesh.node("reviews-v1-0")) or ("", {})
    _, b = config.resources_for(mesh.node("ratings-v1-0")) or ("", {})
    assert a[types.CLUSTER].base is not None and a[types.CLUSTER].base is b[types.CLUSTER].base
    assert a[types.ENDPOINT].base is b[types.ENDPOINT].base
    assert a[types.ROUTE]["http_proxy"] is b[types.ROUTE]["http_proxy"]


def test_next_config_reuses_equal_bases_and_diffs_only_what_changed() -> None:
    first = _config()
    node = mesh.node("reviews-v1-0")
    _, before = first.resources_for(node) or ("", {})
    instances = dict(mesh.snapshot().instances)
    gone = mesh.node("ratings-v1-0")
    instances[gone] = replace(instances[gone], healthy=False)
    services = mesh.services(list(instances.values()))
    second = _config("v2", previous=first, instances=instances, services=services)
    _, after = second.resources_for(node) or ("", {})
    assert after[types.CLUSTER].base is before[types.CLUSTER].base  # no cluster changed
    assert after[types.LISTENER]["http_proxy"] is before[types.LISTENER]["http_proxy"]
    changes = diff(before[types.ENDPOINT], after[types.ENDPOINT])
    assert changes.changed == {
        "outbound|9080||ratings.default.svc.cluster.local",
        "outbound|9080|v1|ratings.default.svc.cluster.local",
    }
