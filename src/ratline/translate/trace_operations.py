"""Span names as Istio's: each route's `decorator.operation`.

Envoy names a span by the route's decorator when it has one. Istio gives every route one:
`HOST:PORT` of its single destination cluster (else the VirtualService's name and the
port) followed by the route's path (`/*` for a prefix `/`, `PREFIX*` for another prefix,
the exact path, or the regex), and every inbound route `SERVICE_HOST:PORT/*`. So do we,
so an Istio user's trace queries by operation work unchanged.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from ratline.translate import names


def _path(match: rc.RouteMatch) -> str:
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        return f"{match.prefix}*"
    if kind == "path":
        return match.path
    if kind == "safe_regex":
        return match.safe_regex.regex
    if kind == "path_separated_prefix":
        return f"{match.path_separated_prefix}*"
    return "/*"


def route_operation(route: rc.Route, fallback_name: str, port: int) -> str:
    """Istio's operation name for an outbound or gateway route."""
    cluster = route.route.cluster if route.HasField("route") else ""
    try:
        cluster_port, _, host = names.parse_outbound_cluster(cluster)
    except ValueError:
        pass
    else:
        return f"{host}:{cluster_port}{_path(route.match)}"
    return f"{fallback_name}:{port}{_path(route.match)}"


def decorate(route: rc.Route, fallback_name: str, port: int) -> rc.Route:
    """Sets the route's decorator (Istio's span name); returns the route."""
    route.decorator.operation = route_operation(route, fallback_name, port)
    return route


def inbound_operation(service_host: str, port: int) -> str:
    """Istio's operation name for an inbound route: `HOST:PORT/*`."""
    return f"{service_host}:{port}/*"
