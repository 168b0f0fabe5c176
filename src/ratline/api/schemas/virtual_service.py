"""Istio's VirtualService (networking.istio.io): HTTP, TLS and TCP routing rules.

Field names and semantics follow Istio's documentation of `VirtualService`; import these
through `ratline.api.schemas.networking`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ratline.api.schemas.common import (
    Duration,
    HttpStatus,
    IntPercent,
    IpOrCidr,
    NonEmptyStr,
    NonNegativeInt,
    Percent,
    PortNumber,
    PortSelector,
    PositiveDuration,
    Re2Regex,
    Seq,
    Spec,
    Weight,
    only_one_of,
)


class StringMatch(Spec):
    """Match a string exactly, by prefix or by RE2 regex; empty means "present"."""

    exact: str | None = None
    prefix: str | None = None
    regex: Re2Regex | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        only_one_of(self, ("exact", "prefix", "regex"), required=False)
        return self


class Destination(Spec):
    """Where traffic goes: a service host, optionally a subset and port."""

    host: NonEmptyStr
    subset: str | None = None
    port: PortSelector | None = None


class HeaderOperations(Spec):
    """Headers to set, append or remove."""

    set: dict[str, str] = {}
    add: dict[str, str] = {}
    remove: Seq[str] = ()


class Headers(Spec):
    """Header manipulation on requests (before forwarding) and responses."""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class HTTPMatchRequest(Spec):
    """Conditions a request must meet for its rule to apply (all must hold)."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = {}
    port: PortNumber | None = None
    source_labels: dict[str, str] = {}
    gateways: Seq[str] = ()
    query_params: dict[str, StringMatch] = {}
    ignore_uri_case: bool = False
    without_headers: dict[str, StringMatch] = {}
    source_namespace: str | None = None
    stat_prefix: str | None = None


class HTTPRouteDestination(Spec):
    """One weighted destination of an HTTP route."""

    destination: Destination
    weight: Weight | None = None
    headers: Headers | None = None


class RouteDestination(Spec):
    """One weighted destination of a TCP or TLS route."""

    destination: Destination
    weight: Weight | None = None


class HTTPRedirect(Spec):
    """Answer with a redirect (301 by default) instead of forwarding."""

    uri: str | None = None
    authority: str | None = None
    port: PortNumber | None = None
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str | None = None
    redirect_code: int | None = None

    @model_validator(mode="after")
    def _port_or_derive(self) -> HTTPRedirect:
        only_one_of(self, ("port", "derive_port"), required=False)
        return self


class HTTPBody(Spec):
    """A direct response body: text or base64 bytes."""

    string: str | None = None
    bytes: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> HTTPBody:
        only_one_of(self, ("string", "bytes"), required=True)
        return self


class HTTPDirectResponse(Spec):
    """Answer directly with a status and optional body."""

    status: HttpStatus
    body: HTTPBody | None = None


class Delegate(Spec):
    """Hand the route over to another VirtualService."""

    name: NonEmptyStr
    namespace: str | None = None


class RegexRewrite(Spec):
    """Rewrite the path with an RE2 regex and substitution."""

    match: Re2Regex
    rewrite: str


class HTTPRewrite(Spec):
    """Rewrite the path or authority before forwarding."""

    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPRetry(Spec):
    """Retry policy for an HTTP route."""

    attempts: NonNegativeInt = 0
    per_try_timeout: PositiveDuration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: PositiveDuration | None = None


class CorsPolicy(Spec):
    """Cross-origin resource sharing policy."""

    allow_origins: Seq[StringMatch] = ()
    allow_origin: Seq[str] = ()
    allow_methods: Seq[str] = ()
    allow_headers: Seq[str] = ()
    expose_headers: Seq[str] = ()
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] | None = None


class FaultDelay(Spec):
    """Delay requests before forwarding them."""

    fixed_delay: PositiveDuration | None = None
    exponential_delay: PositiveDuration | None = None
    percentage: Percent | None = None
    percent: IntPercent | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FaultDelay:
        only_one_of(self, ("fixed_delay", "exponential_delay"), required=True)
        return self


