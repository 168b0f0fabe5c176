"""Istio's standard metrics: names, labels, buckets, and the raw tags Envoy records.

Each sidecar and gateway counts requests in Envoy itself, with Envoy's `stats` access
logger (one counter or histogram per Istio metric, each tag a substitution format).
Envoy exposes them as `envoy_istio_*`; some tags are raw inputs (`RAW_*`) that the agent
turns into Istio's labels when it serves the proxy's metrics (`ratline.observability.merge`).
"""

from __future__ import annotations

REQUESTS_TOTAL = "istio_requests_total"
REQUEST_DURATION = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"
TCP_SENT = "istio_tcp_sent_bytes_total"
TCP_RECEIVED = "istio_tcp_received_bytes_total"
TCP_OPENED = "istio_tcp_connections_opened_total"
TCP_CLOSED = "istio_tcp_connections_closed_total"

HTTP_COUNTERS = (REQUESTS_TOTAL,)
HTTP_HISTOGRAMS = (REQUEST_DURATION, REQUEST_BYTES, RESPONSE_BYTES)
TCP_COUNTERS = (TCP_SENT, TCP_RECEIVED, TCP_OPENED, TCP_CLOSED)
ALL_METRICS = HTTP_COUNTERS + HTTP_HISTOGRAMS + TCP_COUNTERS

TELEMETRY_METRIC = {
    "REQUEST_COUNT": REQUESTS_TOTAL,
    "REQUEST_DURATION": REQUEST_DURATION,
    "REQUEST_SIZE": REQUEST_BYTES,
    "RESPONSE_SIZE": RESPONSE_BYTES,
    "TCP_OPENED_CONNECTIONS": TCP_OPENED,
    "TCP_CLOSED_CONNECTIONS": TCP_CLOSED,
    "TCP_SENT_BYTES": TCP_SENT,
    "TCP_RECEIVED_BYTES": TCP_RECEIVED,
}
"""The Telemetry API's metric names (`overrides[].match.metric`) → Istio's metric."""

HELP = {
    REQUESTS_TOTAL: "Requests handled by the proxy, per reporter.",
    REQUEST_DURATION: "Request duration in milliseconds.",
    REQUEST_BYTES: "Request size (headers and body) in bytes.",
    RESPONSE_BYTES: "Response size (headers and body) in bytes.",
    TCP_SENT: "Bytes sent to the downstream of TCP connections.",
    TCP_RECEIVED: "Bytes received from the downstream of TCP connections.",
    TCP_OPENED: "TCP connections opened.",
    TCP_CLOSED: "TCP connections closed.",
}

BUCKETS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip
"""Istio's histogram buckets (Envoy's defaults, which Istio keeps for every histogram)."""

ENVOY_PREFIX = "envoy_"
"""Envoy's Prometheus output puts this before every stat name."""

SOURCE, DESTINATION = "source", "destination"

LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
"""Istio's standard labels, in Istio's order."""

TCP_DROPPED = frozenset({"response_code", "grpc_response_status"})
"""Labels the TCP metrics do not carry (their request_protocol is `tcp`)."""

# Raw tags: inputs to labels, never exposed as they are.
RAW_PEER = "ratline_peer"
"""The peer's `x-envoy-peer-metadata` (base64 Struct), from dynamic metadata."""
RAW_CLUSTER = "ratline_upstream_cluster"
"""The upstream cluster (source reporter): names the destination service and subset."""
RAW_ROUTE = "ratline_route"
"""The route's name (source reporter): Istio's `block_all` route is `BlackHoleCluster`."""
RAW_SERVICES = "ratline_services"
"""The services of the inbound port (destination reporter), comma-separated."""
RAW_AUTHORITY = "ratline_authority"
"""The request's :authority (destination reporter), to pick among `RAW_SERVICES`."""
RAW_CONTENT_TYPE = "ratline_content_type"
"""The request's content-type: `grpc` or `http` for `request_protocol`."""


PEER_METADATA_HEADER = "x-envoy-peer-metadata"
PEER_METADATA_ID_HEADER = "x-envoy-peer-metadata-id"
PEER_METADATA_NAMESPACE = "ratline.peer"
"""Dynamic metadata namespace where a proxy keeps its peer's metadata header."""

UNKNOWN = "unknown"
DEFAULT_CLUSTER_ID = "Kubernetes"
"""Istio's default cluster id (`source_cluster`, `destination_cluster`)."""
RAW_REMOVE = "ratline_remove"
"""Labels a Telemetry `tagOverrides` REMOVE drops, comma-separated."""
RAW_OVERRIDE_PREFIX = "ratline_set_"
"""`ratline_set_<label>`: a Telemetry `tagOverrides` UPSERT value for `<label>`."""
