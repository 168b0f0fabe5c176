"""Schemas of the Kubernetes Gateway API (`gateway.networking.k8s.io`) kinds Ratline reads.

Field names follow the Gateway API's v1 reference (GatewayClass, Gateway, HTTPRoute,
GRPCRoute, TCPRoute, TLSRoute, ReferenceGrant). Unknown fields are refused, as for
Istio's kinds; what is valid but not translated is reported by the model's conversion
(`ratline.model.gateway_api`), which turns these into Istio-shaped Gateways and
VirtualServices.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ratline.api.schemas.common import NonEmptyStr, PortNumber, Seq, Spec


class GatewayClassSpec(Spec):
    """A class of Gateways and the controller that implements it (`istio.io/gateway-controller`)."""

    controller_name: NonEmptyStr
    description: str | None = None
    parameters_ref: dict[str, str] | None = None


class LabelSelector(Spec):
    match_labels: dict[str, str] = {}
    match_expressions: Seq[dict[str, object]] = ()


class RouteNamespaces(Spec):
    from_: Literal["All", "Same", "Selector"] = Field("Same", alias="from")
    selector: LabelSelector | None = None


class RouteGroupKind(Spec):
    group: str | None = None
    kind: NonEmptyStr


class AllowedRoutes(Spec):
    namespaces: RouteNamespaces | None = None
    kinds: Seq[RouteGroupKind] = ()


class SecretObjectReference(Spec):
    group: str | None = None
    kind: str | None = None
    name: NonEmptyStr
    namespace: str | None = None


class GatewayTLSConfig(Spec):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: Seq[SecretObjectReference] = ()
    options: dict[str, str] = {}


class Listener(Spec):
    name: NonEmptyStr
    hostname: str | None = None
    port: PortNumber
    protocol: NonEmptyStr
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes | None = None


class GatewayAddress(Spec):
    type: str | None = None
    value: NonEmptyStr


class KubernetesGatewaySpec(Spec):
    """A Gateway API Gateway: listeners a gateway deployment of its class serves."""

    gateway_class_name: NonEmptyStr
    listeners: Seq[Listener] = Field(min_length=1)
    addresses: Seq[GatewayAddress] = ()
    infrastructure: dict[str, object] | None = None


class ParentReference(Spec):
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: NonEmptyStr
    section_name: str | None = None
    port: PortNumber | None = None


class BackendRef(Spec):
    """A backend of a route (a Service by default) with its weight and, for HTTP, filters."""

    group: str | None = None
    kind: str | None = None
    name: NonEmptyStr
    namespace: str | None = None
    port: PortNumber | None = None
    weight: int = Field(1, ge=0, le=1000000)
    filters: Seq[HTTPRouteFilter] = ()


class PathMatch(Spec):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = "/"


class NameValueMatch(Spec):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: NonEmptyStr
    value: str


class HTTPRouteMatch(Spec):
    path: PathMatch | None = None
    headers: Seq[NameValueMatch] = ()
    query_params: Seq[NameValueMatch] = ()
    method: str | None = None


class HTTPHeader(Spec):
    name: NonEmptyStr
    value: str


class HeaderModifier(Spec):
    set: Seq[HTTPHeader] = ()
    add: Seq[HTTPHeader] = ()
    remove: Seq[NonEmptyStr] = ()


class PathModifier(Spec):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


class RequestRedirect(Spec):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class URLRewrite(Spec):
    hostname: str | None = None
    path: PathModifier | None = None


class Fraction(Spec):
    numerator: int = Field(ge=0)
    denominator: int = Field(100, gt=0)


class RequestMirror(Spec):
    backend_ref: BackendRef
    percent: int | None = Field(None, ge=0, le=100)
    fraction: Fraction | None = None


class HTTPRouteFilter(Spec):
    type: Literal[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "RequestMirror",
        "CORS",
        "ExtensionRef",
    ]
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: URLRewrite | None = None
    request_mirror: RequestMirror | None = None
    cors: dict[str, object] | None = None
    extension_ref: dict[str, str] | None = None


class HTTPRouteTimeouts(Spec):
    request: str | None = None
    backend_request: str | None = None


class HTTPRouteRule(Spec):
    name: str | None = None
    matches: Seq[HTTPRouteMatch] = ()
    filters: Seq[HTTPRouteFilter] = ()
    backend_refs: Seq[BackendRef] = ()
    timeouts: HTTPRouteTimeouts | None = None


class HTTPRouteSpec(Spec):
    parent_refs: Seq[ParentReference] = ()
    hostnames: Seq[NonEmptyStr] = ()
    rules: Seq[HTTPRouteRule] = ()


class GRPCMethodMatch(Spec):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: str | None = None
    method: str | None = None


class GRPCRouteMatch(Spec):
    method: GRPCMethodMatch | None = None
    headers: Seq[NameValueMatch] = ()


class GRPCRouteRule(Spec):
    name: str | None = None
    matches: Seq[GRPCRouteMatch] = ()
    filters: Seq[HTTPRouteFilter] = ()
    backend_refs: Seq[BackendRef] = ()


class GRPCRouteSpec(Spec):
    parent_refs: Seq[ParentReference] = ()
    hostnames: Seq[NonEmptyStr] = ()
    rules: Seq[GRPCRouteRule] = ()


class L4RouteRule(Spec):
    name: str | None = None
    backend_refs: Seq[BackendRef] = Field(min_length=1)


class TCPRouteSpec(Spec):
    parent_refs: Seq[ParentReference] = ()
    rules: Seq[L4RouteRule] = Field(min_length=1)


class TLSRouteSpec(Spec):
    parent_refs: Seq[ParentReference] = ()
    hostnames: Seq[NonEmptyStr] = ()
    rules: Seq[L4RouteRule] = Field(min_length=1)


class ReferenceGrantFrom(Spec):
    group: str
    kind: NonEmptyStr
    namespace: NonEmptyStr


class ReferenceGrantTo(Spec):
    group: str
    kind: NonEmptyStr
    name: str | None = None


class ReferenceGrantSpec(Spec):
    """Lets resources of `from` namespaces refer to objects of this namespace (`to`)."""

    from_: Seq[ReferenceGrantFrom] = Field(min_length=1, alias="from")
    to: Seq[ReferenceGrantTo] = Field(min_length=1)


BackendRef.model_rebuild()

__all__ = [
    "BackendRef",
    "GRPCRouteSpec",
    "GatewayClassSpec",
    "HTTPRouteFilter",
    "HTTPRouteRule",
    "HTTPRouteSpec",
    "KubernetesGatewaySpec",
    "Listener",
    "ParentReference",
    "ReferenceGrantSpec",
    "TCPRouteSpec",
    "TLSRouteSpec",
]
