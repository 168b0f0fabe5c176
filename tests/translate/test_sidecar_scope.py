"""The Sidecar resource's egress scope: which Sidecar applies, host patterns, and what a
scoped proxy gets from the generator (clusters, load assignments, virtual hosts)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ratline.api.loader import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from ratline.settings import Settings
from ratline.translate import names
from ratline.translate.common import CONFLICT, DEFAULTED, NOT_SUPPORTED, UNRESOLVED, Findings
from ratline.translate.generator import MeshGenerator
from ratline.translate.sidecar_scope import EVERYTHING, EgressScope, SidecarIndex, egress_scope
from tests.translate import mesh

SETTINGS = Settings(envoy="envoy", bind_address="127.0.0.1")

REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"
DETAILS = "details.default.svc.cluster.local"
ECHO = "echo.other.svc.cluster.local"


def sidecar(
    name: str,
    hosts: list[str] | None = None,
    namespace: str = "default",
    selector: dict[str, str] | None = None,
    extra: str = "",
) -> str:
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: Sidecar",
        f"metadata: {{name: {name}, namespace: {namespace}}}",
        "spec:",
    ]
    if selector:
        labels = ", ".join(f"{k}: {v}" for k, v in selector.items())
        lines.append(f"  workloadSelector: {{labels: {{{labels}}}}}")
    if hosts is not None:
        lines.append(f"  egress: [{{hosts: [{', '.join(repr(h) for h in hosts)}]}}]")
    return "\n".join(lines) + "\n" + extra + "---\n"


def scoped_snapshot(sidecars: str, config: str = mesh.CONFIG, **mesh_config: Any) -> MeshSnapshot:
    base = mesh.snapshot(config, MeshConfig(**mesh_config) if mesh_config else None)
    loaded = load_text(sidecars, "sidecars.yaml")
    loaded.raise_for_errors()
    return replace(base, extra={"Sidecar": tuple(loaded.resources)})


def instance(name: str) -> WorkloadInstance:
    return next(i for i in mesh.instances() if i.name == name)


def visible(scope: EgressScope, snapshot: MeshSnapshot) -> set[str]:
    return {h for h, s in snapshot.services.items() if scope.sees(s)}


def applied(snapshot: MeshSnapshot, name: str) -> str | None:
    chosen = SidecarIndex(snapshot).sidecar_for(instance(name))
    return chosen.name if chosen is not None else None


# ---- which Sidecar applies ------------------------------------------------------------------


def test_without_sidecars_every_proxy_sees_everything() -> None:
    snapshot = mesh.snapshot()
    scope = egress_scope(snapshot, instance("reviews-v1-0"))
    assert scope is EVERYTHING
    assert visible(scope, snapshot) == set(snapshot.services)


def test_selector_beats_namespace_default_beats_root_default() -> None:
    config = (
        sidecar("for-reviews", ["./*"], selector={"app": "reviews"})
        + sidecar("default", ["./*"])
        + sidecar("mesh-default", ["./*"], namespace="istio-system")
        + sidecar("mesh-selecting", ["./*"], namespace="istio-system", selector={"app": "echo"})
    )
    snapshot = scoped_snapshot(config)
    assert applied(snapshot, "reviews-v2-0") == "for-reviews"
    assert applied(snapshot, "ratings-v1-0") == "default"
    # A root-namespace Sidecar with a selector applies only in the root namespace.
    assert applied(snapshot, "echo-v1-0") == "mesh-default"
    # Gateways are never scoped.
    assert applied(snapshot, "istio-ingressgateway-0") is None
    gateway = egress_scope(snapshot, instance("istio-ingressgateway-0"))
    assert gateway is EVERYTHING


def test_a_selector_that_does_not_match_falls_through_and_other_namespaces_do_not_count() -> None:
    config = sidecar("for-ratings", ["./*"], selector={"app": "ratings"}) + sidecar(
        "elsewhere", ["~/*"], namespace="other"
    )
    snapshot = scoped_snapshot(config)
    assert applied(snapshot, "ratings-v1-0") == "for-ratings"
    assert applied(snapshot, "reviews-v1-0") is None
    assert egress_scope(snapshot, instance("reviews-v1-0")) is EVERYTHING


def test_root_namespace_comes_from_mesh_config() -> None:
    config = sidecar("mesh-default", ["./*"], namespace="mesh-root")
    assert applied(scoped_snapshot(config), "reviews-v1-0") is None
    assert applied(scoped_snapshot(config, rootNamespace="mesh-root"), "reviews-v1-0") == (
        "mesh-default"
    )


def test_ties_go_to_the_oldest_then_by_name_and_the_loser_is_reported() -> None:
    snapshot = scoped_snapshot(sidecar("b", ["./*"]) + sidecar("a", ["~/*"]))
    findings = Findings()
    chosen = SidecarIndex(snapshot, findings).sidecar_for(instance("reviews-v1-0"))
    assert chosen is not None and chosen.name == "a"
    [conflict] = [m for m in findings.messages if m.code == CONFLICT]
    assert conflict.resource is not None and conflict.resource.name == "b"
    older_b = sidecar("b", ["./*"]).replace(
        "{name: b,", "{name: b, creationTimestamp: '2020-01-01T00:00:00Z',"
    )
    newer_a = sidecar("a", ["~/*"]).replace(
        "{name: a,", "{name: a, creationTimestamp: '2024-01-01T00:00:00Z',"
    )
    assert applied(scoped_snapshot(older_b + newer_a), "reviews-v1-0") == "b"


# ---- host patterns --------------------------------------------------------------------------


def test_dot_is_the_proxys_namespace_even_for_a_root_sidecar() -> None:
    snapshot = scoped_snapshot(sidecar("mesh-default", ["./*"], namespace="istio-system"))
    in_default = egress_scope(snapshot, instance("reviews-v1-0"))
    in_other = egress_scope(snapshot, instance("echo-v1-0"))
    assert visible(in_default, snapshot) == {REVIEWS, RATINGS, DETAILS, "httpbin.org",
                                             "productpage.default.svc.cluster.local"}
    assert visible(in_other, snapshot) == {ECHO}


def test_namespace_star_tilde_fqdn_and_wildcard_dns_names() -> None:
    cases: list[tuple[list[str], set[str]]] = [
        (["*/*"], set(mesh.snapshot().services)),
        (["~/*"], set()),
        (["other/*"], {ECHO}),
        (["*/httpbin.org"], {"httpbin.org"}),
        (["default/httpbin.org"], {"httpbin.org"}),  # a ServiceEntry's namespace is its own
        (["other/httpbin.org"], set()),
        ([f"./{DETAILS}"], {DETAILS}),
        (["*/*.other.svc.cluster.local"], {ECHO}),
        (["*/*.svc.cluster.local"], {h for h in mesh.snapshot().services if h.endswith(".local")}),
        (["./details"], set()),  # short names match nothing, as in Istio
    ]
    for hosts, want in cases:
        snapshot = scoped_snapshot(sidecar("default", hosts), config="")
        scope = egress_scope(snapshot, instance("productpage-v1-0"))
        assert visible(scope, snapshot) == want, hosts


def test_hosts_of_every_egress_listener_are_unioned() -> None:
    config = sidecar("default", ["other/*"]).replace(
        "]}]\n", f"]}}, {{hosts: ['./{DETAILS}']}}]\n", 1
    )
    snapshot = scoped_snapshot(config, config="")
    assert visible(egress_scope(snapshot, instance("productpage-v1-0")), snapshot) == {
        ECHO,
        DETAILS,
    }


def test_unresolvable_and_namespace_less_hosts_are_reported() -> None:
    snapshot = scoped_snapshot(sidecar("default", ["./details", "httpbin.org"]), config="")
    findings = Findings()
    scope = egress_scope(snapshot, instance("productpage-v1-0"), findings)
    assert visible(scope, snapshot) == {"httpbin.org"}  # a bare host reads as */host
    by_code = {m.code: m for m in findings.messages}
    assert "dnsName must be a FQDN" in by_code[UNRESOLVED].message
    assert by_code[UNRESOLVED].field == "spec.egress[0].hosts[0]"
    assert by_code[DEFAULTED].field == "spec.egress[0].hosts[1]"


DETAILS_TO_RATINGS = mesh.CONFIG + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: ratings}
    mirror: {host: echo.other.svc.cluster.local}
"""
"""mesh.CONFIG plus a VirtualService for `details` sending to `ratings`, mirroring to `echo`."""


