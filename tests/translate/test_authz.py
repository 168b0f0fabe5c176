"""AuthorizationPolicy translation: which policies apply where, filter order, RBAC
matchers, ext_authz for CUSTOM, findings for what is refused, and Envoy accepting it all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter_pb2
from google.protobuf import json_format

from ratline.settings import Settings
from ratline.translate.authz import SecurityFilters, security_filters
from ratline.translate.common import Findings
from ratline.translate.generator import MeshGenerator
from ratline.translate.rbac import namespace_id, principal_id, string_match
from tests.translate import mesh
from tests.translate.security_policies import authz, instance, request_authn, snapshot_with
from tests.translate.static_config import validate, write_bootstrap

REVIEWS = "  selector: {matchLabels: {app: reviews}}\n"


def filters_for(policies: str, name: str = "reviews-v1-0", port: int = 9080,
                mesh_config: dict[str, Any] | None = None) -> tuple[SecurityFilters, Findings]:
    snapshot = snapshot_with(policies, mesh_config)
    findings = Findings()
    return security_filters(snapshot, instance(snapshot, name), port, findings), findings


def rbac_of(http_filter: Any) -> rbac_filter_pb2.RBAC:
    config = rbac_filter_pb2.RBAC()
    assert http_filter.typed_config.Unpack(config)
    return config


def as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def test_no_policy_means_no_filters() -> None:
    result, findings = filters_for("")
    assert result.filters == () and result.clusters == ()
    assert not findings.messages


def test_filters_run_in_istio_order() -> None:
    policies = (
        authz("allow", REVIEWS + "  rules: [{}]")
        + authz("deny", REVIEWS + "  action: DENY\n  rules: [{}]")
        + authz("audit", REVIEWS + "  action: AUDIT\n  rules: [{}]")
        + authz("custom", REVIEWS + "  action: CUSTOM\n  provider: {name: http-authz}\n"
                "  rules: [{}]")
        + request_authn("jwt", "  jwtRules: [{issuer: a, jwks: '{\"keys\": [{\"kty\": \"oct\","
                        " \"k\": \"c2VjcmV0\"}]}'}]")
    )
    result, findings = filters_for(policies)
    assert not findings.messages, findings.messages
    assert [f.name for f in result.filters] == [
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.rbac",  # AUDIT
        "envoy.filters.http.rbac",  # CUSTOM marks
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.rbac",  # DENY
        "envoy.filters.http.rbac",  # ALLOW
    ]
    actions = [rbac_of(f).rules.action for f in result.filters[1:2] + result.filters[4:]]
    assert actions == [rbac_pb2.RBAC.LOG, rbac_pb2.RBAC.DENY, rbac_pb2.RBAC.ALLOW]
    shadow = rbac_of(result.filters[2])
    assert not shadow.HasField("rules")
    assert shadow.shadow_rules_stat_prefix == "istio_ext_authz_"
    assert list(shadow.shadow_rules.policies) == [
        "istio-ext-authz-ns[default]-policy[custom]-rule[0]"
    ]


def test_empty_allow_policy_allows_nothing_and_empty_rule_everything() -> None:
    result, _ = filters_for(authz("nothing", REVIEWS.rstrip("\n")))
    (allow,) = result.filters
    assert rbac_of(allow).rules.action == rbac_pb2.RBAC.ALLOW
    assert not rbac_of(allow).rules.policies
    result, _ = filters_for(authz("all", REVIEWS + "  rules: [{}]"))
    policy = rbac_of(result.filters[0]).rules.policies["ns[default]-policy[all]-rule[0]"]
    assert as_dict(policy) == {"permissions": [{"any": True}], "principals": [{"any": True}]}


def test_selector_namespace_and_root_namespace_scoping() -> None:
    policies = (
        authz("reviews-only", REVIEWS + "  rules: [{}]")
        + authz("other-ns", "  rules: [{}]", namespace="other")
        + authz("mesh-wide", "  action: DENY\n  rules: [{}]", namespace="istio-system")
    )
    reviews, _ = filters_for(policies)
    assert len(reviews.filters) == 2  # mesh-wide DENY + reviews ALLOW
    ratings, _ = filters_for(policies, "ratings-v1-0")
    assert [rbac_of(f).rules.action for f in ratings.filters] == [rbac_pb2.RBAC.DENY]
    echo, _ = filters_for(policies, "echo-v1-0", port=80)
    assert len(echo.filters) == 2
    gateway, _ = filters_for(policies, "istio-ingressgateway-0", port=8080)
    assert [rbac_of(f).rules.action for f in gateway.filters] == [rbac_pb2.RBAC.DENY]


def test_target_ref_service_applies_to_its_instances_and_gateway_kind_is_refused() -> None:
    policies = authz("svc", "  targetRef: {kind: Service, name: reviews}\n  rules: [{}]") + authz(
        "gw", "  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: g}\n"
        "  action: DENY\n  rules: [{}]"
    )
    reviews, findings = filters_for(policies)
    assert [rbac_of(f).rules.action for f in reviews.filters] == [rbac_pb2.RBAC.ALLOW]
    ratings, _ = filters_for(policies, "ratings-v1-0")
    assert ratings.filters == ()
    assert any(
        "targetRef kind gateway.networking.k8s.io/Gateway is not yet supported" in str(m)
        for m in findings.messages
    ), findings.messages


def test_ports_are_decided_per_inbound_port() -> None:
    spec = REVIEWS + "  rules: [{to: [{operation: {ports: ['9080']}}]}]"
    on_port, _ = filters_for(authz("p", spec), port=9080)
    off_port, _ = filters_for(authz("p", spec), port=9081)
    rule = "ns[default]-policy[p]-rule[0]"
    assert as_dict(rbac_of(on_port.filters[0]).rules.policies[rule].permissions[0]) == {
        "any": True
    }
    assert as_dict(rbac_of(off_port.filters[0]).rules.policies[rule].permissions[0]) == {
        "not_rule": {"any": True}
    }


def test_operation_and_condition_matchers() -> None:
    spec = REVIEWS + """
  rules:
  - to:
    - operation:
        methods: [GET]
        paths: ["/api/*", "*.css", "/exact", "*"]
        notPaths: ["/api/admin"]
        hosts: ["reviews.example.com"]
    when:
    - {key: "request.headers[X-User]", values: [alice]}
    - {key: source.ip, values: ["10.1.0.0/16"]}
    - {key: connection.sni, values: ["*.example.com"]}
