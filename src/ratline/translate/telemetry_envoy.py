"""Envoy config for telemetry: Istio's metrics, peer metadata, access logs and tracing.

Metrics are counted in Envoy by its `stats` access logger (`istio_*` stats whose tags
are substitution formats: the proxy's own identity as literals, the peer's metadata
header, certificates' URI SANs, the upstream cluster, the response), which is exactly
where Istio's stats filter keeps them; the agent renames and relabels them when it
serves them (`ratline.observability.merge`). Peer metadata travels as Istio's
`x-envoy-peer-metadata(-id)` headers: the client adds its own to requests and the server
to responses (`header_mutation`); the receiving side keeps the peer's in dynamic
metadata and strips the header (`header_to_metadata`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import base_pb2, proxy_protocol_pb2, substitution_format_string_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2, zipkin_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as data_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import struct_pb2

from ratline.observability import istio_metrics as im
from ratline.observability.peer_metadata import PeerMetadata
from ratline.translate.clusters import HTTP_PROTOCOL_OPTIONS, _protocol_options
from ratline.translate.common import pack_any
from ratline.translate.endpoints import socket_address
from ratline.translate.peer_exchange import UPSTREAM_PEER_FORMAT, tcp_proxy_tlv
from ratline.translate.telemetry import (
    CLIENT,
    SERVER,
    STDOUT,
    AccessLogChoice,
    ProxyTelemetry,
    TracingChoice,
)

HEADER_TO_METADATA = "envoy.filters.http.header_to_metadata"
HEADER_MUTATION = "envoy.filters.http.header_mutation"
STATS_LOGGER = "envoy.access_loggers.stats"
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
XDS_CLUSTER = "xds-grpc"
"""The bootstrap's cluster to the control plane; the embedded span store listens there."""
PEER_KEY = "metadata"
PEER_ID_KEY = "id"

ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
"""Istio's default access log format (TEXT)."""

ISTIO_JSON_FORMAT = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "route_name": "%ROUTE_NAME%",
}
"""Istio's default access log fields (JSON)."""


def literal(value: str) -> str:
    """A substitution format that yields `value` as it is (`-` for nothing, as Envoy's
    formatters write it: a tag's format may not be empty)."""
    return value.replace("%", "%%") if value else "-"


# ---- metrics ----------------------------------------------------------------------------