def test_destinations_of_visible_virtual_services_are_visible_too() -> None:
    config = DETAILS_TO_RATINGS
    snapshot = scoped_snapshot(sidecar("default", [f"./{DETAILS}"]), config=config)
    scope = egress_scope(snapshot, instance("productpage-v1-0"))
    assert visible(scope, snapshot) == {DETAILS, RATINGS, ECHO}
    # Only VirtualServices for visible hosts count.
    snapshot = scoped_snapshot(sidecar("default", [f"./{REVIEWS}"]), config=config)
    assert visible(egress_scope(snapshot, instance("productpage-v1-0")), snapshot) == {REVIEWS}


def test_export_to_still_hides_services_from_scoped_proxies() -> None:
    snapshot = scoped_snapshot(sidecar("default", ["*/*"]), config="")
    services = dict(snapshot.services)
    services[ECHO] = replace(services[ECHO], export_to=(".",))
    snapshot = replace(snapshot, services=services)
    assert ECHO not in visible(egress_scope(snapshot, instance("productpage-v1-0")), snapshot)


def test_untranslated_fields_are_reported_as_not_supported() -> None:
    extra = (
        "  ingress: [{port: {number: 9080, protocol: HTTP, name: http}, "
        "defaultEndpoint: '127.0.0.1:9080'}]\n"
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
    )
    config = sidecar("default", ["./*"], extra=extra).replace(
        "egress: [{hosts", "egress: [{port: {number: 80, protocol: HTTP, name: http}, hosts"
    )
    snapshot = scoped_snapshot(config, config="")
    findings = Findings()
    scope = egress_scope(snapshot, instance("productpage-v1-0"), findings)
    assert scope.outbound_mode == "REGISTRY_ONLY"
    fields = {m.field for m in findings.messages if m.code == NOT_SUPPORTED}
    assert fields == {"spec.ingress", "spec.egress[0].port"}


