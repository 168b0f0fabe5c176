"""The per-route features of an Istio HTTPRoute as Envoy config, one function each, as
Istio's pilot translates them: fault injection and CORS (per-route configs of the HTTP
filters `http_filters()` adds), retries, mirrors, redirects, direct responses, headers
and consistent-hash policies.

Pure functions of schema objects; `translate.http_routes` composes them into routes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from ratline.api.schemas.http_values import GRPC_STATUS_CODES, internal_header
from ratline.api.schemas.networking import (
    ConsistentHashLB,
    CorsPolicy,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPRedirect,
    HTTPRetry,
    StringMatch,
)
from ratline.translate.common import duration, pack_any

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
"""Istio's default `retryOn`."""
DEFAULT_RETRIABLE_CODES = (503,)
"""Retried when `retryOn` is not set, as Istio did before 1.24 (1.24 dropped 503): a replica
whose app just died answers 503 from its sidecar until the runner reports it, and the
retry goes to another replica (docs/differences.md)."""
DEFAULT_RETRY_ATTEMPTS = 2
HOST_SELECTION_RETRY_ATTEMPTS = 5
RETRY_PRIORITY_UPDATE_FREQUENCY = 2
"""How often (in retries) `retryRemoteLocalities` moves to the next priority, as Istio."""

REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}
"""The redirect codes Envoy can send (Istio drops a route with any other 3xx)."""


def http_filters() -> list[hcm_pb2.HttpFilter]:
    """The fault and CORS filters (in Istio's order) that per-route configs switch on."""
    return [
        hcm_pb2.HttpFilter(name=FAULT_FILTER, typed_config=pack_any(fault_pb2.HTTPFault())),
        hcm_pb2.HttpFilter(name=CORS_FILTER, typed_config=pack_any(cors_pb2.Cors())),
    ]


# ---- shares ------------------------------------------------------------------------------


def fraction(percent: float) -> percent_pb2.FractionalPercent:
    """A percentage with decimals (Istio's Percent) as parts per million."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def whole_fraction(percent: int) -> percent_pb2.FractionalPercent:
    return percent_pb2.FractionalPercent(
        numerator=percent, denominator=percent_pb2.FractionalPercent.HUNDRED
    )


# ---- string matching ---------------------------------------------------------------------


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


# ---- fault injection ---------------------------------------------------------------------


def fault_config(fault: HTTPFaultInjection) -> fault_pb2.HTTPFault | None:
    """Delay and abort as Envoy's HTTPFault; a share left unset injects nothing (as Istio)."""
    out = fault_pb2.HTTPFault()
    delay = fault.delay
    if delay is not None and delay.fixed_delay is not None:
        if delay.percentage is not None:
            out.delay.percentage.CopyFrom(fraction(delay.percentage.value))
        else:
            out.delay.percentage.CopyFrom(whole_fraction(delay.percent or 0))
        out.delay.fixed_delay.CopyFrom(duration(delay.fixed_delay))
    abort = fault.abort
    if abort is not None:
        if abort.http_status is not None:
            out.abort.http_status = abort.http_status
        elif abort.grpc_status is not None:
            out.abort.grpc_status = GRPC_STATUS_CODES[abort.grpc_status]
        if abort.percentage is not None:
            out.abort.percentage.CopyFrom(fraction(abort.percentage.value))
        else:
            out.abort.percentage.CopyFrom(whole_fraction(0))
    if not out.HasField("delay") and not out.HasField("abort"):
        return None
    return out


# ---- CORS --------------------------------------------------------------------------------


def cors_policy(cors: CorsPolicy) -> cors_pb2.CorsPolicy:
    """Istio's CorsPolicy: preflights that match no origin are forwarded unless IGNORE."""
    out = cors_pb2.CorsPolicy()
    out.forward_not_matching_preflights.value = cors.unmatched_preflights != "IGNORE"
    if cors.allow_origins:
        out.allow_origin_string_match.extend(string_matcher(o) for o in cors.allow_origins)
    else:
        out.allow_origin_string_match.extend(
            string_pb2.StringMatcher(exact=origin) for origin in cors.allow_origin
        )
    out.filter_enabled.default_value.CopyFrom(whole_fraction(100))
    if cors.allow_credentials is not None:
        out.allow_credentials.value = cors.allow_credentials
    out.allow_headers = ",".join(cors.allow_headers)
    out.allow_methods = ",".join(cors.allow_methods)
    out.expose_headers = ",".join(cors.expose_headers)
    if cors.max_age is not None:
        out.max_age = str(int(cors.max_age))
    return out


# ---- retries -----------------------------------------------------------------------------


def _retry_conditions(retry_on: str) -> tuple[str, list[int]]:
    conditions, codes = [], []
    for item in (part.strip() for part in retry_on.split(",")):
        if item.isdigit():
            codes.append(int(item))
        elif item:
            conditions.append(item)
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    return ",".join(conditions), codes