def request_tags(
    reporter: str, own: PeerMetadata, services: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The raw tags of one reporter's HTTP metrics (see `ratline.observability.labels`)."""
    peer = f"%DYNAMIC_METADATA({im.PEER_METADATA_NAMESPACE}:{PEER_KEY})%"
    tags = [("reporter", reporter)]
    # The proxy's own identity is not recorded per request: the agent adds it from the
    # node metadata it gave the proxy (`labels.identity`).
    if reporter == im.DESTINATION:
        tags += [
            ("source_principal", "%DOWNSTREAM_PEER_URI_SAN%"),
            ("destination_principal", "%DOWNSTREAM_LOCAL_URI_SAN%"),
            (im.RAW_SERVICES, literal(",".join(services))),
        ]
        if len(services) > 1:
            # Only to pick among several services (one more format per request otherwise).
            tags.append((im.RAW_AUTHORITY, "%REQ(:authority)%"))
    else:
        tags += [
            ("source_principal", "%UPSTREAM_LOCAL_URI_SAN%"),
            ("destination_principal", "%UPSTREAM_PEER_URI_SAN%"),
            (im.RAW_CLUSTER, "%UPSTREAM_CLUSTER%"),
            (im.RAW_ROUTE, "%ROUTE_NAME%"),
        ]
    tags += [
        (im.RAW_PEER, peer),
        (im.RAW_CONTENT_TYPE, "%REQ(content-type)%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("grpc_response_status", "%GRPC_STATUS_NUMBER%"),
    ]
    return tags


STAT_PREFIX = "istio"
"""Envoy's stats logger prefixes its stats (`istio.requests_total`); the field is marked
deprecated in Envoy 1.40, but its replacement (`stats_scope`) is not in the protos here."""


def _stats_config() -> stats_pb2.Config:
    return stats_pb2.Config(stat_prefix=STAT_PREFIX)


def _stat(
    name: str, tags: Sequence[tuple[str, str]], overrides: Sequence[tuple[str, str | None]]
) -> stats_pb2.Config.Stat:
    stat = stats_pb2.Config.Stat(name=name.removeprefix(STAT_PREFIX + "_"))
    removed = [label for label, value in overrides if value is None]
    for tag, fmt in tags:
        stat.tags.add(name=tag, value_format=fmt)
    for label, value in overrides:
        if value is not None:
            stat.tags.add(name=im.RAW_OVERRIDE_PREFIX + label, value_format=value)
    if removed:
        stat.tags.add(name=im.RAW_REMOVE, value_format=literal(",".join(removed)))
    return stat


_HISTOGRAM_VALUES = {
    im.REQUEST_DURATION: ("%DURATION%", stats_pb2.Config.Histogram.Milliseconds),
    im.REQUEST_BYTES: ("%DOWNSTREAM_WIRE_BYTES_RECEIVED%", stats_pb2.Config.Histogram.Bytes),
    im.RESPONSE_BYTES: ("%DOWNSTREAM_WIRE_BYTES_SENT%", stats_pb2.Config.Histogram.Bytes),
}


def request_metrics_log(
    reporter: str, own: PeerMetadata, telemetry: ProxyTelemetry, services: Sequence[str] = ()
) -> accesslog_pb2.AccessLog | None:
    """The stats logger counting Istio's HTTP metrics for one reporter; None if all off."""
    tags = request_tags(reporter, own, services)
    config = _stats_config()
    for metric in im.HTTP_COUNTERS:
        if telemetry.metric_on(metric, reporter):
            counter = config.counters.add()
            counter.stat.CopyFrom(
                _stat(metric, tags, telemetry.tag_overrides.get((metric, reporter), ()))
            )
            counter.value_fixed.value = 1
    for metric in im.HTTP_HISTOGRAMS:
        if telemetry.metric_on(metric, reporter):
            value_format, unit = _HISTOGRAM_VALUES[metric]
            histogram = config.histograms.add(unit=unit, value_format=value_format)
            histogram.stat.CopyFrom(
                _stat(metric, tags, telemetry.tag_overrides.get((metric, reporter), ()))
            )
    if not config.counters and not config.histograms:
        return None
    return accesslog_pb2.AccessLog(name=STATS_LOGGER, typed_config=pack_any(config))


def tcp_metrics_logs(
    reporter: str, own: PeerMetadata, telemetry: ProxyTelemetry, services: Sequence[str] = ()
) -> list[accesslog_pb2.AccessLog]:
    """For a tcp_proxy: connections opened (logged when the upstream connects, so the
    tcp_proxy needs `access_log_options.flush_access_log_on_connected`), and at the end
    of a connection: closed, bytes sent and received. The principals come from the
    certificates, the peer's workload from `translate.peer_exchange`."""
    tags = [
        t
        for t in request_tags(reporter, own, services)
        if t[0]
        not in ("response_code", "grpc_response_status", im.RAW_CONTENT_TYPE, im.RAW_AUTHORITY)
    ]
    if reporter == im.SOURCE:
        # The destination's metadata: the upstream host's, from EDS (no response header).
        tags = [(k, UPSTREAM_PEER_FORMAT if k == im.RAW_PEER else v) for k, v in tags]
    opened = _stats_config()
    closed = _stats_config()
    for metric, config, value in (
        (im.TCP_OPENED, opened, None),
        (im.TCP_CLOSED, closed, None),
        (im.TCP_SENT, closed, "%DOWNSTREAM_WIRE_BYTES_SENT%"),
        (im.TCP_RECEIVED, closed, "%DOWNSTREAM_WIRE_BYTES_RECEIVED%"),
    ):
        if not telemetry.metric_on(metric, reporter):
            continue
        counter = config.counters.add()
        counter.stat.CopyFrom(
            _stat(metric, tags, telemetry.tag_overrides.get((metric, reporter), ()))
        )
        if value is None:
            counter.value_fixed.value = 1
        else:
            counter.value_format = value
    logs = []
    for config, log_type in ((opened, "TcpUpstreamConnected"), (closed, "TcpConnectionEnd")):
        if config.counters:
            log = accesslog_pb2.AccessLog(name=STATS_LOGGER, typed_config=pack_any(config))
            log.filter.log_type_filter.types.append(data_pb2.AccessLogType.Value(log_type))
            logs.append(log)
    return logs


# ---- peer metadata ----------------------------------------------------------------------


def _keep_peer(header: str, key: str) -> header_to_metadata_pb2.Config.Rule:
    rule = header_to_metadata_pb2.Config.Rule(header=header, remove=True)
    rule.on_header_present.metadata_namespace = im.PEER_METADATA_NAMESPACE
    rule.on_header_present.key = key
    rule.on_header_present.type = header_to_metadata_pb2.Config.STRING
    return rule


def _add_headers(own: PeerMetadata, node_id: str) -> list[mutation_rules_pb2.HeaderMutation]:
    mutations = []
    for key, value in (
        (im.PEER_METADATA_HEADER, own.header_value()),
        (im.PEER_METADATA_ID_HEADER, node_id),
    ):
        mutation = mutation_rules_pb2.HeaderMutation()
        mutation.append.header.key = key
        mutation.append.header.value = literal(value)
        mutation.append.append_action = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        mutations.append(mutation)
    return mutations


def peer_metadata_filters(
    client: bool, own: PeerMetadata, node_id: str
) -> list[hcm_pb2.HttpFilter]:
    """A client side sends its metadata with requests and keeps the server's from the
    response; a server side keeps the client's from the request and answers with its own."""
    keep = header_to_metadata_pb2.Config()
    rules = keep.response_rules if client else keep.request_rules
    rules.append(_keep_peer(im.PEER_METADATA_HEADER, PEER_KEY))
    rules.append(_keep_peer(im.PEER_METADATA_ID_HEADER, PEER_ID_KEY))
    add = header_mutation_pb2.HeaderMutation()
    mutations = add.mutations.request_mutations if client else add.mutations.response_mutations
    mutations.extend(_add_headers(own, node_id))
    return [
        hcm_pb2.HttpFilter(name=HEADER_TO_METADATA, typed_config=pack_any(keep)),
        hcm_pb2.HttpFilter(name=HEADER_MUTATION, typed_config=pack_any(add)),
    ]


# ---- access logs ------------------------------------------------------------------------


def _log_format(choice: AccessLogChoice) -> substitution_format_string_pb2.SubstitutionFormatString:
    fmt = substitution_format_string_pb2.SubstitutionFormatString()
    if choice.encoding == "JSON":
        fields = dict(choice.json_labels) if choice.json_labels else ISTIO_JSON_FORMAT
        struct = struct_pb2.Struct()
        struct.update(fields)
        fmt.json_format.CopyFrom(struct)
    else:
        text = choice.text_format or ISTIO_TEXT_FORMAT
        fmt.text_format_source.inline_string = text if text.endswith("\n") else text + "\n"
    return fmt


def access_log(choice: AccessLogChoice) -> accesslog_pb2.AccessLog:
    """One access log: to stdout (the agent keeps the proxy's stdout as its access log
    file) or to a file, in Istio's or the given format, behind a CEL filter if one."""
    logger: Any
    if choice.path == STDOUT:
        logger = stream_pb2.StdoutAccessLog(log_format=_log_format(choice))
        name = "envoy.access_loggers.stdout"
    else:
        logger = file_pb2.FileAccessLog(path=choice.path, log_format=_log_format(choice))
        name = "envoy.access_loggers.file"
    log = accesslog_pb2.AccessLog(name=name, typed_config=pack_any(logger))
    if choice.filter_expression:
        log.filter.extension_filter.name = CEL_FILTER
        log.filter.extension_filter.typed_config.CopyFrom(
            pack_any(cel_pb2.ExpressionFilter(expression=choice.filter_expression))
        )
    return log


# ---- tracing ----------------------------------------------------------------------------


def provider_cluster_name(provider: Any) -> str:
    spec = provider.opentelemetry or provider.zipkin
    return f"outbound|{spec.port}||{spec.service}"


def tracing_config(
    choice: TracingChoice, own: PeerMetadata
) -> hcm_pb2.HttpConnectionManager.Tracing:
    tracing = hcm_pb2.HttpConnectionManager.Tracing()
    tracing.random_sampling.value = choice.sampling
    if choice.max_path_tag_length is not None:
        tracing.max_path_tag_length.value = choice.max_path_tag_length
    service_name = f"{own.canonical_service}.{own.namespace}"
    provider = choice.provider
    if provider is not None and provider.zipkin is not None:
        zipkin = zipkin_pb2.ZipkinConfig(
            collector_cluster=provider_cluster_name(provider),
            collector_endpoint=provider.zipkin.path or "/api/v2/spans",
            collector_endpoint_version=zipkin_pb2.ZipkinConfig.HTTP_JSON,
            collector_hostname=provider.zipkin.service,
        )
        zipkin.trace_id_128bit = not bool(provider.zipkin.enable_64bit_trace_id)
        zipkin.shared_span_context.value = False
        tracing.provider.CopyFrom(
            http_tracer_pb2.Tracing.Http(name="envoy.tracers.zipkin", typed_config=pack_any(zipkin))
        )
    else:
        otel = opentelemetry_pb2.OpenTelemetryConfig(service_name=service_name)
        cluster = XDS_CLUSTER if provider is None else provider_cluster_name(provider)
        otel.grpc_service.envoy_grpc.cluster_name = cluster
        if provider is not None:
            otel.grpc_service.envoy_grpc.authority = provider.opentelemetry.service
        otel.grpc_service.timeout.FromSeconds(1)
        tracing.provider.CopyFrom(
            http_tracer_pb2.Tracing.Http(
                name="envoy.tracers.opentelemetry", typed_config=pack_any(otel)
            )
        )
    # Istio's own span tags, as its proxies carry them (Envoy adds node_id,
    # upstream_cluster, response_flags, http.* and the rest itself).
    for name, value in (
        ("istio.canonical_revision", own.canonical_revision),
        ("istio.canonical_service", own.canonical_service),
        ("istio.mesh_id", own.mesh_id or "unknown"),
        ("istio.namespace", own.namespace or "default"),
        ("istio.cluster_id", own.cluster_id or "unknown"),
    ):
        tracing.custom_tags.add(tag=name).literal.value = value
    for name, tag in choice.custom_tags:
        custom = tracing.custom_tags.add(tag=name)
        if tag.literal is not None:
            custom.literal.value = tag.literal.value
        elif tag.environment is not None:
            custom.environment.name = tag.environment.name
            custom.environment.default_value = tag.environment.default_value or ""
        elif tag.header is not None:
            custom.request_header.name = tag.header.name
            custom.request_header.default_value = tag.header.default_value or ""
    return tracing


def tracing_cluster(provider: Any, connect_timeout_s: float = 1.0) -> cluster_pb2.Cluster:
    """A cluster to an extension provider's collector (DNS name or IP, outside the mesh's
    endpoints in local mode); OTLP speaks HTTP/2."""
    spec = provider.opentelemetry or provider.zipkin
    name = provider_cluster_name(provider)
    cluster = cluster_pb2.Cluster(name=name)
    cluster.type = cluster_pb2.Cluster.STRICT_DNS
    cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout_s * 1e9))
    cluster.load_assignment.cluster_name = name
    endpoint = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.CopyFrom(socket_address(spec.service, spec.port))
    if provider.opentelemetry is not None:
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(
            _protocol_options(http2=True)
        )
    return cluster


