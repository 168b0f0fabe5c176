"""One Istio HTTPRoute (a VirtualService `http[]` rule) → Envoy routes, one function per feature.

Implemented: match, route destinations and weights, rewrite, redirect, directResponse,
timeout, retries (Istio's default policy when none is set), mirror, headers. Fault
injection, CORS and delegation are reported as not yet supported. A rule gives one Envoy
route per match (Istio ORs the matches of a rule), or one catch-all route without matches.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from ratline.api.envelope import Resource
from ratline.api.hosts import fqdn, resolve_gateway
from ratline.api.schemas.networking import (
    Destination,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    StringMatch,
)
from ratline.model.snapshot import MeshSnapshot
from ratline.translate import names
from ratline.translate.common import (
    DEFAULTED,
    UNRESOLVED,
    Findings,
    duration,
    labels_match,
    pack_any,
)
from ratline.translate.policy import destination_rule_for, subset_named

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_RETRIABLE_CODES = (503,)
HOST_SELECTION_RETRY_ATTEMPTS = 5

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True)
class RouteContext:
    """Where a VirtualService rule is being translated: which VS, listener port and proxy."""

    snapshot: MeshSnapshot
    virtual_service: Resource[Any]
    gateway: str
    """`mesh` for sidecars, `namespace/name` of the Gateway otherwise."""
    port: int
    """The service port (sidecars) or the Gateway server port the route is for."""
    proxy_namespace: str
    proxy_labels: Mapping[str, str] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)

    def flag(self, field_path: str, what: str) -> None:
        self.findings.not_supported(self.virtual_service, field_path, what)


def gateway_ref(name: str, namespace: str) -> str:
    """A VirtualService's `gateways` entry as `namespace/name` (or `mesh`)."""
    gateway_namespace, gateway_name = resolve_gateway(name, namespace)
    return (
        gateway_name
        if gateway_name == names.MESH_GATEWAY
        else f"{gateway_namespace}/{gateway_name}"
    )


# ---- match -------------------------------------------------------------------------------


def string_matcher(match: StringMatch, ignore_case: bool = False) -> string_pb2.StringMatcher:
    """An Istio StringMatch as an Envoy StringMatcher (RE2 for regex)."""
    matcher = string_pb2.StringMatcher(ignore_case=ignore_case)
    if match.exact is not None:
        matcher.exact = match.exact
    elif match.prefix is not None:
        matcher.prefix = match.prefix
    elif match.regex is not None:
        matcher.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.regex))
    return matcher


def _is_empty(match: StringMatch) -> bool:
    return match.exact is None and match.prefix is None and match.regex is None


def header_matcher(name: str, match: StringMatch, invert: bool = False) -> rc.HeaderMatcher:
    """Match a header's value; an empty StringMatch only checks the header is present."""
    matcher = rc.HeaderMatcher(name=name, invert_match=invert)
    if _is_empty(match):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(string_matcher(match))
    return matcher


def match_applies(ctx: RouteContext, match: HTTPMatchRequest) -> bool:
    """Whether a match can hold on this proxy and port (port, gateways, source)."""
    if match.port is not None and match.port != ctx.port:
        return False
    if match.gateways:
        refs = {gateway_ref(g, ctx.virtual_service.namespace) for g in match.gateways}
        if ctx.gateway not in refs:
            return False
    if match.source_namespace is not None and match.source_namespace != ctx.proxy_namespace:
        return False
    return not match.source_labels or labels_match(match.source_labels, ctx.proxy_labels)


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    """An Envoy RouteMatch for one Istio HTTPMatchRequest (None: everything)."""
    result = rc.RouteMatch()
    uri = match.uri if match is not None else None
    if uri is None or _is_empty(uri):
        result.prefix = "/"
    elif uri.exact is not None:
        result.path = uri.exact
    elif uri.prefix is not None:
        result.prefix = uri.prefix
    else:
        result.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex or ""))
    if match is None:
        return result
    if match.ignore_uri_case:
        result.case_sensitive.value = False
    for pseudo, value in ((":scheme", match.scheme), (":method", match.method)):
        if value is not None:
            result.headers.append(header_matcher(pseudo, value))
    if match.authority is not None:
        result.headers.append(header_matcher(":authority", match.authority))
    for name in sorted(match.headers):
        result.headers.append(header_matcher(name, match.headers[name]))
    for name in sorted(match.without_headers):
        result.headers.append(header_matcher(name, match.without_headers[name], invert=True))
    for name in sorted(match.query_params):
        value = match.query_params[name]
        query = rc.QueryParameterMatcher(name=name)
        if _is_empty(value):
            query.present_match = True
        else:
            query.string_match.CopyFrom(string_matcher(value))
        result.query_parameters.append(query)
    return result


# ---- destinations ------------------------------------------------------------------------


