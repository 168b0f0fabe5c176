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
    Re2RegexOrPresent,
    Seq,
    Spec,
    Weight,
    only_one_of,
)
from ratline.api.schemas.http_values import (
    CORS_METHODS,
    GRPC_STATUS_CODES,
    RETRY_ON_POLICIES,
    authority_header,
    check_header_value,
    internal_header,
)


class StringMatch(Spec):
    """Match a string exactly, by prefix or by RE2 regex; empty means "present"."""

    exact: str | None = None
    prefix: str | None = None
    regex: Re2RegexOrPresent | None = None

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

    @model_validator(mode="after")
    def _values(self) -> HeaderOperations:
        for value in (*self.set.values(), *self.add.values()):
            check_header_value(value)
        for name in (*self.set, *self.add, *self.remove):
            if not name:
                raise ValueError("header name cannot be empty")
        return self

    def check_names(self, request: bool) -> None:
        """Istio's rules: no pseudo-headers (`:authority`/`Host` only in request set/add)."""
        changed = (*self.set, *self.add)
        for name in (*changed, *self.remove):
            allowed = request and name in changed and authority_header(name)
            if internal_header(name) and not allowed:
                if name.lower() == "host":
                    raise ValueError(f"invalid header {name!r}: cannot set Host header")
                raise ValueError(f'invalid header {name!r}: header cannot have ":" prefix')


class Headers(Spec):
    """Header manipulation on requests (before forwarding) and responses."""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None

    @model_validator(mode="after")
    def _names(self) -> Headers:
        if self.request is not None:
            self.request.check_names(request=True)
        if self.response is not None:
            self.response.check_names(request=False)
        authorities = (
            [
                value
                for ops in (self.request.set, self.request.add)
                for name, value in ops.items()
                if authority_header(name)
            ]
            if self.request is not None
            else []
        )
        if len(authorities) > 1:
            raise ValueError("authority header cannot be set multiple times")
        return self

    @property
    def authority(self) -> str | None:
        """The authority a request `set` (else `add`) of `:authority`/`Host` rewrites to."""
        if self.request is None:
            return None
        for ops in (self.request.set, self.request.add):
            for name, value in ops.items():
                if authority_header(name):
                    return value
        return None


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
    scheme: Literal["http", "https"] | None = None
    redirect_code: int | None = None
    prefix_rewrite: str | None = None

    @model_validator(mode="after")
    def _port_or_derive(self) -> HTTPRedirect:
        only_one_of(self, ("port", "derive_port"), required=False)
        only_one_of(self, ("uri", "prefix_rewrite"), required=False)
        if not any(
            (
                self.uri,
                self.prefix_rewrite,
                self.authority,
                self.scheme,
                self.port,
                self.derive_port,
            )
        ):
            raise ValueError("redirect must specify uri, prefixRewrite, authority, scheme or port")
        if self.redirect_code is not None and not 300 <= self.redirect_code <= 399:
            raise ValueError(f"{self.redirect_code} is not a valid redirect code, must be 3xx")
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

    @model_validator(mode="after")
    def _something(self) -> HTTPRewrite:
        only_one_of(self, ("uri", "uri_regex_rewrite"), required=False)
        if not (self.uri or self.authority or self.uri_regex_rewrite):
            raise ValueError("rewrite must specify at least one of uri, uriRegexRewrite, authority")
        return self


class HTTPRetry(Spec):
    """Retry policy for an HTTP route."""

    attempts: NonNegativeInt = 0
    per_try_timeout: PositiveDuration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: PositiveDuration | None = None

    @model_validator(mode="after")
    def _policies(self) -> HTTPRetry:
        if self.attempts == 0 and (
            self.per_try_timeout is not None
            or self.retry_on
            or self.retry_remote_localities is not None
        ):
            raise ValueError("retry policy configured while attempts is 0 (retries disabled)")
        for policy in (part.strip() for part in (self.retry_on or "").split(",")):
            code = int(policy) if policy.isdigit() else 0
            if policy and not 100 <= code <= 599 and policy not in RETRY_ON_POLICIES:
                raise ValueError(f"{policy!r} is not a valid retryOn policy")
        return self


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

    @model_validator(mode="after")
    def _check(self) -> CorsPolicy:
        for method in self.allow_methods:
            if method not in CORS_METHODS:
                raise ValueError(f"{method!r} is not a supported HTTP method")
        for origin in self.allow_origins:
            if not (origin.exact or origin.prefix or origin.regex):
                raise ValueError("allowOrigins entries need a non-empty exact, prefix or regex")
        if self.max_age is not None and self.max_age != int(self.max_age):
            raise ValueError("maxAge is accurate only to seconds")
        return self


class FaultDelay(Spec):
    """Delay requests before forwarding them."""

    fixed_delay: PositiveDuration | None = None
    exponential_delay: PositiveDuration | None = None
    percentage: Percent | None = None
    percent: IntPercent | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FaultDelay:
        only_one_of(self, ("fixed_delay", "exponential_delay"), required=True)
        if self.exponential_delay is not None:
            raise ValueError("exponentialDelay is not supported (by Istio either)")
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
        if self.http2_error is not None:
            raise ValueError("http2Error abort is not supported (by Istio either)")
        if self.grpc_status is not None and self.grpc_status not in GRPC_STATUS_CODES:
            raise ValueError(
                f"gRPC status {self.grpc_status!r} is not a gRPC status code name "
                "(for example NOT_FOUND, UNAVAILABLE)"
            )
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
        header_authority = self.headers.authority if self.headers is not None else None
        if header_authority is not None and self.rewrite is not None and self.rewrite.authority:
            raise ValueError("authority is set twice: by rewrite.authority and by headers")
        if self.delegate is not None and (self.redirect or self.direct_response):
            raise ValueError("a route with delegate cannot also redirect or answer directly")
        answered = self.redirect is not None or self.direct_response is not None
        if answered and self.rewrite is not None:
            raise ValueError("rewrite cannot be combined with redirect or directResponse")
        if answered and self.fault is not None:
            raise ValueError("fault cannot be combined with redirect or directResponse")
        prefix_redirect = self.redirect is not None and self.redirect.prefix_rewrite is not None
        if prefix_redirect and any(m.uri is not None and m.uri.prefix is None for m in self.match):
            raise ValueError("redirect prefixRewrite needs every uri match to be a prefix")
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
