"""One Istio HTTPRoute (a VirtualService `http[]` rule) → Envoy routes, as Istio's pilot
translates it.

A rule gives one Envoy route per match block that can hold on this proxy and port (Istio
ORs the blocks of a rule and ANDs the conditions of a block), or one catch-all route
without matches; translation of a VirtualService stops at the first catch-all route,
since nothing after it can match. The features of the route itself (fault, CORS, retries,
mirrors, redirects, headers, hash policies) are built by `translate.route_features`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import metadata_pb2, regex_pb2, value_pb2

from ratline.api.envelope import Resource
from ratline.api.hosts import fqdn, resolve_gateway
from ratline.api.schemas.common import PRESENT_REGEX
from ratline.api.schemas.networking import (
    Destination,
    HTTPMatchRequest,
    HTTPRoute,
    HTTPRouteDestination,
    StringMatch,
)
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.translate import names
from ratline.translate.common import (
    DEFAULTED,
    UNRESOLVED,
    Findings,
    duration,
    labels_match,
    pack_any,
)
from ratline.translate.jwt import JWT_FILTER, PAYLOAD_KEY
from ratline.translate.policy import consistent_hash, destination_rule_for, subset_named
from ratline.translate.route_features import (
    CORS_FILTER,
    FAULT_FILTER,
    REDIRECT_CODES,
    apply_headers,
    cors_policy,
    direct_response_action,
    fault_config,
    hash_policy,
    mirror_policy,
    redirect_action,
    retry_policy,
    string_matcher,
)
from ratline.translate.trace_operations import decorate

_CLAIM = re.compile(r"^@request\.auth\.claims(?:\.(.+)|((?:\[[^\[\]]+\])+))$")


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


def _present(match: StringMatch | None) -> bool:
    """An empty StringMatch, or Istio's regex `*`, only asks for presence."""
    return match is None or (
        match.exact is None
        and match.prefix is None
        and (match.regex is None or match.regex == PRESENT_REGEX)
    )


def header_matcher(name: str, match: StringMatch, invert: bool = False) -> rc.HeaderMatcher:
    """Match a header's value; an empty StringMatch only checks the header is present.

    Inverted value matches (`withoutHeaders`) treat a missing header as empty, so a request
    without the header matches them, as in Istio."""
    matcher = rc.HeaderMatcher(name=name, invert_match=invert)
    if _present(match):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(string_matcher(match))
        matcher.treat_missing_header_as_empty = invert
    return matcher


def claim_path(name: str) -> list[str] | None:
    """`@request.auth.claims.a.b` or `@request.auth.claims[a][b]` → [a, b]; else None."""
    found = _CLAIM.match(name)
    if found is None:
        return None
    if found.group(1) is not None:
        return found.group(1).split(".")
    return re.findall(r"\[([^\[\]]+)\]", found.group(2))


def claim_matcher(
    path: list[str], match: StringMatch, invert: bool
) -> metadata_pb2.MetadataMatcher:
    """A JWT claim (verified by RequestAuthentication) equal to, or a list containing, a value."""
    matcher = metadata_pb2.MetadataMatcher(filter=JWT_FILTER, invert=invert)
    for key in (PAYLOAD_KEY, *path):
        matcher.path.add(key=key)
    if _present(match):
        matcher.value.present_match = True
    else:
        one = value_pb2.ValueMatcher(string_match=string_matcher(match))
        listed = value_pb2.ValueMatcher()
        listed.list_match.one_of.CopyFrom(one)
        matcher.value.or_match.value_matchers.extend([one, listed])
    return matcher


def match_applies(ctx: RouteContext, match: HTTPMatchRequest) -> bool:
    """Istio's: the port must be this one; with `gateways` only they count, else the
    source labels and namespace must be the proxy's."""
    if match.port is not None and match.port != ctx.port:
        return False
    if match.gateways:
        refs = {gateway_ref(g, ctx.virtual_service.namespace) for g in match.gateways}
        return ctx.gateway in refs
    if match.source_namespace is not None and match.source_namespace != ctx.proxy_namespace:
        return False
    return not match.source_labels or labels_match(match.source_labels, ctx.proxy_labels)


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    """An Envoy RouteMatch for one Istio HTTPMatchRequest (None: everything)."""
    result = rc.RouteMatch(prefix="/")
    if match is None:
        return result
    uri = match.uri
    if uri is not None and uri.exact is not None:
        result.path = uri.exact
    elif uri is not None and uri.prefix is not None:
        result.prefix = uri.prefix
    elif uri is not None and uri.regex is not None:
        result.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex))
    result.case_sensitive.value = not match.ignore_uri_case
    for headers, invert in ((match.headers, False), (match.without_headers, True)):
        for name in sorted(headers):
            claims = claim_path(name)
            if claims is not None:
                result.dynamic_metadata.append(claim_matcher(claims, headers[name], invert))
            else:
                result.headers.append(header_matcher(name, headers[name], invert))
    result.headers.sort(key=lambda h: h.name)
    for pseudo, value in (
        (":method", match.method),
        (":authority", match.authority),
        (":scheme", match.scheme),
    ):
        if value is not None:
            result.headers.append(header_matcher(pseudo, value))
    for name in sorted(match.query_params):
        value = match.query_params[name]
        query = rc.QueryParameterMatcher(name=name)
        if _present(value):
            query.present_match = True
        else:
            query.string_match.CopyFrom(string_matcher(value))
        result.query_parameters.append(query)
    return result