def destination_cluster(ctx: RouteContext, destination: Destination, field_path: str) -> str:
    """The cluster name of a destination; flags unknown hosts, ports and subsets."""
    vs = ctx.virtual_service
    host = fqdn(destination.host, vs.namespace)
    service = ctx.snapshot.services.get(host)
    port = destination.port.number if destination.port is not None else None
    subset = destination.subset or ""
    if service is None:
        ctx.findings.add(vs, field_path, f"host {host} is not in the registry", UNRESOLVED)
        return names.outbound_cluster(port or ctx.port, subset, host)
    if port is None:
        if len(service.ports) == 1:
            port = service.ports[0].port
        elif service.port(ctx.port) is not None:
            port = ctx.port
        else:
            message = f"{host} has several ports: set destination.port"
            ctx.findings.add(vs, field_path, message, UNRESOLVED)
            port = service.ports[0].port if service.ports else ctx.port
    elif service.port(port) is None:
        ctx.findings.add(vs, field_path, f"{host} has no port {port}", UNRESOLVED)
    if subset and subset_named(destination_rule_for(ctx.snapshot, service), subset) is None:
        message = f"subset {subset} of {host} is not defined by any DestinationRule"
        ctx.findings.add(vs, field_path, message, UNRESOLVED)
    return names.outbound_cluster(port, subset, host)


def apply_destinations(
    ctx: RouteContext, route: rc.Route, http: HTTPRoute, field_path: str
) -> None:
    """`cluster` for one destination, `weighted_clusters` for several (weights as given)."""
    action = route.route
    entries = [
        (d, destination_cluster(ctx, d.destination, f"{field_path}.route[{i}].destination"))
        for i, d in enumerate(http.route)
    ]
    weighted = [(d, c) for d, c in entries if d.weight]
    if len(entries) > 1 and not weighted:
        message = "no weights: traffic split evenly"
        ctx.findings.add(ctx.virtual_service, f"{field_path}.route", message, DEFAULTED)
        weighted = entries
    elif len(entries) == 1:
        weighted = entries
    if len(weighted) == 1:
        only, cluster = weighted[0]
        action.cluster = cluster
        if only.headers is not None:
            apply_headers(route, only.headers)
        return
    for dest, cluster in weighted:
        entry = action.weighted_clusters.clusters.add(name=cluster)
        entry.weight.value = dest.weight or 1
        if dest.headers is not None:
            apply_headers(entry, dest.headers)


# ---- route action features ---------------------------------------------------------------


def apply_rewrite(
    action: rc.RouteAction, rewrite: HTTPRewrite, match: HTTPMatchRequest | None
) -> None:
    """Path (prefix or regex) and authority rewrites before forwarding."""
    if rewrite.uri is not None:
        uri_regex = match is not None and match.uri is not None and match.uri.regex is not None
        if uri_regex:
            action.regex_rewrite.pattern.regex = ".*"
            action.regex_rewrite.substitution = rewrite.uri
        else:
            action.prefix_rewrite = rewrite.uri
    elif rewrite.uri_regex_rewrite is not None:
        action.regex_rewrite.pattern.regex = rewrite.uri_regex_rewrite.match
        action.regex_rewrite.substitution = rewrite.uri_regex_rewrite.rewrite
    if rewrite.authority is not None:
        action.host_rewrite_literal = rewrite.authority


def apply_timeout(action: rc.RouteAction, timeout: float | None) -> None:
    """The request timeout; Istio's default is none at all (0s)."""
    action.timeout.CopyFrom(duration(timeout if timeout is not None else 0.0))


def retry_policy(retries: HTTPRetry | None) -> rc.RetryPolicy | None:
    """Istio's retry policy: 2 attempts on connection errors and 503 unless set; 0 = none."""
    if retries is not None and retries.attempts == 0:
        return None
    policy = rc.RetryPolicy(host_selection_retry_max_attempts=HOST_SELECTION_RETRY_ATTEMPTS)
    policy.num_retries.value = DEFAULT_RETRY_ATTEMPTS if retries is None else retries.attempts
    predicate = policy.retry_host_predicate.add(name="envoy.retry_host_predicates.previous_hosts")
    predicate.typed_config.CopyFrom(pack_any(previous_hosts_pb2.PreviousHostsPredicate()))
    retry_on = retries.retry_on if retries is not None and retries.retry_on else DEFAULT_RETRY_ON
    conditions, codes = [], []
    for item in (part.strip() for part in retry_on.split(",")):
        if item.isdigit():
            codes.append(int(item))
        elif item:
            conditions.append(item)
    if retries is None or not retries.retry_on:
        codes = list(DEFAULT_RETRIABLE_CODES)
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    policy.retry_on = ",".join(conditions)
    policy.retriable_status_codes.extend(codes)
    if retries is not None:
        if retries.per_try_timeout is not None:
            policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
        if retries.backoff is not None:
            policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff))
        if retries.retry_ignore_previous_hosts is False:
            del policy.retry_host_predicate[:]
    return policy