# ---- what the generator gives a scoped proxy ------------------------------------------------


def _generator(snapshot: MeshSnapshot) -> MeshGenerator[Any]:
    return MeshGenerator(snapshot, SETTINGS)


def test_scoped_proxies_get_only_what_they_see_and_share_it() -> None:
    config = sidecar("default", [f"./{RATINGS}"], extra="  outboundTrafficPolicy: "
                     "{mode: REGISTRY_ONLY}\n")
    generator = _generator(scoped_snapshot(config))
    a = generator.protos_for(mesh.node("reviews-v1-0"))
    b = generator.protos_for(mesh.node("details-v1-0"))
    unscoped = generator.protos_for(mesh.node("echo-v1-0"))
    gateway = generator.protos_for(mesh.node("istio-ingressgateway-0"))
    assert a is not None and b is not None and unscoped is not None and gateway is not None
    outbound = {c.name for c in a.clusters if c.name.startswith("outbound|")}
    assert outbound == {
        names.outbound_cluster(9080, "", RATINGS),
        names.outbound_cluster(9080, "v1", RATINGS),
    }
    assert {e.cluster_name for e in a.endpoints} == outbound
    assert {names.BLACKHOLE_CLUSTER, names.PASSTHROUGH_CLUSTER} <= {c.name for c in a.clusters}
    hosts = [vh.name for vh in a.routes[0].virtual_hosts]
    assert hosts == [names.virtual_host(RATINGS, 9080), names.BLOCK_ALL_VHOST]
    # Same scope: the very same shared tuples and route configuration.
    shared_a, endpoints_a = generator.outbound(generator.egress_scope(instance("reviews-v1-0")))
    assert a.endpoints is b.endpoints is endpoints_a
    assert all(x is y for x, y in zip(shared_a, a.clusters, strict=False))
    assert all(x is y for x, y in zip(shared_a, b.clusters, strict=False))
    assert a.routes[0] is b.routes[0]
    # No Sidecar in `other`: everything, shared with the gateway.
    assert unscoped.endpoints is gateway.endpoints
    every = {c.name for c in unscoped.clusters if c.name.startswith("outbound|")}
    assert names.outbound_cluster(9080, "v2", REVIEWS) in every and outbound < every