"""
    result, findings = filters_for(authz("ops", spec))
    assert not findings.messages
    policy = as_dict(rbac_of(result.filters[0]).rules.policies["ns[default]-policy[ops]-rule[0]"])
    text = str(policy)
    assert "{'prefix': '/api/'}" in text and "{'suffix': '.css'}" in text
    assert "{'exact': '/exact'}" in text and "'regex': '.+'" in text
    assert "'not_rule'" in text and "':method'" in text
    assert "'name': 'x-user'" in text
    assert "{'address_prefix': '10.1.0.0', 'prefix_len': 16}" in text
    assert "'requested_server_name': {'suffix': '.example.com'}" in text
    assert "reviews.example.com:" in text  # the host also matches with a port


def test_principal_and_namespace_matchers_use_spiffe_identities() -> None:
    exact = as_dict(principal_id("cluster.local/ns/default/sa/sleep"))
    assert exact == {
        "authenticated": {"principal_name": {"exact": "spiffe://cluster.local/ns/default/sa/sleep"}}
    }
    prefixed = as_dict(principal_id("cluster.local/ns/default/*"))
    assert prefixed["authenticated"]["principal_name"] == {
        "prefix": "spiffe://cluster.local/ns/default/"
    }
    suffixed = as_dict(principal_id("*/sa/sleep"))
    assert suffixed["authenticated"]["principal_name"] == {"suffix": "/sa/sleep"}
    regex = as_dict(namespace_id("prod"))["authenticated"]["principal_name"]["safe_regex"]["regex"]
    assert regex == ".*/ns/prod/.*"
    assert as_dict(string_match("*")) == {"safe_regex": {"regex": ".+"}}


def test_from_fields_combine_principals_namespaces_and_ips() -> None:
    spec = REVIEWS + """
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/productpage"]
        notNamespaces: [untrusted]
        remoteIpBlocks: ["192.168.0.1"]
"""
    result, _ = filters_for(authz("src", spec))
    policy = as_dict(rbac_of(result.filters[0]).rules.policies["ns[default]-policy[src]-rule[0]"])
    ids = policy["principals"][0]["and_ids"]["ids"]
    assert ids[0]["authenticated"]["principal_name"]["exact"].startswith("spiffe://")
    assert ids[1]["not_id"]["authenticated"]["principal_name"]["safe_regex"]["regex"] == (
        ".*/ns/untrusted/.*"
    )
    assert ids[2] == {"remote_ip": {"address_prefix": "192.168.0.1", "prefix_len": 32}}


def test_untranslatable_condition_drops_an_allow_rule_but_only_the_field_of_a_deny() -> None:
    when = "    when: [{key: experimental.envoy.filters.x, values: [y]}]\n"
    allow, findings = filters_for(authz("a", REVIEWS + "  rules:\n  - to: [{operation: "
                                       "{paths: [/x]}}]\n" + when))
    assert not rbac_of(allow.filters[0]).rules.policies
    assert any("rule ignored" in str(m) and "when[0].key" in str(m) for m in findings.messages)
    deny, findings = filters_for(authz("d", REVIEWS + "  action: DENY\n  rules:\n  - to: "
                                      "[{operation: {paths: [/x]}}]\n" + when))
    assert "ns[default]-policy[d]-rule[0]" in rbac_of(deny.filters[0]).rules.policies
    assert any("field ignored" in str(m) for m in findings.messages)


def test_bad_ip_and_port_values_are_findings() -> None:
    spec = REVIEWS + """
  rules:
  - from: [{source: {ipBlocks: ["10.0.0.300"]}}]
  - to: [{operation: {ports: ["http"]}}]