class FaultAbort(Spec):
    """Abort requests with an error instead of forwarding them."""

    http_status: HttpStatus | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FaultAbort:
        only_one_of(self, ("http_status", "grpc_status", "http2_error"), required=True)
        return self


class HTTPFaultInjection(Spec):
    """Inject delays and errors into requests."""

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _delay_or_abort(self) -> HTTPFaultInjection:
        if self.delay is None and self.abort is None:
            raise ValueError("set delay or abort")
        return self


class HTTPMirrorPolicy(Spec):
    """One mirror destination with the share of traffic copied to it."""

    destination: Destination
    percentage: Percent | None = None


class HTTPRoute(Spec):
    """One HTTP rule: match conditions and what to do with matching requests."""

    name: str | None = None
    match: Seq[HTTPMatchRequest] = ()
    route: Seq[HTTPRouteDestination] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: Seq[HTTPMirrorPolicy] = ()
    mirror_percent: IntPercent | None = None
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None

    @model_validator(mode="after")
    def _one_action(self) -> HTTPRoute:
        actions = [
            name
            for name, present in (
                ("route", bool(self.route)),
                ("redirect", self.redirect is not None),
                ("directResponse", self.direct_response is not None),
                ("delegate", self.delegate is not None),
            )
            if present
        ]
        if not actions:
            raise ValueError("set one of route, redirect, directResponse, delegate")
        if len(actions) > 1:
            raise ValueError(f"set only one of {', '.join(actions)}")
        if self.mirror is not None and self.mirrors:
            raise ValueError("set only one of mirror, mirrors")
        if self.rewrite is not None and self.redirect is not None:
            raise ValueError("rewrite cannot be combined with redirect")
        return self


class TLSMatchAttributes(Spec):
    """Match TLS connections by SNI and connection attributes."""

    sni_hosts: Seq[NonEmptyStr] = Field(min_length=1)
    destination_subnets: Seq[IpOrCidr] = ()
    port: PortNumber | None = None
    source_labels: dict[str, str] = {}
    gateways: Seq[str] = ()
    source_namespace: str | None = None


class L4MatchAttributes(Spec):
    """Match TCP connections by address, port and source."""

    destination_subnets: Seq[IpOrCidr] = ()
    port: PortNumber | None = None
    source_subnet: IpOrCidr | None = None
    source_labels: dict[str, str] = {}
    gateways: Seq[str] = ()
    source_namespace: str | None = None


class TLSRoute(Spec):
    """A rule for unterminated TLS (routed by SNI)."""

    match: Seq[TLSMatchAttributes] = Field(min_length=1)
    route: Seq[RouteDestination] = ()


class TCPRoute(Spec):
    """A rule for opaque TCP traffic."""

    match: Seq[L4MatchAttributes] = ()
    route: Seq[RouteDestination] = ()


class VirtualServiceSpec(Spec):
    """How requests for some hosts are routed."""

    hosts: Seq[NonEmptyStr] = ()
    gateways: Seq[NonEmptyStr] = ()
    http: Seq[HTTPRoute] = ()
    tls: Seq[TLSRoute] = ()
    tcp: Seq[TCPRoute] = ()
    export_to: Seq[str] = ()


__all__ = [
    "CorsPolicy",
    "Delegate",
    "Destination",
    "FaultAbort",
    "FaultDelay",
    "HTTPBody",
    "HTTPDirectResponse",
    "HTTPFaultInjection",
    "HTTPMatchRequest",
    "HTTPMirrorPolicy",
    "HTTPRedirect",
    "HTTPRetry",
    "HTTPRewrite",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HeaderOperations",
    "Headers",
    "L4MatchAttributes",
    "RegexRewrite",
    "RouteDestination",
    "StringMatch",
    "TCPRoute",
    "TLSMatchAttributes",
    "TLSRoute",
    "VirtualServiceSpec",
]