# ---- one connection manager -------------------------------------------------------------


@dataclass(frozen=True)
class HcmTelemetry:
    """What telemetry adds to one HTTP connection manager."""

    filters: tuple[hcm_pb2.HttpFilter, ...] = ()
    """Peer metadata filters, first in the chain."""
    access_logs: tuple[accesslog_pb2.AccessLog, ...] = ()
    tracing: hcm_pb2.HttpConnectionManager.Tracing | None = None
    inbound_service: str = ""
    """A server side's service (what its routes' span names say, as Istio's)."""


def hcm_telemetry(
    *,
    client: bool,
    own: PeerMetadata,
    node_id: str,
    telemetry: ProxyTelemetry,
    services: Sequence[str] = (),
) -> HcmTelemetry:
    """A client side (outbound, gateway) reports as `source`, a server side (inbound) as
    `destination`."""
    mode = CLIENT if client else SERVER
    reporter = im.SOURCE if client else im.DESTINATION
    logs = [access_log(choice) for choice in telemetry.access_logs.get(mode, ())]
    metrics = request_metrics_log(reporter, own, telemetry, services)
    if metrics is not None:
        logs.append(metrics)
    choice = telemetry.tracing.get(mode)
    # Peer metadata only serves the metrics: with every metric off, no headers either.
    return HcmTelemetry(
        filters=tuple(peer_metadata_filters(client, own, node_id)) if metrics else (),
        access_logs=tuple(logs),
        tracing=tracing_config(choice, own) if choice is not None else None,
        inbound_service=services[0] if services and not client else "",
    )


