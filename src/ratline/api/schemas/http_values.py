"""Value rules of Istio's HTTP routing fields that its validation enforces: header names
and values, retry conditions, CORS methods, gRPC status names.
"""

from __future__ import annotations


def internal_header(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def authority_header(name: str) -> bool:
    """`:authority` and `Host` in a request `set`/`add` mean an authority rewrite (as Istio)."""
    return name.lower() in (":authority", "host")


def check_header_value(value: str) -> str:
    """Envoy's header value syntax: `%` starts a `%VARIABLE%` or is escaped as `%%`."""
    pos = 0
    while pos < len(value):
        if value[pos] == "%":
            if value.startswith("%%", pos):
                pos += 2
                continue
            end = value.find("%", pos + 1)
            if end < 0:
                raise ValueError(f"header value {value!r}: un-escaped % (write %% for a %)")
            pos = end
        pos += 1
    return value


RETRY_ON_POLICIES = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
"""What `retryOn` may name besides status codes (Envoy's x-envoy-retry-on and
x-envoy-retry-grpc-on conditions, as Istio's validation lists them)."""

CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)

GRPC_STATUS_CODES = {
    name: code
    for code, name in enumerate(
        (
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        )
    )
}
"""gRPC status code names (grpc/doc/statuscodes.md) → their numbers."""
