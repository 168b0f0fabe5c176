"""AuthorizationPolicy (and RequestAuthentication) → the HTTP filters of an inbound (or
gateway) connection manager, and the clusters those filters call.

Filter order, as Istio evaluates: `jwt_authn` (RequestAuthentication), an AUDIT RBAC
filter (action LOG, never denies), CUSTOM (a shadow RBAC filter marks the requests the
CUSTOM policies' rules match, and `ext_authz` checks only those with the provider),
then a DENY RBAC filter, then an ALLOW RBAC filter. No ALLOW policy means no ALLOW filter
(allow all); an ALLOW policy without rules allows nothing; a rule without fields matches
every request. Envoy's RBAC answers a denied request `403 RBAC: access denied`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import http_status_pb2

from ratline.api.envelope import Resource
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from ratline.translate.common import Findings, duration, pack_any
from ratline.translate.jwt import jwt_config
from ratline.translate.rbac import RuleContext, Untranslatable, rule_policy, string_match
from ratline.translate.security_targets import (
    HEADER_NAME,
    applicable,
    external_cluster,
    mesh_service_cluster,
    split_host_port,
    unresolved,
)

AUTHORIZATION_POLICY = "AuthorizationPolicy"
RBAC_FILTER = "envoy.filters.http.rbac"
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"
EXT_AUTHZ_STAT_PREFIX = "istio_ext_authz_"
EXT_AUTHZ_POLICY_PREFIX = "istio-ext-authz"
"""CUSTOM rules are shadow RBAC policies named with this prefix; ext_authz runs when one
of them matched (Envoy leaves the matched name in the RBAC filter's dynamic metadata)."""
DEFAULT_EXT_AUTHZ_TIMEOUT_S = 0.6
"""Istio's default timeout for an authorization provider."""
DEFAULT_BODY_BYTES = 8192
"""How much of the body ext_authz buffers when includeRequestBodyInCheck sets no limit."""


@dataclass(frozen=True)
class SecurityFilters:
    """The filters for one inbound port (before the router) and the clusters they call."""

    filters: tuple[hcm_pb2.HttpFilter, ...] = ()
    clusters: tuple[cluster_pb2.Cluster, ...] = ()


def policy_name(policy: Resource[Any], index: int, prefix: str = "") -> str:
    """Istio's RBAC policy names: `ns[NS]-policy[NAME]-rule[N]`."""
    return f"{prefix}ns[{policy.namespace}]-policy[{policy.name}]-rule[{index}]"


def _rbac_rules(
    policies: Sequence[Resource[Any]],
    action: rbac_pb2.RBAC.Action.ValueType,
    port: int,
    findings: Findings,
    *,
    lenient: bool,
    name_prefix: str = "",
) -> rbac_pb2.RBAC:
    rules = rbac_pb2.RBAC(action=action)
    ctx = RuleContext(port=port, lenient=lenient)
    for policy in policies:
        for index, rule in enumerate(policy.spec.rules):
            dropped: list[Untranslatable] = []
            built = rule_policy(rule, ctx, f"spec.rules[{index}]", dropped)
            for problem in dropped:
                what = "rule ignored" if built is None else "field ignored"
                findings.add(policy, problem.field, f"{problem.message}; {what}")
            if built is not None:
                rules.policies[policy_name(policy, index, name_prefix)].CopyFrom(built)
    return rules


def _rbac_filter(rules: rbac_pb2.RBAC) -> hcm_pb2.HttpFilter:
    config = rbac_filter_pb2.RBAC(rules=rules)
    return hcm_pb2.HttpFilter(name=RBAC_FILTER, typed_config=pack_any(config))


def _status(value: str | None) -> int | None:
    """An Istio `statusOnError` as one of the codes Envoy's HttpStatus knows, else None."""
    try:
        code = int(value or "")
    except ValueError:
        return None
    return code if code in http_status_pb2.StatusCode.values() and code > 0 else None


def provider_host(service: str) -> str:
    """The host of a provider's `service`: Istio also accepts `namespace/host`."""
    return service.split("/", 1)[1] if "/" in service else service


def _provider_target(
    snapshot: MeshSnapshot, policy: Resource[Any], provider: Any, http2: bool
) -> tuple[str, cluster_pb2.Cluster | None]:
    """(cluster name, cluster to add or None for a mesh service's) for a provider."""
    service = provider_host(provider.service)
    mesh = mesh_service_cluster(snapshot, service, provider.port, policy.namespace)
    if mesh is not None:
        return mesh, None
    host, port = split_host_port(service, provider.port)
    name = f"ext_authz|{port}||{host}"
    return name, external_cluster(name, host, port, http2=http2)


def _ext_authz(
    snapshot: MeshSnapshot, policy: Resource[Any], findings: Findings
) -> tuple[hcm_pb2.HttpFilter, cluster_pb2.Cluster | None] | None:
    """The ext_authz filter for a CUSTOM policy's provider, enabled by the shadow RBAC mark."""
    name = policy.spec.provider.name
    provider = snapshot.mesh_config.extension_provider(name)
    http = getattr(provider, "envoy_ext_authz_http", None)
    grpc = getattr(provider, "envoy_ext_authz_grpc", None)
    if http is None and grpc is None:
        unresolved(
            findings,
            policy,
            "spec.provider.name",
            f"no ext_authz extension provider {name!r} in the mesh config; policy ignored",
        )
        return None
    settings: Any = http if http is not None else grpc
    cluster_name, cluster = _provider_target(snapshot, policy, settings, http2=grpc is not None)
    timeout = duration(settings.timeout or DEFAULT_EXT_AUTHZ_TIMEOUT_S)
    config = ext_authz_pb2.ExtAuthz(transport_api_version=config_source_pb2.ApiVersion.V3)
    config.failure_mode_allow = bool(settings.fail_open)
    code = _status(settings.status_on_error)
    if code is not None:
        config.status_on_error.code = code  # type: ignore[assignment]
    body = settings.include_request_body_in_check
    if body is not None:
        limit = body.max_request_bytes or DEFAULT_BODY_BYTES
        config.with_request_body.max_request_bytes = limit
        config.with_request_body.allow_partial_message = bool(body.allow_partial_message)
        config.with_request_body.pack_as_bytes = bool(body.pack_as_bytes)
    if http is not None:
        service = config.http_service
        service.server_uri.uri = f"http://{provider_host(http.service)}:{http.port}"
        service.server_uri.cluster = cluster_name
        service.server_uri.timeout.CopyFrom(timeout)
        service.path_prefix = http.path_prefix or ""
        response = service.authorization_response
        for names, target in (
            (http.headers_to_upstream_on_allow, response.allowed_upstream_headers),
            (http.headers_to_downstream_on_deny, response.allowed_client_headers),
            (http.headers_to_downstream_on_allow, response.allowed_client_headers_on_success),
        ):
            for header in names:
                target.patterns.add().CopyFrom(string_match(header, ignore_case=True))
        for header in http.include_request_headers_in_check:
            config.allowed_headers.patterns.add().CopyFrom(string_match(header, ignore_case=True))
        for header, value in sorted(http.include_additional_headers_in_check.items()):
            if not HEADER_NAME.match(header):
                findings.add(None, "extensionProviders", f"{header!r} is not a header name")
                continue
            service.authorization_request.headers_to_add.add(key=header, value=value)
    else:
        config.grpc_service.envoy_grpc.cluster_name = cluster_name
        config.grpc_service.timeout.CopyFrom(timeout)
    enabled = config.filter_enabled_metadata
    enabled.filter = RBAC_FILTER
    enabled.path.add(key=f"{EXT_AUTHZ_STAT_PREFIX}shadow_effective_policy_id")
    enabled.value.string_match.CopyFrom(string_pb2.StringMatcher(prefix=EXT_AUTHZ_POLICY_PREFIX))
    http_filter = hcm_pb2.HttpFilter(name=EXT_AUTHZ_FILTER, typed_config=pack_any(config))
    return http_filter, cluster


def _custom_filters(
    snapshot: MeshSnapshot,
    policies: Sequence[Resource[Any]],
    port: int,
    findings: Findings,
) -> tuple[list[hcm_pb2.HttpFilter], list[cluster_pb2.Cluster]]:
    """Shadow RBAC marking CUSTOM matches, then ext_authz (one provider per workload)."""
    if not policies:
        return [], []
    provider = policies[0].spec.provider.name
    kept = []
    for policy in policies:
        if policy.spec.provider.name != provider:
            findings.add(
                policy,
                "spec.provider.name",
                f"only one CUSTOM provider per workload ({provider!r} is in use); policy ignored",
            )
        else:
            kept.append(policy)
    built = _ext_authz(snapshot, kept[0], findings)
    if built is None:
        return [], []
    ext_filter, cluster = built
    shadow = _rbac_rules(
        kept,
        rbac_pb2.RBAC.DENY,
        port,
        findings,
        lenient=True,
        name_prefix=f"{EXT_AUTHZ_POLICY_PREFIX}-",
    )
    config = rbac_filter_pb2.RBAC(
        shadow_rules=shadow, shadow_rules_stat_prefix=EXT_AUTHZ_STAT_PREFIX
    )
    mark = hcm_pb2.HttpFilter(name=RBAC_FILTER, typed_config=pack_any(config))
    return [mark, ext_filter], [cluster] if cluster is not None else []


def security_filters(
    snapshot: MeshSnapshot, instance: WorkloadInstance, port: int, findings: Findings
) -> SecurityFilters:
    """Every security filter for one inbound (or gateway) port of `instance`, in order."""
    policies = applicable(snapshot, AUTHORIZATION_POLICY, instance, findings)
    by_action: dict[str, list[Resource[Any]]] = {}
    for policy in policies:
        by_action.setdefault(policy.spec.action, []).append(policy)
    jwt = jwt_config(snapshot, instance, findings)
    filters: list[hcm_pb2.HttpFilter] = [jwt.filter] if jwt.filter is not None else []
    clusters = list(jwt.clusters)
    if "AUDIT" in by_action:
        audit = _rbac_rules(by_action["AUDIT"], rbac_pb2.RBAC.LOG, port, findings, lenient=True)
        filters.append(_rbac_filter(audit))
    custom_filters, custom_clusters = _custom_filters(
        snapshot, by_action.get("CUSTOM", []), port, findings
    )
    filters += custom_filters
    clusters += custom_clusters
    if "DENY" in by_action:
        deny = _rbac_rules(by_action["DENY"], rbac_pb2.RBAC.DENY, port, findings, lenient=True)
        filters.append(_rbac_filter(deny))
    if "ALLOW" in by_action:
        allow = _rbac_rules(by_action["ALLOW"], rbac_pb2.RBAC.ALLOW, port, findings, lenient=False)
        filters.append(_rbac_filter(allow))
    return SecurityFilters(tuple(filters), tuple(clusters))


__all__ = [
    "AUTHORIZATION_POLICY",
    "SecurityFilters",
    "security_filters",
]
