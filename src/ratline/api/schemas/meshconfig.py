"""Istio's MeshConfig (the subset Ratline understands): mesh-wide defaults.

Read from `mesh.yaml` in the mesh directory, with MeshConfig fields at the top level as
in Istio's `meshConfig`. A missing file means every default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ratline.api.schemas.common import (
    Duration,
    FloatPercent,
    NonEmptyStr,
    NonNegativeInt,
    PortNumber,
    PositiveDuration,
    PositiveInt,
    Seq,
    Spec,
)
from ratline.api.schemas.destination_rule import LocalityLoadBalancerSetting, TcpKeepalive
from ratline.api.schemas.virtual_service import HTTPRetry


class OutboundTrafficPolicy(Spec):
    """Whether sidecars let traffic out to hosts not in the registry."""

    mode: Literal["ALLOW_ANY", "REGISTRY_ONLY"] = "ALLOW_ANY"


class ProxyStatsMatcher(Spec):
    inclusion_prefixes: Seq[str] = ()
    inclusion_suffixes: Seq[str] = ()
    inclusion_regexps: Seq[str] = ()


class GatewayTopology(Spec):
    num_trusted_proxies: NonNegativeInt | None = None
    forward_client_cert_details: str | None = None


class ZipkinTracer(Spec):
    address: NonEmptyStr


class ProxyTracing(Spec):
    """ProxyConfig.tracing: the sampling rate and tags of the proxy's tracer."""

    sampling: FloatPercent | None = None
    max_path_tag_length: NonNegativeInt | None = None
    custom_tags: dict[str, dict[str, dict[str, str]]] = {}
    zipkin: ZipkinTracer | None = None
    tls_settings: dict[str, object] | None = None


class ProxyConfig(Spec):
    """Defaults for every proxy (Istio's ProxyConfig, the subset that applies here)."""

    config_path: str | None = None
    binary_path: str | None = None
    service_cluster: str | None = None
    drain_duration: PositiveDuration | None = None
    termination_drain_duration: Duration | None = None
    discovery_address: str | None = None
    proxy_admin_port: PortNumber | None = None
    status_port: PortNumber | None = None
    control_plane_auth_policy: Literal["NONE", "MUTUAL_TLS", "INHERIT"] | None = None
    concurrency: NonNegativeInt | None = None
    proxy_metadata: dict[str, str] = {}
    hold_application_until_proxy_starts: bool | None = None
    extra_stat_tags: Seq[str] = ()
    proxy_stats_matcher: ProxyStatsMatcher | None = None
    gateway_topology: GatewayTopology | None = None
    mesh_id: str | None = None
    tracing: ProxyTracing | None = None


class RequestBody(Spec):
    max_request_bytes: PositiveInt | None = None
    allow_partial_message: bool | None = None
    pack_as_bytes: bool | None = None


class EnvoyExtAuthzHttp(Spec):
    service: NonEmptyStr
    port: PortNumber
    timeout: PositiveDuration | None = None
    path_prefix: str | None = None
    fail_open: bool | None = None
    status_on_error: str | None = None
    include_request_headers_in_check: Seq[str] = ()
    include_additional_headers_in_check: dict[str, str] = {}
    include_request_body_in_check: RequestBody | None = None
    headers_to_upstream_on_allow: Seq[str] = ()
    headers_to_downstream_on_deny: Seq[str] = ()
    headers_to_downstream_on_allow: Seq[str] = ()


class EnvoyExtAuthzGrpc(Spec):
    service: NonEmptyStr
    port: PortNumber
    timeout: PositiveDuration | None = None
    fail_open: bool | None = None
    status_on_error: str | None = None
    include_request_body_in_check: RequestBody | None = None


class Prometheus(Spec):
    pass


class Zipkin(Spec):
    service: NonEmptyStr
    port: PortNumber
    max_tag_length: NonNegativeInt | None = None
    enable_64bit_trace_id: bool | None = Field(default=None, alias="enable64bitTraceId")
    path: str | None = None


class OpenTelemetry(Spec):
    service: NonEmptyStr
    port: PortNumber
    max_tag_length: NonNegativeInt | None = None
    timeout: PositiveDuration | None = None


class LogFormat(Spec):
    text: str | None = None
    labels: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one(self) -> LogFormat:
        if self.text is not None and self.labels is not None:
            raise ValueError("set only one of text, labels")
        return self


