"""What a generator carries over from the previous snapshot's, and that it is exact:
every carried resource is byte for byte what a fresh translation gives."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ratline.api import load_text
from ratline.model.snapshot import Endpoint, MeshSnapshot, Resolution, Service, ServicePort
from ratline.settings import Settings
from ratline.translate.carry_over import Carry, carry_from, service_shape
from ratline.translate.generator import MeshGenerator
from tests.translate import mesh
from tests.translate.test_captured_sidecar import captured_snapshot

SETTINGS = Settings()
EXTERNAL = "api.partner.example"

READ_BY_CARRY_FROM = {
    "mesh_config",
    "services",
    "virtual_services",
    "destination_rules",
    "gateways",
    "extra",
    "model_findings",
    "config_version",
}
NOT_READ_BY_TRANSLATION = {"version", "service_entries", "gateway_api_status"}
"""`version` names the snapshot; translation reads ServiceEntries as `services` only; the
Gateway API statuses are the admin API's."""
COMPARED_PER_PROXY_AND_SERVICE = {"instances"}


def _entry(address: str, port: int = 443) -> Service:
    endpoints = tuple(
        Endpoint(address=a, port=port, namespace="default", instance=f"partner-{a}")
        for a in (address, "10.9.0.2")
    )
    return Service(
        hostname=EXTERNAL,
        namespace="default",
        name=EXTERNAL,
        ports=(ServicePort("https", port, "TLS"),),
        resolution=Resolution.EDS,
        mesh_external=True,
        endpoints={port: endpoints},
        origin="ServiceEntry",
    )


def _snapshot(config_version: str, **changes: Any) -> MeshSnapshot:
    base = mesh.snapshot()
    changes.setdefault("services", {**base.services, EXTERNAL: _entry("10.9.0.1")})
    return dataclasses.replace(base, config_version=config_version, **changes)


def _bytes(generator: MeshGenerator) -> dict[str, dict[str, list[bytes]]]:
    out = {}
    for node in sorted(generator.snapshot.instances):
        found = generator.protos_for(node)
        assert found is not None
        out[node] = {
            kind: [m.SerializeToString(deterministic=True) for m in messages]
            for kind, messages in found.by_type().items()
        }
    return out


def _findings(generator: MeshGenerator) -> list[str]:
    return sorted(str(m) for m in generator.messages)


def _check_exact(first: MeshGenerator, changed: MeshSnapshot) -> MeshGenerator:
    _bytes(first)
    carried = MeshGenerator(changed, SETTINGS, previous=first)
    fresh = MeshGenerator(changed, SETTINGS)
    assert _bytes(carried) == _bytes(fresh)
    assert _findings(carried) == _findings(fresh)
    return carried


def test_a_service_entry_endpoint_edit_carries_everything_else_over() -> None:
    first = MeshGenerator(_snapshot("c1"), SETTINGS)
    before = first.protos_for(mesh.node("reviews-v1-0"))
    services = {**first.snapshot.services, EXTERNAL: _entry("10.9.0.7")}
    changed = _snapshot("c2", services=services)
    assert carry_from(first.snapshot, changed) is Carry.ALL
    carried = _check_exact(first, changed)
    after = carried.protos_for(mesh.node("reviews-v1-0"))
    assert before is not None and after is not None
    assert after.listeners is before.listeners  # its own resources: carried over
    assert after.routes is before.routes
    reviews = changed.services["reviews.default.svc.cluster.local"]
    assert carried.service_outbound(reviews) is first.service_outbound(reviews)
    assert carried.service_outbound(changed.services[EXTERNAL]) is not first.service_outbound(
        first.snapshot.services[EXTERNAL]
    )


def test_a_virtual_service_edit_carries_the_clusters_over_and_translates_routes() -> None:
    first = MeshGenerator(_snapshot("c1"), SETTINGS)
    edited = load_text(
        mesh.CONFIG.replace("weight: 80", "weight: 70", 1).replace("weight: 20", "weight: 30", 1),
        "test.yaml",
    )
    edited.raise_for_errors()
    virtual_services = tuple(r for r in edited.resources if r.kind == "VirtualService")
    assert virtual_services != first.snapshot.virtual_services
    changed = _snapshot("c2", virtual_services=virtual_services)
    assert carry_from(first.snapshot, changed) is Carry.OUTBOUND
    carried = _check_exact(first, changed)
    reviews = changed.services["reviews.default.svc.cluster.local"]
    assert carried.service_outbound(reviews) is first.service_outbound(reviews)
    node = mesh.node("productpage-v1-0")
    before, after = first.protos_for(node), carried.protos_for(node)
    assert before is not None and after is not None
    assert after.routes is not before.routes