def is_catch_all(route: rc.Route) -> bool:
    """Istio's test: a `/` prefix (or `.*` regex) with no header, parameter or claim match."""
    match = route.match
    which = match.WhichOneof("path_specifier")
    catch_all = (which == "prefix" and match.prefix == "/") or (
        which == "safe_regex" and match.safe_regex.regex == ".*"
    )
    return (
        catch_all
        and not match.headers
        and not match.query_parameters
        and not match.dynamic_metadata
    )


# ---- destinations ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedDestination:
    """A destination's cluster, and the service and port behind it (when known)."""

    cluster: str
    service: Service | None
    port: int
    subset: str


def resolve_destination(
    ctx: RouteContext, destination: Destination, field_path: str
) -> ResolvedDestination:
    """The cluster of a destination; flags unknown hosts, ports and subsets."""
    vs = ctx.virtual_service
    host = fqdn(destination.host, vs.namespace)
    service = ctx.snapshot.services.get(host)
    port = destination.port.number if destination.port is not None else None
    subset = destination.subset or ""
    if service is None:
        ctx.findings.add(vs, field_path, f"host {host} is not in the registry", UNRESOLVED)
        port = port or ctx.port
        return ResolvedDestination(names.outbound_cluster(port, subset, host), None, port, subset)
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
    return ResolvedDestination(names.outbound_cluster(port, subset, host), service, port, subset)


def destination_cluster(ctx: RouteContext, destination: Destination, field_path: str) -> str:
    return resolve_destination(ctx, destination, field_path).cluster


def destination_hash(ctx: RouteContext, resolved: ResolvedDestination) -> Any:
    """The consistentHash of the destination's DestinationRule for its port and subset."""
    if resolved.service is None:
        return None
    rule = destination_rule_for(ctx.snapshot, resolved.service)
    return consistent_hash(rule, resolved.port, resolved.subset)


def apply_destinations(
    ctx: RouteContext, route: rc.Route, http: HTTPRoute, field_path: str, authority: str | None
) -> bool:
    """`cluster` for one destination, `weighted_clusters` for several (weight 0 left out).

    Returns whether the route hashes consistently (one destination with consistentHash)."""
    action = route.route
    entries: list[tuple[HTTPRouteDestination, ResolvedDestination]] = [
        (d, resolve_destination(ctx, d.destination, f"{field_path}.route[{i}].destination"))
        for i, d in enumerate(http.route)
    ]
    if len(entries) > 1 and not any(d.weight for d, _ in entries):
        message = "no weights: traffic split evenly"
        ctx.findings.add(ctx.virtual_service, f"{field_path}.route", message, DEFAULTED)
        weighted = entries
    elif len(entries) > 1:
        weighted = [(d, r) for d, r in entries if d.weight]
    else:
        weighted = entries
    hashes = []
    for _, resolved in weighted:
        consistent = destination_hash(ctx, resolved)
        if consistent is not None:
            hashes.append(consistent)
            action.hash_policy.append(hash_policy(consistent))
    if len(entries) == 1:
        only, resolved = entries[0]
        action.cluster = resolved.cluster
        if only.headers is not None:
            apply_headers(route, only.headers)
            dest_authority = only.headers.authority
            if dest_authority and not authority:
                action.host_rewrite_literal = dest_authority
        return bool(hashes)
    for dest, resolved in weighted:
        entry = action.weighted_clusters.clusters.add(name=resolved.cluster)
        entry.weight.value = dest.weight or 1
        if dest.headers is not None:
            apply_headers(entry, dest.headers)
            if dest.headers.authority:
                entry.host_rewrite_literal = dest.headers.authority
    return False


# ---- one rule ----------------------------------------------------------------------------


def _route_name(http: HTTPRoute, match: HTTPMatchRequest | None) -> str:
    parts = [p for p in (http.name, match.name if match is not None else None) if p]
    return ".".join(parts)


def mesh_retry_policy(snapshot: MeshSnapshot) -> Any:
    """MeshConfig `defaultHttpRetryPolicy` (None: Istio's built-in default)."""
    return getattr(snapshot.mesh_config, "default_http_retry_policy", None)