def apply_mirror(ctx: RouteContext, action: rc.RouteAction, http: HTTPRoute, path: str) -> None:
    """Copy a share of requests to mirror destinations (responses are dropped)."""
    mirrors: list[tuple[Destination, float]] = []
    if http.mirror is not None:
        share = 100.0
        if http.mirror_percentage is not None:
            share = http.mirror_percentage.value
        elif http.mirror_percent is not None:
            share = float(http.mirror_percent)
        mirrors.append((http.mirror, share))
    for mirror in http.mirrors:
        share = mirror.percentage.value if mirror.percentage is not None else 100.0
        mirrors.append((mirror.destination, share))
    for index, (destination, share) in enumerate(mirrors):
        policy = action.request_mirror_policies.add(
            cluster=destination_cluster(ctx, destination, f"{path}.mirrors[{index}]")
        )
        if share < 100.0:
            policy.runtime_fraction.default_value.CopyFrom(
                percent_pb2.FractionalPercent(
                    numerator=round(share * 10_000),
                    denominator=percent_pb2.FractionalPercent.MILLION,
                )
            )


def redirect_action(redirect: HTTPRedirect) -> rc.RedirectAction:
    """An Istio HTTPRedirect (301 unless redirectCode says otherwise)."""
    action = rc.RedirectAction()
    if redirect.uri is not None:
        action.path_redirect = redirect.uri
    if redirect.authority is not None:
        action.host_redirect = redirect.authority
    if redirect.port is not None:
        action.port_redirect = redirect.port
    if redirect.scheme is not None:
        action.scheme_redirect = redirect.scheme
    action.response_code = _REDIRECT_CODES.get(redirect.redirect_code or 301, 0)
    return action


def direct_response_action(response: HTTPDirectResponse) -> rc.DirectResponseAction:
    """Answer with a fixed status and body."""
    action = rc.DirectResponseAction(status=response.status)
    if response.body is not None:
        if response.body.string is not None:
            action.body.inline_string = response.body.string
        elif response.body.bytes is not None:
            action.body.inline_bytes = base64.b64decode(response.body.bytes)
    return action


def _header_options(operations: HeaderOperations) -> list[base_pb2.HeaderValueOption]:
    result = []
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    append = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    for mapping, mode in ((operations.set, overwrite), (operations.add, append)):
        for name in sorted(mapping):
            result.append(
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=name, value=mapping[name]), append_action=mode
                )
            )
    return result


def apply_headers(target: Any, headers: Headers) -> None:
    """Header set/add/remove on a Route or a weighted cluster entry."""
    if headers.request is not None:
        target.request_headers_to_add.extend(_header_options(headers.request))
        target.request_headers_to_remove.extend(headers.request.remove)
    if headers.response is not None:
        target.response_headers_to_add.extend(_header_options(headers.response))
        target.response_headers_to_remove.extend(headers.response.remove)


def flag_unsupported(ctx: RouteContext, http: HTTPRoute, path: str) -> None:
    """Report the parts of a rule Ratline does not translate yet."""
    if http.fault is not None:
        ctx.flag(f"{path}.fault", "fault injection")
    if http.cors_policy is not None:
        ctx.flag(f"{path}.corsPolicy", "corsPolicy")
    if http.delegate is not None:
        ctx.flag(f"{path}.delegate", "delegate")
    if http.retries is not None and http.retries.retry_remote_localities is not None:
        ctx.flag(f"{path}.retries.retryRemoteLocalities", "retryRemoteLocalities")


# ---- one rule ----------------------------------------------------------------------------


def _route_name(http: HTTPRoute, match: HTTPMatchRequest | None) -> str:
    parts = [p for p in (http.name, match.name if match is not None else None) if p]
    return ".".join(parts)


def envoy_routes(ctx: RouteContext, http: HTTPRoute, index: int) -> list[rc.Route]:
    """The Envoy routes of one rule on this port and proxy (none if no match applies)."""
    path = f"spec.http[{index}]"
    flag_unsupported(ctx, http, path)
    matches: list[HTTPMatchRequest | None] = list(http.match) or [None]
    result = []
    for match in matches:
        if match is not None and not match_applies(ctx, match):
            continue
        route = rc.Route(name=_route_name(http, match), match=route_match(match))
        if http.redirect is not None:
            route.redirect.CopyFrom(redirect_action(http.redirect))
        elif http.direct_response is not None:
            route.direct_response.CopyFrom(direct_response_action(http.direct_response))
        elif http.route:
            apply_destinations(ctx, route, http, path)
            if http.rewrite is not None:
                apply_rewrite(route.route, http.rewrite, match)
            apply_timeout(route.route, http.timeout)
            policy = retry_policy(http.retries)
            if policy is not None:
                route.route.retry_policy.CopyFrom(policy)
            apply_mirror(ctx, route.route, http, path)
        else:
            continue  # delegate: flagged above
        if http.headers is not None:
            apply_headers(route, http.headers)
        result.append(route)
    return result


def default_route(cluster: str) -> rc.Route:
    """Everything to one cluster, no timeout, Istio's default retries (no VirtualService)."""
    route = rc.Route(name="default", match=rc.RouteMatch(prefix="/"))
    route.route.cluster = cluster
    apply_timeout(route.route, None)
    policy = retry_policy(None)
    assert policy is not None
    route.route.retry_policy.CopyFrom(policy)
    return route