def test_a_virtual_service_edit_translates_a_captured_sidecar_again() -> None:
    """A captured sidecar's per-service hand-off listeners carry routes of their own, so a
    VirtualService edit is not carried over for it (found when the jason task stayed on v1
    through the captured path)."""
    snapshot: Any = captured_snapshot()
    first = MeshGenerator(snapshot, SETTINGS)
    edited = load_text(
        mesh.CONFIG.replace("weight: 80", "weight: 70", 1).replace("weight: 20", "weight: 30", 1),
        "test.yaml",
    )
    edited.raise_for_errors()
    virtual_services = tuple(r for r in edited.resources if r.kind == "VirtualService")
    changed = dataclasses.replace(snapshot, config_version="c2", virtual_services=virtual_services)
    assert carry_from(first.snapshot, changed) is Carry.OUTBOUND
    carried = _check_exact(first, changed)
    node = mesh.node("productpage-v1-0")
    before, after = first.protos_for(node), carried.protos_for(node)
    assert before is not None and after is not None and after.routes != before.routes


def test_the_same_content_under_a_new_config_version_carries_everything() -> None:
    first = MeshGenerator(_snapshot("c1"), SETTINGS)
    assert carry_from(first.snapshot, _snapshot("c2")) is Carry.ALL
    _check_exact(first, _snapshot("c2"))


@pytest.mark.parametrize(
    "change",
    ["destination_rules", "gateways", "extra", "mesh_config", "service_port", "new_service"],
)
def test_any_other_change_carries_nothing(change: str) -> None:
    first = MeshGenerator(_snapshot("c1"), SETTINGS)
    base = first.snapshot
    changes: dict[str, Any]
    if change == "destination_rules":
        changes = {"destination_rules": base.destination_rules[1:]}
    elif change == "gateways":
        changes = {"gateways": ()}
    elif change == "extra":
        pa = load_text(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            "metadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n",
            "pa.yaml",
        ).resources
        changes = {"extra": {"PeerAuthentication": tuple(pa)}}
    elif change == "mesh_config":
        changes = {"mesh_config": base.mesh_config.model_copy(update={"trust_domain": "x.org"})}
    elif change == "service_port":
        changes = {"services": {**base.services, EXTERNAL: _entry("10.9.0.1", port=8443)}}
    else:
        extra_service = dataclasses.replace(_entry("10.9.0.1"), hostname="b.example", name="b")
        changes = {"services": {**base.services, "b.example": extra_service}}
    changed = _snapshot("c2", **changes)
    assert carry_from(base, changed) is Carry.NOTHING
    _check_exact(first, changed)


def test_a_proxy_whose_view_in_the_services_changed_is_translated_again() -> None:
    base = _snapshot("c1")
    ratings = base.services["ratings.default.svc.cluster.local"]
    alias = Service(
        hostname="ratings-alias.example",
        namespace="default",
        name="ratings-alias.example",
        ports=ratings.ports,
        endpoints=ratings.endpoints,
        origin="ServiceEntry",
    )
    # Before, the alias's endpoint names no proxy; after, it is ratings-v1-0 (say, a
    # ServiceEntry now selecting it), whose inbound listener then serves the alias too.
    first = MeshGenerator(
        _snapshot("c1", services={**base.services, alias.hostname: _alias(alias)}), SETTINGS
    )
    changed = _snapshot("c2", services={**base.services, alias.hostname: alias})
    assert carry_from(first.snapshot, changed) is Carry.ALL
    node, untouched = mesh.node("ratings-v1-0"), mesh.node("details-v1-0")
    before, before_untouched = first.protos_for(node), first.protos_for(untouched)
    carried = _check_exact(first, changed)
    after, after_untouched = carried.protos_for(node), carried.protos_for(untouched)
    assert before is not None and after is not None
    assert before_untouched is not None and after_untouched is not None
    assert after.listeners is not before.listeners
    assert after_untouched.listeners is before_untouched.listeners


def _alias(service: Service) -> Service:
    """The same service shape with endpoints that name no proxy."""
    port = service.ports[0].port
    return dataclasses.replace(
        service,
        endpoints={port: (Endpoint(address="10.8.0.1", port=port, namespace="default"),)},
    )


def test_the_comparison_covers_every_snapshot_field() -> None:
    """A new snapshot field must be added to `carry_from` (or named here with a reason)."""
    fields = {f.name for f in dataclasses.fields(MeshSnapshot)}
    assert fields == READ_BY_CARRY_FROM | NOT_READ_BY_TRANSLATION | COMPARED_PER_PROXY_AND_SERVICE
    shape_fields = {f.name for f in dataclasses.fields(Service)} - {"endpoints"}
    assert len(service_shape(_entry("10.9.0.1"))) == len(shape_fields)