def retry_policy(retries: HTTPRetry | None, consistent_hash: bool = False) -> rc.RetryPolicy | None:
    """Istio's retry policy: 2 attempts on connection failures and 503 unless set; 0 = none.

    With consistent hashing the retry stays on the hashed host (no previous-hosts predicate).
    """
    if retries is not None and retries.attempts <= 0:
        return None
    policy = rc.RetryPolicy(host_selection_retry_max_attempts=HOST_SELECTION_RETRY_ATTEMPTS)
    policy.num_retries.value = DEFAULT_RETRY_ATTEMPTS if retries is None else retries.attempts
    policy.retry_on = DEFAULT_RETRY_ON
    codes = list(DEFAULT_RETRIABLE_CODES)
    previous_hosts = not consistent_hash
    if retries is not None:
        if retries.retry_on:
            policy.retry_on, codes = _retry_conditions(retries.retry_on)
        if retries.per_try_timeout is not None:
            policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
        if retries.retry_ignore_previous_hosts is not None:
            previous_hosts = retries.retry_ignore_previous_hosts
        if retries.retry_remote_localities:
            priority = policy.retry_priority
            priority.name = "envoy.retry_priorities.previous_priorities"
            priority.typed_config.CopyFrom(
                pack_any(
                    previous_priorities_config_pb2.PreviousPrioritiesConfig(
                        update_frequency=RETRY_PRIORITY_UPDATE_FREQUENCY
                    )
                )
            )
        if retries.backoff is not None:
            policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff))
    policy.retriable_status_codes.extend(codes)
    if previous_hosts:
        predicate = policy.retry_host_predicate.add(
            name="envoy.retry_host_predicates.previous_hosts"
        )
        predicate.typed_config.CopyFrom(pack_any(previous_hosts_pb2.PreviousHostsPredicate()))
    return policy


# ---- mirrors -----------------------------------------------------------------------------


def mirror_policy(cluster: str, share: float | None) -> rc.RouteAction.RequestMirrorPolicy | None:
    """A copy of `share` % of requests (100 when unset, none when 0); responses are dropped."""
    if share is not None and share <= 0:
        return None
    policy = rc.RouteAction.RequestMirrorPolicy(cluster=cluster)
    policy.runtime_fraction.default_value.CopyFrom(
        whole_fraction(100) if share is None else fraction(share)
    )
    policy.trace_sampled.value = False
    return policy


# ---- redirect and direct response --------------------------------------------------------


def redirect_action(redirect: HTTPRedirect, port: int, tls: bool = False) -> rc.RedirectAction:
    """An Istio HTTPRedirect; `port` is the port the route serves (for FROM_REQUEST_PORT).

    The caller checks the code is one Envoy can send (`REDIRECT_CODES`)."""
    action = rc.RedirectAction(host_redirect=redirect.authority or "")
    if redirect.prefix_rewrite is not None:
        action.prefix_rewrite = redirect.prefix_rewrite
    elif redirect.uri is not None:
        action.path_redirect = redirect.uri
    if redirect.scheme is not None:
        action.scheme_redirect = redirect.scheme
    if redirect.port is not None or redirect.derive_port is not None:
        if redirect.port is not None:
            action.port_redirect = redirect.port
        elif redirect.derive_port == "FROM_REQUEST_PORT":
            action.port_redirect = port
        scheme = redirect.scheme or ("https" if tls else "http")
        if (action.port_redirect, scheme) in ((80, "http"), (443, "https")):
            action.port_redirect = 0  # no explicit default port
    action.response_code = REDIRECT_CODES.get(redirect.redirect_code or 301, 0)  # type: ignore[assignment]
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


# ---- headers -----------------------------------------------------------------------------


def _header_options(operations: HeaderOperations) -> list[base_pb2.HeaderValueOption]:
    result = []
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    append = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    for mapping, mode in ((operations.set, overwrite), (operations.add, append)):
        for name in sorted(mapping):
            if internal_header(name):
                continue  # `:authority`/`Host`: an authority rewrite, see `Headers.authority`
            header = base_pb2.HeaderValue(key=name, value=mapping[name])
            result.append(base_pb2.HeaderValueOption(header=header, append_action=mode))
    return result


def _removed(names: Iterable[str]) -> list[str]:
    return [name for name in names if not internal_header(name)]


def apply_headers(target: Any, headers: Headers) -> None:
    """Header set/add/remove on a Route or a weighted cluster entry (appended to what is
    there, so a destination's operations come after, and win over, the route's)."""
    if headers.request is not None:
        target.request_headers_to_add.extend(_header_options(headers.request))
        target.request_headers_to_remove.extend(_removed(headers.request.remove))
    if headers.response is not None:
        target.response_headers_to_add.extend(_header_options(headers.response))
        target.response_headers_to_remove.extend(_removed(headers.response.remove))


# ---- consistent hashing ------------------------------------------------------------------


def hash_policy(consistent: ConsistentHashLB) -> rc.RouteAction.HashPolicy:
    """What a DestinationRule's consistentHash hashes on, as a route hash policy."""
    policy = rc.RouteAction.HashPolicy()
    if consistent.http_header_name is not None:
        policy.header.header_name = consistent.http_header_name
    elif consistent.http_cookie is not None:
        cookie = consistent.http_cookie
        policy.cookie.name = cookie.name
        policy.cookie.path = cookie.path or ""
        if cookie.ttl is not None:
            policy.cookie.ttl.CopyFrom(duration(cookie.ttl))
        for attribute in cookie.attributes:
            policy.cookie.attributes.add(name=attribute.name, value=attribute.value)
    elif consistent.use_source_ip:
        policy.connection_properties.source_ip = True
    elif consistent.http_query_parameter_name is not None:
        policy.query_parameter.name = consistent.http_query_parameter_name
    return policy
