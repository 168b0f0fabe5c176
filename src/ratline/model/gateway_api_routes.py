"""Gateway API route rules → Istio VirtualService rules (camelCase dicts, pure).

`http_rules` turns an HTTPRoute's rules into VirtualService `http:` rules: `matches` →
`match` (path Exact/PathPrefix/RegularExpression → `uri`, `headers`, `queryParams`,
`method`; a GRPCRoute's `method` → `uri` on `/service/method`),
`RequestHeaderModifier`/`ResponseHeaderModifier` → `headers`,
`RequestRedirect` → `redirect`, `URLRewrite` → `rewrite`, `RequestMirror` → `mirrors`,
weighted `backendRefs` → `route` (weights normalised to percentages). `l4_routes` does
the same for TCPRoute and TLSRoute `backendRefs`. A backend in another namespace needs a
ReferenceGrant there (`granted`); one that is not allowed or does not exist is left out
and named in `Refs.problems` (the route's ResolvedRefs condition); a rule left with
no backend answers 500 (404 when it names none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.api.envelope import Resource
from ratline.api.gateway_api import GATEWAY_API_GROUP
from ratline.api.schemas.gateway_api import BackendRef, HTTPRouteFilter

NOT_PERMITTED = "RefNotPermitted"
NOT_FOUND = "BackendNotFound"
INVALID_KIND = "InvalidKind"


@dataclass
class Refs:
    """What resolving one route's references found: problems as (reason, field, text)."""

    problems: list[tuple[str, str, str]] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)
    """(field, what) of valid config that is not translated."""


def granted(
    grants: Iterable[Resource[Any]],
    from_kind: str,
    from_namespace: str,
    to_group: str,
    to_kind: str,
    to_namespace: str,
    to_name: str,
) -> bool:
    """Whether a ReferenceGrant in `to_namespace` lets `from_kind` objects of
    `from_namespace` refer to the `to_kind` object `to_name` there."""
    for grant in grants:
        if grant.namespace != to_namespace:
            continue
        sources = any(
            f.group == GATEWAY_API_GROUP and f.kind == from_kind and f.namespace == from_namespace
            for f in grant.spec.from_
        )
        targets = any(
            t.group == to_group and t.kind == to_kind and t.name in (None, to_name)
            for t in grant.spec.to
        )
        if sources and targets:
            return True
    return False


@dataclass(frozen=True)
class RouteContext:
    """What resolving one route's backends needs."""

    route: Resource[Any]
    services: Mapping[str, Any]
    grants: tuple[Resource[Any], ...]
    domain_suffix: str = "cluster.local"


def _destination(
    ref: BackendRef, where: str, ctx: RouteContext, refs: Refs
) -> dict[str, Any] | None:
    if (ref.group or "") != "" or (ref.kind or "Service") != "Service":
        refs.problems.append(
            (INVALID_KIND, where, f"backend kind {ref.group or ''}/{ref.kind} is not a Service")
        )
        return None
    namespace = ref.namespace or ctx.route.namespace
    if namespace != ctx.route.namespace and not granted(
        ctx.grants, ctx.route.kind, ctx.route.namespace, "", "Service", namespace, ref.name
    ):
        refs.problems.append(
            (
                NOT_PERMITTED,
                where,
                f"Service {namespace}/{ref.name} is in another namespace and no "
                f"ReferenceGrant there allows {ctx.route.kind}s of {ctx.route.namespace}",
            )
        )
        return None
    host = f"{ref.name}.{namespace}.svc.{ctx.domain_suffix}"
    if host not in ctx.services:
        refs.problems.append((NOT_FOUND, where, f"Service {namespace}/{ref.name} not found"))
        return None
    destination: dict[str, Any] = {"host": host}
    if ref.port is not None:
        destination["port"] = {"number": ref.port}
    return destination