def test_routes_to_destinations_the_scope_pulls_in_have_their_clusters() -> None:
    snapshot = scoped_snapshot(sidecar("default", [f"./{DETAILS}"]), config=DETAILS_TO_RATINGS)
    resources = _generator(snapshot).protos_for(mesh.node("productpage-v1-0"))
    assert resources is not None
    cluster_names = {c.name for c in resources.clusters}
    routed = set()
    for vh in resources.routes[0].virtual_hosts:
        for route in vh.routes:
            action = route.route
            routed.add(action.cluster)
            routed.update(w.name for w in action.weighted_clusters.clusters)
            routed.update(m.cluster for m in action.request_mirror_policies)
    routed.discard("")
    assert names.outbound_cluster(9080, "", RATINGS) in routed
    assert names.outbound_cluster(80, "", ECHO) in routed
    assert routed <= cluster_names
    assert not any(REVIEWS in c for c in cluster_names)


def test_sidecar_outbound_policy_overrides_the_mesh_one_per_scope() -> None:
    config = sidecar("default", ["./*"], extra="  outboundTrafficPolicy: {mode: ALLOW_ANY}\n")
    snapshot = scoped_snapshot(config, outboundTrafficPolicy={"mode": "REGISTRY_ONLY"})
    generator = _generator(snapshot)
    scoped = generator.protos_for(mesh.node("reviews-v1-0"))
    unscoped = generator.protos_for(mesh.node("echo-v1-0"))
    assert scoped is not None and unscoped is not None
    assert scoped.routes[0].virtual_hosts[-1].name == names.ALLOW_ANY_VHOST
    assert unscoped.routes[0].virtual_hosts[-1].name == names.BLOCK_ALL_VHOST
    # The traffic policy is not part of what clusters depend on: same shared tuples.
    visibility_only = generator.egress_scope(instance("reviews-v1-0")).visibility
    assert visibility_only.outbound_mode is None
    assert generator.outbound(visibility_only)[1] is scoped.endpoints


def test_a_sidecar_importing_nothing_leaves_only_the_special_clusters() -> None:
    snapshot = scoped_snapshot(sidecar("default", ["~/*"]))
    resources = _generator(snapshot).protos_for(mesh.node("reviews-v1-0"))
    assert resources is not None
    assert [c.name for c in resources.clusters if c.name.startswith("outbound|")] == []
    assert resources.endpoints == ()
    assert [vh.name for vh in resources.routes[0].virtual_hosts] == [names.ALLOW_ANY_VHOST]


def test_a_sidecar_without_egress_imports_everything_and_shares_the_unscoped_tuples() -> None:
    config = sidecar("default", extra="  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
    snapshot = scoped_snapshot(config)
    generator = _generator(snapshot)
    scope = generator.egress_scope(instance("reviews-v1-0"))
    assert visible(scope, snapshot) == set(snapshot.services)
    assert scope.visibility is EVERYTHING
    scoped = generator.protos_for(mesh.node("reviews-v1-0"))
    unscoped = generator.protos_for(mesh.node("echo-v1-0"))
    assert scoped is not None and unscoped is not None
    assert scoped.endpoints is unscoped.endpoints
    assert scoped.routes[0].virtual_hosts[-1].name == names.BLOCK_ALL_VHOST
    assert unscoped.routes[0].virtual_hosts[-1].name == names.ALLOW_ANY_VHOST