class EnvoyFileAccessLog(Spec):
    path: NonEmptyStr = "/dev/stdout"
    log_format: LogFormat | None = None


class EnvoyOpenTelemetryLog(Spec):
    service: NonEmptyStr
    port: PortNumber
    log_name: str | None = None


class ExtensionProvider(Spec):
    """A named external service the mesh can use (authorization, tracing, logging)."""

    name: NonEmptyStr
    envoy_ext_authz_http: EnvoyExtAuthzHttp | None = None
    envoy_ext_authz_grpc: EnvoyExtAuthzGrpc | None = None
    prometheus: Prometheus | None = None
    zipkin: Zipkin | None = None
    opentelemetry: OpenTelemetry | None = None
    envoy_file_access_log: EnvoyFileAccessLog | None = None
    envoy_otel_als: EnvoyOpenTelemetryLog | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ExtensionProvider:
        kinds = [
            name
            for name in type(self).model_fields
            if name != "name" and getattr(self, name) is not None
        ]
        if len(kinds) != 1:
            choices = ", ".join(
                f.alias or n for n, f in type(self).model_fields.items() if n != "name"
            )
            raise ValueError(f"set exactly one of {choices}")
        return self


class DefaultProviders(Spec):
    tracing: Seq[str] = ()
    metrics: Seq[str] = ()
    access_logging: Seq[str] = ()


class MeshMTLS(Spec):
    min_protocol_version: Literal["TLS_AUTO", "TLSV1_2", "TLSV1_3"] | None = None
    ecdh_curves: Seq[str] = ()
    cipher_suites: Seq[str] = ()


class MeshConfig(Spec):
    """Mesh-wide settings, as in Istio's `meshConfig`."""

    trust_domain: NonEmptyStr = "cluster.local"
    trust_domain_aliases: Seq[str] = ()
    root_namespace: NonEmptyStr = "istio-system"
    outbound_traffic_policy: OutboundTrafficPolicy = OutboundTrafficPolicy()
    default_config: ProxyConfig = ProxyConfig()
    extension_providers: Seq[ExtensionProvider] = ()
    default_providers: DefaultProviders | None = None
    enable_auto_mtls: bool = True
    access_log_file: str = ""
    access_log_format: str = ""
    access_log_encoding: Literal["TEXT", "JSON"] = "TEXT"
    enable_tracing: bool = True
    enable_prometheus_merge: bool | None = None
    connect_timeout: PositiveDuration = 10.0
    protocol_detection_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    dns_refresh_rate: PositiveDuration = 60.0
    h2_upgrade_policy: Literal["DO_NOT_UPGRADE", "UPGRADE"] = "DO_NOT_UPGRADE"
    default_http_retry_policy: HTTPRetry | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    default_service_export_to: Seq[str] = ("*",)
    default_virtual_service_export_to: Seq[str] = ("*",)
    default_destination_rule_export_to: Seq[str] = ("*",)
    inbound_cluster_stat_name: str | None = None
    outbound_cluster_stat_name: str | None = None
    mesh_mtls: MeshMTLS | None = Field(default=None, alias="meshMTLS")
    tls_defaults: MeshMTLS | None = None
    ingress_class: str | None = None
    ingress_service: str | None = None
    ingress_selector: str | None = None
    ingress_controller_mode: Literal["UNSPECIFIED", "OFF", "DEFAULT", "STRICT"] | None = None

    @model_validator(mode="after")
    def _unique_providers(self) -> MeshConfig:
        names = [p.name for p in self.extension_providers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate extension provider {', '.join(duplicates)}")
        return self

    def extension_provider(self, name: str) -> ExtensionProvider | None:
        return next((p for p in self.extension_providers if p.name == name), None)


__all__ = [
    "DefaultProviders",
    "EnvoyExtAuthzGrpc",
    "EnvoyExtAuthzHttp",
    "EnvoyFileAccessLog",
    "EnvoyOpenTelemetryLog",
    "ExtensionProvider",
    "GatewayTopology",
    "LogFormat",
    "MeshConfig",
    "MeshMTLS",
    "OpenTelemetry",
    "OutboundTrafficPolicy",
    "Prometheus",
    "ProxyConfig",
    "ProxyStatsMatcher",
    "ProxyTracing",
    "RequestBody",
    "Zipkin",
]