def _percentages(weights: list[int]) -> list[int]:
    """Weights → whole percentages summing to 100 (largest remainders round up)."""
    total = sum(weights)
    exact = [w * 100 / total for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in order[: 100 - sum(shares)]:
        shares[i] += 1
    return shares


def _routes(
    backends: Iterable[BackendRef], where: str, ctx: RouteContext, refs: Refs, http: bool
) -> tuple[list[dict[str, Any]], float]:
    """Weighted destinations; and the share of the weight (0 to 1) that went to backends
    left out (missing, not permitted or not a Service)."""
    kept: list[tuple[dict[str, Any], int, BackendRef, int]] = []
    lost = total = 0
    for index, ref in enumerate(backends):
        at = f"{where}.backendRefs[{index}]"
        destination = _destination(ref, at, ctx, refs)
        total += max(ref.weight, 0)
        if destination is None:
            lost += max(ref.weight, 0)
            continue
        if ref.weight > 0:
            kept.append((destination, ref.weight, ref, index))
    lost_share = lost / total if total else 0.0
    if not kept:
        return [], lost_share
    routes = []
    shares = _percentages([w for _d, w, _r, _i in kept])
    for (destination, _w, ref, index), share in zip(kept, shares, strict=True):
        route: dict[str, Any] = {"destination": destination, "weight": share}
        if http:
            headers = _backend_headers(ref, f"{where}.backendRefs[{index}]", refs)
            if headers:
                route["headers"] = headers
        routes.append(route)
    return routes, lost_share


def _header_operations(modifier: Any) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    if modifier.set:
        ops["set"] = {h.name: h.value for h in modifier.set}
    if modifier.add:
        ops["add"] = {h.name: h.value for h in modifier.add}
    if modifier.remove:
        ops["remove"] = list(modifier.remove)
    return ops


def _backend_headers(ref: BackendRef, where: str, refs: Refs) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for index, f in enumerate(ref.filters):
        if f.type == "RequestHeaderModifier" and f.request_header_modifier is not None:
            headers["request"] = _header_operations(f.request_header_modifier)
        elif f.type == "ResponseHeaderModifier" and f.response_header_modifier is not None:
            headers["response"] = _header_operations(f.response_header_modifier)
        else:
            refs.unsupported.append((f"{where}.filters[{index}]", f"backend filter {f.type}"))
    return headers


def _string_match(kind: str, value: str) -> dict[str, str]:
    return {"regex": value} if kind == "RegularExpression" else {"exact": value}


def _path_match(kind: str, value: str, by_segment: bool) -> dict[str, str]:
    """A path match as Istio's `uri`; PathPrefix matches whole path segments (`/static`
    matches `/static` and `/static/x`, never `/statics`), as the Gateway API says, except
    in a rule that replaces the matched prefix (Envoy's `prefix_rewrite` needs a prefix)."""
    if kind == "Exact":
        return {"exact": value}
    if kind == "RegularExpression":
        return {"regex": value}
    if value.endswith("/") or not by_segment:
        return {"prefix": value}
    return {"regex": f"{re.escape(value)}(/.*)?"}


def _grpc_path(method: Any) -> dict[str, str]:
    """A GRPCRoute method match → Istio's `uri` match on `/service/method`."""
    service = method.service
    name = method.method
    if method.type == "RegularExpression":
        return {"regex": f"/{service or '[^/]+'}/{name or '[^/]+'}"}
    if service and name:
        return {"exact": f"/{service}/{name}"}
    if service:
        return {"prefix": f"/{service}/"}
    return {"regex": f"/[^/]+/{name}"} if name else {"prefix": "/"}


def _replaces_prefix(rule: Any) -> bool:
    for f in rule.filters:
        change = {"URLRewrite": f.url_rewrite, "RequestRedirect": f.request_redirect}.get(f.type)
        if change is not None:
            path = change.path
            if path is not None and path.type == "ReplacePrefixMatch":
                return True
    return False


def _matches(rule: Any) -> list[dict[str, Any]]:
    by_segment = not _replaces_prefix(rule)
    matches = []
    for m in rule.matches:
        match: dict[str, Any] = {}
        if getattr(m, "method", None) is not None and not isinstance(m.method, str):
            match["uri"] = _grpc_path(m.method)
        if getattr(m, "path", None) is not None:
            match["uri"] = _path_match(m.path.type, m.path.value, by_segment)
        if m.headers:
            match["headers"] = {h.name.lower(): _string_match(h.type, h.value) for h in m.headers}
        if getattr(m, "query_params", ()):
            match["queryParams"] = {q.name: _string_match(q.type, q.value) for q in m.query_params}
        if isinstance(getattr(m, "method", None), str):
            match["method"] = {"exact": m.method}
        matches.append(match)
    return matches


def _path_value(path: Any) -> str | None:
    if path is None:
        return None
    if path.type == "ReplaceFullPath":
        return str(path.replace_full_path or "/")
    return str(path.replace_prefix_match or "/")


def _apply_filter(
    f: HTTPRouteFilter, where: str, rule: dict[str, Any], ctx: RouteContext, refs: Refs
) -> None:
    if f.type == "RequestHeaderModifier" and f.request_header_modifier is not None:
        rule.setdefault("headers", {})["request"] = _header_operations(f.request_header_modifier)
    elif f.type == "ResponseHeaderModifier" and f.response_header_modifier is not None:
        rule.setdefault("headers", {})["response"] = _header_operations(
            f.response_header_modifier
        )
    elif f.type == "RequestRedirect" and f.request_redirect is not None:
        r = f.request_redirect
        redirect: dict[str, Any] = {"redirectCode": r.status_code}
        if r.scheme:
            redirect["scheme"] = r.scheme
        if r.hostname:
            redirect["authority"] = r.hostname
        if r.port is not None:
            redirect["port"] = r.port
        if r.path is not None and r.path.type == "ReplacePrefixMatch":
            redirect["prefixRewrite"] = _path_value(r.path)
        elif r.path is not None:
            redirect["uri"] = _path_value(r.path)
        rule["redirect"] = redirect
    elif f.type == "URLRewrite" and f.url_rewrite is not None:
        rewrite: dict[str, Any] = {}
        if f.url_rewrite.hostname:
            rewrite["authority"] = f.url_rewrite.hostname
        path = f.url_rewrite.path
        if path is not None and path.type == "ReplaceFullPath":
            rewrite["uriRegexRewrite"] = {"match": "^.*$", "rewrite": _path_value(path)}
        elif path is not None:
            rewrite["uri"] = _path_value(path)
        rule["rewrite"] = rewrite
    elif f.type == "RequestMirror" and f.request_mirror is not None:
        mirror = f.request_mirror
        destination = _destination(mirror.backend_ref, f"{where}.requestMirror.backendRef",
                                   ctx, refs)
        if destination is not None:
            item: dict[str, Any] = {"destination": destination}
            if mirror.percent is not None:
                item["percentage"] = {"value": float(mirror.percent)}
            elif mirror.fraction is not None:
                value = 100.0 * mirror.fraction.numerator / mirror.fraction.denominator
                item["percentage"] = {"value": value}
            rule.setdefault("mirrors", []).append(item)
    else:
        refs.unsupported.append((where, f"filter {f.type}"))


def http_rules(ctx: RouteContext, refs: Refs) -> list[dict[str, Any]]:
    """The VirtualService `http:` rules of an HTTPRoute or a GRPCRoute."""
    rules = []
    for index, rule in enumerate(ctx.route.spec.rules):
        where = f"spec.rules[{index}]"
        http: dict[str, Any] = {"name": rule.name or f"{ctx.route.name}.{index}"}
        matches = _matches(rule)
        if matches:
            http["match"] = matches
        for k, f in enumerate(rule.filters):
            _apply_filter(f, f"{where}.filters[{k}]", http, ctx, refs)
        timeouts = getattr(rule, "timeouts", None)
        if timeouts is not None and timeouts.request:
            http["timeout"] = timeouts.request
        if timeouts is not None and timeouts.backend_request:
            refs.unsupported.append((f"{where}.timeouts.backendRequest", "timeouts.backendRequest"))
        if "redirect" not in http:
            routes, lost_share = _routes(rule.backend_refs, where, ctx, refs, http=True)
            if routes:
                http["route"] = routes
                if lost_share > 0:
                    # The share of invalid backends answers 500, as the Gateway API says: an
                    # abort of that share before routing, the rest split by the kept weights.
                    percentage = {"value": round(lost_share * 100, 4)}
                    http["fault"] = {"abort": {"httpStatus": 500, "percentage": percentage}}
            else:
                # No backend to send to: 500 for invalid backends, 404 when none is named.
                status = 500 if rule.backend_refs else 404
                http.pop("headers", None)
                http.pop("mirrors", None)
                http.pop("rewrite", None)
                http["directResponse"] = {"status": status}
        rules.append(http)
    return rules


def l4_routes(ctx: RouteContext, refs: Refs) -> list[list[dict[str, Any]]]:
    """The weighted destinations of each TCPRoute or TLSRoute rule."""
    found = []
    for index, rule in enumerate(ctx.route.spec.rules):
        routes, _lost = _routes(rule.backend_refs, f"spec.rules[{index}]", ctx, refs, http=False)
        found.append(routes)
    return found


__all__ = ["Refs", "RouteContext", "granted", "http_rules", "l4_routes"]
