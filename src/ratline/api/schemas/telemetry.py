"""Istio's telemetry.istio.io kind: Telemetry (tracing, metrics, access logging).

The whole schema validates; what is translated is listed in docs/observability.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ratline.api.schemas.common import (
    Duration,
    FloatPercent,
    LabelSelector,
    NonEmptyStr,
    PolicyTargetReference,
    Seq,
    Spec,
    only_one_of,
)

WorkloadMode = Literal["CLIENT_AND_SERVER", "CLIENT", "SERVER"]
MetricName = Literal[
    "ALL_METRICS",
    "REQUEST_COUNT",
    "REQUEST_DURATION",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS",
    "TCP_CLOSED_CONNECTIONS",
    "TCP_SENT_BYTES",
    "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES",
    "GRPC_RESPONSE_MESSAGES",
]


class ProviderRef(Spec):
    """A MeshConfig extension provider (or a built-in: `envoy`, `prometheus`) by name."""

    name: NonEmptyStr


class WorkloadModeSelector(Spec):
    mode: WorkloadMode = "CLIENT_AND_SERVER"


class LiteralTag(Spec):
    value: str


class EnvironmentTag(Spec):
    name: NonEmptyStr
    default_value: str | None = None


class HeaderTag(Spec):
    name: NonEmptyStr
    default_value: str | None = None


class CustomTag(Spec):
    """A span tag: a literal, an environment variable of the proxy, or a request header."""

    literal: LiteralTag | None = None
    environment: EnvironmentTag | None = None
    header: HeaderTag | None = None

    @model_validator(mode="after")
    def _one(self) -> CustomTag:
        only_one_of(self, ("literal", "environment", "header"), required=True)
        return self


class Tracing(Spec):
    match: WorkloadModeSelector | None = None
    providers: Seq[ProviderRef] = ()
    random_sampling_percentage: FloatPercent | None = None
    disable_span_reporting: bool | None = None
    custom_tags: dict[str, CustomTag] = {}
    use_request_id_for_trace_sampling: bool | None = None
    enable_istio_tags: bool | None = None


class MetricSelector(Spec):
    metric: MetricName | None = None
    custom_metric: str | None = None
    mode: WorkloadMode = "CLIENT_AND_SERVER"

    @model_validator(mode="after")
    def _one(self) -> MetricSelector:
        only_one_of(self, ("metric", "custom_metric"), required=False)
        return self


class TagOverride(Spec):
    operation: Literal["UPSERT", "REMOVE"] = "UPSERT"
    value: str | None = None

    @model_validator(mode="after")
    def _value(self) -> TagOverride:
        if self.operation == "UPSERT" and not self.value:
            raise ValueError("value: required when operation is UPSERT")
        if self.operation == "REMOVE" and self.value:
            raise ValueError("value: must be empty when operation is REMOVE")
        return self


class MetricsOverrides(Spec):
    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: dict[str, TagOverride] = {}


class Metrics(Spec):
    providers: Seq[ProviderRef] = ()
    overrides: Seq[MetricsOverrides] = ()
    reporting_interval: Duration | None = None


class AccessLogFilter(Spec):
    expression: NonEmptyStr


class AccessLogging(Spec):
    match: WorkloadModeSelector | None = None
    providers: Seq[ProviderRef] = ()
    disabled: bool | None = None
    filter: AccessLogFilter | None = None


class TelemetrySpec(Spec):
    """Istio's Telemetry: per mesh (root namespace), namespace or workload (selector)."""

    selector: LabelSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: Seq[PolicyTargetReference] = ()
    tracing: Seq[Tracing] = ()
    metrics: Seq[Metrics] = ()
    access_logging: Seq[AccessLogging] = ()

    @model_validator(mode="after")
    def _target(self) -> TelemetrySpec:
        chosen = [
            n
            for n, v in (
                ("selector", self.selector),
                ("targetRef", self.target_ref),
                ("targetRefs", self.target_refs or None),
            )
            if v is not None
        ]
        if len(chosen) > 1:
            raise ValueError(f"set only one of {', '.join(chosen)}")
        return self


__all__ = [
    "AccessLogFilter",
    "AccessLogging",
    "CustomTag",
    "Metrics",
    "MetricsOverrides",
    "ProviderRef",
    "TagOverride",
    "TelemetrySpec",
    "Tracing",
]