def _forward(ctx: RouteContext, route: rc.Route, http: HTTPRoute, path: str) -> None:
    """The route action of a rule that forwards: destinations, rewrite, timeout, retries,
    mirrors."""
    action = route.route
    timeout = duration(http.timeout if http.timeout is not None else 0.0)
    action.timeout.CopyFrom(timeout)
    action.max_grpc_timeout.CopyFrom(timeout)
    authority = http.headers.authority if http.headers is not None else None
    if http.rewrite is not None:
        if http.rewrite.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.regex = http.rewrite.uri_regex_rewrite.match
            action.regex_rewrite.substitution = http.rewrite.uri_regex_rewrite.rewrite
        elif http.rewrite.uri is not None:
            action.prefix_rewrite = http.rewrite.uri
        authority = http.rewrite.authority or authority
    if authority:
        action.host_rewrite_literal = authority
    hashed = apply_destinations(ctx, route, http, path, authority)
    retries = http.retries if http.retries is not None else mesh_retry_policy(ctx.snapshot)
    policy = retry_policy(retries, consistent_hash=hashed)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    mirrors: list[tuple[Destination, float | None, str]] = []
    if http.mirror is not None:
        share = http.mirror_percentage.value if http.mirror_percentage is not None else None
        if share is None and http.mirror_percent is not None:
            share = float(http.mirror_percent)
        mirrors.append((http.mirror, share, f"{path}.mirror"))
    for index, mirror in enumerate(http.mirrors):
        share = mirror.percentage.value if mirror.percentage is not None else None
        mirrors.append((mirror.destination, share, f"{path}.mirrors[{index}].destination"))
    for destination, share, where in mirrors:
        mirrored = mirror_policy(destination_cluster(ctx, destination, where), share)
        if mirrored is not None:
            action.request_mirror_policies.append(mirrored)


def translate_route(
    ctx: RouteContext, http: HTTPRoute, match: HTTPMatchRequest | None, path: str
) -> rc.Route | None:
    """One Envoy route for one match block of a rule (None when Envoy cannot express it)."""
    route = rc.Route(name=_route_name(http, match), match=route_match(match))
    if match is not None and match.stat_prefix:
        route.stat_prefix = match.stat_prefix
    if http.headers is not None:
        apply_headers(route, http.headers)
    if http.redirect is not None:
        code = http.redirect.redirect_code or 301
        if code not in REDIRECT_CODES:
            ctx.findings.add(
                ctx.virtual_service,
                f"{path}.redirect.redirectCode",
                f"redirect code {code} is not supported (Envoy sends 301, 302, 303, 307 or "
                "308); the rule is left out",
            )
            return None
        route.redirect.CopyFrom(redirect_action(http.redirect, ctx.port))
    elif http.direct_response is not None:
        route.direct_response.CopyFrom(direct_response_action(http.direct_response))
    elif http.route:
        _forward(ctx, route, http, path)
    else:
        return None  # an unresolved delegate (reported where delegation is resolved)
    if http.fault is not None:
        fault = fault_config(http.fault)
        if fault is not None:
            route.typed_per_filter_config[FAULT_FILTER].CopyFrom(pack_any(fault))
    if http.cors_policy is not None:
        route.typed_per_filter_config[CORS_FILTER].CopyFrom(pack_any(cors_policy(http.cors_policy)))
    return decorate(route, ctx.virtual_service.name, ctx.port)


def envoy_routes(ctx: RouteContext, http: HTTPRoute, path: str) -> list[rc.Route]:
    """The Envoy routes of one rule on this port and proxy (none if no match applies),
    ending at its first catch-all route."""
    result = []
    matches: list[HTTPMatchRequest | None] = list(http.match) or [None]
    for match in matches:
        if match is not None and not match_applies(ctx, match):
            continue
        route = translate_route(ctx, http, match, path)
        if route is None:
            continue
        result.append(route)
        if is_catch_all(route):
            break
    return result


def default_route(snapshot: MeshSnapshot, service: Service, port: int) -> rc.Route:
    """A service port without a VirtualService: everything to its cluster, no timeout, the
    mesh's default retries, and its DestinationRule's hash policy."""
    cluster = names.outbound_cluster(port, "", service.hostname)
    route = rc.Route(name="default", match=rc.RouteMatch(prefix="/"))
    route.route.cluster = cluster
    route.route.timeout.SetInParent()
    route.route.max_grpc_timeout.SetInParent()
    consistent = consistent_hash(destination_rule_for(snapshot, service), port)
    if consistent is not None:
        route.route.hash_policy.append(hash_policy(consistent))
    policy = retry_policy(mesh_retry_policy(snapshot), consistent_hash=consistent is not None)
    if policy is not None:
        route.route.retry_policy.CopyFrom(policy)
    return decorate(route, service.hostname, port)