@dataclass(frozen=True)
class TcpTelemetry:
    """What telemetry adds to one tcp_proxy: its access logs and TCP metrics loggers,
    and (a client side's) PROXY protocol TLVs telling the server who it is."""

    logs: tuple[accesslog_pb2.AccessLog, ...] = ()
    tlvs: tuple[proxy_protocol_pb2.TlvEntry, ...] = ()

    @property
    def counts(self) -> bool:
        """Whether a TCP metric is counted (opened is logged when the upstream connects)."""
        return any(log.name == STATS_LOGGER for log in self.logs)


@dataclass(frozen=True)
class L4Telemetry:
    """What telemetry adds to a sidecar's local outbound listener: the HTTP connection
    manager's part (HTTP/2, gRPC ports) or the tcp_proxy's stats loggers (TCP, TLS)."""

    hcm: HcmTelemetry | None = None
    tcp: TcpTelemetry | None = None


NO_TELEMETRY = L4Telemetry()


def tcp_telemetry(
    *, client: bool, own: PeerMetadata, telemetry: ProxyTelemetry, services: Sequence[str] = ()
) -> TcpTelemetry:
    """The access logs (MeshConfig and Telemetry, as the HTTP ones) and TCP metrics
    loggers of a client side (outbound, gateway: `source`) or a server side (inbound:
    `destination`) tcp_proxy; a client side counting metrics also sends its metadata
    (`translate.peer_exchange`)."""
    reporter = im.SOURCE if client else im.DESTINATION
    logs = []
    for choice in telemetry.access_logs.get(CLIENT if client else SERVER, ()):
        log = access_log(choice)
        # One line per connection, at its end (the tcp_proxy also logs on connect).
        end = accesslog_pb2.AccessLogFilter()
        end.log_type_filter.types.append(data_pb2.AccessLogType.Value("TcpConnectionEnd"))
        if log.HasField("filter"):
            both = accesslog_pb2.AccessLogFilter()
            both.and_filter.filters.extend([end, log.filter])
            end = both
        log.filter.CopyFrom(end)
        logs.append(log)
    metrics = tcp_metrics_logs(reporter, own, telemetry, services)
    tlvs = (tcp_proxy_tlv(own),) if client and metrics else ()
    return TcpTelemetry(logs=(*logs, *metrics), tlvs=tlvs)


def collector_clusters(snapshot: Any, resolved: ProxyTelemetry) -> tuple[cluster_pb2.Cluster, ...]:
    """Clusters to the trace collectors a proxy sends to that are not mesh services."""
    made: dict[str, cluster_pb2.Cluster] = {}
    for choice in resolved.tracing.values():
        provider = choice.provider if choice is not None else None
        if provider is not None:
            spec = provider.opentelemetry or provider.zipkin
            if spec.service not in snapshot.services:
                cluster = tracing_cluster(provider)
                made[cluster.name] = cluster
    return tuple(made[k] for k in sorted(made))