"""
    result, findings = filters_for(authz("bad", spec))
    assert not rbac_of(result.filters[0]).rules.policies
    text = "\n".join(str(m) for m in findings.messages)
    assert "'10.0.0.300' is not an IP address or CIDR" in text
    assert "port 'http' is not a number" in text


def test_custom_http_provider_becomes_ext_authz_to_its_own_cluster() -> None:
    spec = REVIEWS + "  action: CUSTOM\n  provider: {name: http-authz}\n  rules: [{}]"
    result, _ = filters_for(authz("c", spec))
    config = ext_authz_pb2.ExtAuthz()
    assert result.filters[1].typed_config.Unpack(config)
    assert config.http_service.server_uri.cluster == "ext_authz|9191||127.0.0.1"
    assert config.status_on_error.code == 503
    assert config.http_service.server_uri.timeout.seconds == 2
    assert [p.exact for p in config.allowed_headers.patterns] == ["x-ext-authz"]
    patterns = config.http_service.authorization_response.allowed_upstream_headers.patterns
    assert patterns[0].prefix == "x-authz-"
    assert config.filter_enabled_metadata.path[0].key == (
        "istio_ext_authz_shadow_effective_policy_id"
    )
    (cluster,) = result.clusters
    assert cluster.name == "ext_authz|9191||127.0.0.1"


def test_custom_grpc_and_mesh_service_providers() -> None:
    grpc = REVIEWS + "  action: CUSTOM\n  provider: {name: grpc-authz}\n  rules: [{}]"
    result, _ = filters_for(authz("g", grpc))
    config = ext_authz_pb2.ExtAuthz()
    result.filters[1].typed_config.Unpack(config)
    assert config.grpc_service.envoy_grpc.cluster_name == "ext_authz|9000||authz.example.com"
    (cluster,) = result.clusters
    assert "http2_protocol_options" in str(as_dict(cluster))
    in_mesh = REVIEWS + "  action: CUSTOM\n  provider: {name: mesh-authz}\n  rules: [{}]"
    result, _ = filters_for(authz("m", in_mesh))
    result.filters[1].typed_config.Unpack(config)
    assert config.http_service.server_uri.cluster == (
        "outbound|9080||ratings.default.svc.cluster.local"
    )
    assert result.clusters == ()


def test_custom_with_unknown_or_second_provider_is_refused() -> None:
    unknown = REVIEWS + "  action: CUSTOM\n  provider: {name: nope}\n  rules: [{}]"
    result, findings = filters_for(authz("u", unknown))
    assert result.filters == ()
    assert any("no ext_authz extension provider 'nope'" in str(m) for m in findings.messages)
    two = authz("a", REVIEWS + "  action: CUSTOM\n  provider: {name: http-authz}\n"
                "  rules: [{}]") + authz("b", REVIEWS + "  action: CUSTOM\n  provider: "
                                         "{name: grpc-authz}\n  rules: [{}]")
    result, findings = filters_for(two)
    assert len(result.filters) == 2
    assert any("only one CUSTOM provider" in str(m) for m in findings.messages)


def test_envoy_accepts_every_feature_at_once(tmp_path: Path) -> None:
    policies = (
        authz("allow", REVIEWS + """
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/*"]
        requestPrincipals: ["https://issuer/alice", "*"]
        namespaces: ["default"]
        notIpBlocks: ["10.0.0.0/8", "::1"]
    to:
    - operation: {hosts: ["*.local"], methods: [GET], paths: ["/a*"], notPorts: ["1"]}
    when:
    - {key: "request.auth.claims[groups]", values: [admins]}
    - {key: "request.auth.claims[a][b]", notValues: ["*"]}
    - {key: request.auth.audiences, values: [x]}
    - {key: destination.ip, values: ["127.0.0.1"]}
    - {key: remote.ip, values: ["127.0.0.0/8"]}
""")
        + authz("deny", "  action: DENY\n  rules: [{to: [{operation: {paths: ['/d']}}]}]",
                namespace="istio-system")
        + authz("audit", REVIEWS + "  action: AUDIT\n  rules: [{}]")
        + authz("custom", "  action: CUSTOM\n  provider: {name: grpc-authz}\n  rules: [{}]",
                namespace="istio-system")
        + request_authn("jwt", "  jwtRules:\n  - {issuer: https://issuer, jwksUri: "
                        "https://issuer/keys, outputClaimToHeaders: [{header: x-sub, "
                        "claim: sub}]}", namespace="istio-system")
    )
    snapshot = snapshot_with(policies)
    generator = MeshGenerator(snapshot, Settings.from_env())
    for name in ("reviews-v1-0", "istio-ingressgateway-0"):
        resources = generator.protos_for(mesh.node(name))
        assert resources is not None
        result = validate(Settings.from_env().envoy,
                          write_bootstrap(tmp_path / f"{name}.json", resources))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
