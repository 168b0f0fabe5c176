"""The Telemetry API and MeshConfig's telemetry settings, resolved for one proxy.

Istio's levels: a Telemetry in the root namespace without selector (mesh), one in the
proxy's namespace without selector (namespace), one there whose selector matches the
proxy (workload). For access logging and tracing the most specific level with an entry
for the traffic's mode (CLIENT: outbound and gateways, SERVER: inbound) wins; metrics
overrides apply mesh first, then namespace, then workload, in order. With no Telemetry,
MeshConfig decides: `accessLogFile` / `accessLogEncoding` / `accessLogFormat`,
`enableTracing` with `defaultConfig.tracing.sampling`, and `defaultProviders`.
The result is plain data; `translate.telemetry_envoy` makes Envoy config of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.api.envelope import Resource
from ratline.observability.istio_metrics import (
    ALL_METRICS,
    DESTINATION,
    SOURCE,
    TELEMETRY_METRIC,
)
from ratline.observability.peer_metadata import PeerMetadata
from ratline.registry.instances import WorkloadInstance
from ratline.translate.common import Findings, labels_match

TELEMETRY = "Telemetry"
CLIENT, SERVER = "CLIENT", "SERVER"
STDOUT = "/dev/stdout"
ENVOY_PROVIDER = "envoy"
PROMETHEUS_PROVIDER = "prometheus"
EMBEDDED_TRACING = "ratline"
"""The built-in tracing provider: spans to the control plane's span store (OTLP)."""
DEFAULT_SAMPLING = 1.0
"""Istio's default sampling percentage (`defaultConfig.tracing.sampling`)."""


@dataclass(frozen=True)
class AccessLogChoice:
    path: str
    encoding: str = "TEXT"
    text_format: str = ""
    """"" means Istio's default format."""
    json_labels: tuple[tuple[str, str], ...] = ()
    filter_expression: str = ""


@dataclass(frozen=True)
class TracingChoice:
    sampling: float
    provider: Any = None
    """A MeshConfig extension provider (opentelemetry or zipkin); None: the embedded store."""
    custom_tags: tuple[tuple[str, Any], ...] = ()
    max_path_tag_length: int | None = None


@dataclass(frozen=True)
class ProxyTelemetry:
    """What one proxy reports: per reporter, its metrics, access logs and tracing."""

    disabled_metrics: frozenset[tuple[str, str]] = frozenset()
    """(Istio metric, reporter) pairs not reported."""
    tag_overrides: Mapping[tuple[str, str], tuple[tuple[str, str | None], ...]] = field(
        default_factory=dict
    )
    """(metric, reporter) → (label, Envoy format, or None to remove it), in order."""
    access_logs: Mapping[str, tuple[AccessLogChoice, ...]] = field(default_factory=dict)
    """CLIENT / SERVER → the access logs of that side."""
    tracing: Mapping[str, TracingChoice | None] = field(default_factory=dict)

    def metric_on(self, metric: str, reporter: str) -> bool:
        return (metric, reporter) not in self.disabled_metrics


def _levels(snapshot: Any, instance: WorkloadInstance, findings: Findings) -> list[Resource[Any]]:
    """The Telemetry resources that apply, mesh first, workload last."""
    root = str(getattr(snapshot.mesh_config, "root_namespace", "istio-system"))
    mesh: list[Resource[Any]] = []
    namespace: list[Resource[Any]] = []
    workload: list[Resource[Any]] = []
    for res in sorted(snapshot.extra.get(TELEMETRY, ()), key=lambda r: (r.namespace, r.name)):
        spec = res.spec
        if spec.target_ref is not None or spec.target_refs:
            findings.not_supported(res, "spec.targetRefs", "targetRefs")
            continue
        if spec.selector is None:
            if res.namespace == root:
                mesh.append(res)
            elif res.namespace == instance.namespace:
                namespace.append(res)
        elif res.namespace == instance.namespace and labels_match(
            spec.selector.match_labels, instance.labels
        ):
            workload.append(res)
    return mesh[:1] + namespace[:1] + workload[:1]


def _modes(match: Any) -> tuple[str, ...]:
    mode = getattr(match, "mode", "CLIENT_AND_SERVER") if match is not None else ""
    return (CLIENT,) if mode == CLIENT else (SERVER,) if mode == SERVER else (CLIENT, SERVER)


# ---- access logs ------------------------------------------------------------------------


def _mesh_log(mesh: Any) -> AccessLogChoice:
    return AccessLogChoice(
        path=mesh.access_log_file or STDOUT,
        encoding=mesh.access_log_encoding,
        text_format=mesh.access_log_format,
    )


def _log_provider(
    mesh: Any, name: str, res: Resource[Any] | None, path: str, findings: Findings
) -> AccessLogChoice | None:
    if name == ENVOY_PROVIDER:
        return _mesh_log(mesh)
    provider = mesh.extension_provider(name)
    if provider is None:
        if res is not None:
            findings.add(res, path, f"extension provider {name!r} is not defined in meshConfig")
        return None
    file_log = provider.envoy_file_access_log
    if file_log is None:
        if res is not None:
            findings.not_supported(res, path, f"access log provider {name!r} of this type")
        return None
    fmt = file_log.log_format
    if fmt is not None and fmt.labels is not None:
        return AccessLogChoice(file_log.path, "JSON", json_labels=tuple(sorted(fmt.labels.items())))
    return AccessLogChoice(file_log.path, "TEXT", text_format=(fmt.text or "") if fmt else "")


def _access_logs(
    snapshot: Any, levels: list[Resource[Any]], findings: Findings
) -> dict[str, tuple[AccessLogChoice, ...]]:
    mesh = snapshot.mesh_config
    defaults = tuple(mesh.default_providers.access_logging) if mesh.default_providers else ()
    chosen: dict[str, tuple[AccessLogChoice, ...]] = {}
    base: list[AccessLogChoice] = []
    for name in defaults:
        found = _log_provider(mesh, name, None, "", findings)
        if found is not None:
            base.append(found)
    if not base and mesh.access_log_file:
        base.append(_mesh_log(mesh))
    for mode in (CLIENT, SERVER):
        chosen[mode] = tuple(base)
    for res in levels:
        for index, entry in enumerate(res.spec.access_logging):
            path = f"spec.accessLogging[{index}]"
            names = [p.name for p in entry.providers] or list(defaults) or [ENVOY_PROVIDER]
            logs: list[AccessLogChoice] = []
            if not entry.disabled:
                for pi, name in enumerate(names):
                    found = _log_provider(mesh, name, res, f"{path}.providers[{pi}]", findings)
                    if found is not None:
                        if entry.filter is not None:
                            found = AccessLogChoice(
                                found.path,
                                found.encoding,
                                found.text_format,
                                found.json_labels,
                                entry.filter.expression,
                            )
                        logs.append(found)
            for mode in _modes(entry.match):
                chosen[mode] = tuple(logs)
    return chosen


# ---- tracing ----------------------------------------------------------------------------


def _tracing_provider(
    mesh: Any, name: str, res: Resource[Any] | None, path: str, findings: Findings
) -> tuple[bool, Any]:
    """(usable, provider): provider None is the embedded store."""
    if name == EMBEDDED_TRACING:
        return True, None
    provider = mesh.extension_provider(name)
    if provider is None or (provider.opentelemetry is None and provider.zipkin is None):
        if res is not None:
            what = (
                "is not defined in meshConfig"
                if provider is None
                else "is not an opentelemetry or zipkin provider"
            )
            findings.add(res, path, f"tracing provider {name!r} {what}")
        return False, None
    return True, provider


def _tracing(
    snapshot: Any, levels: list[Resource[Any]], findings: Findings
) -> dict[str, TracingChoice | None]:
    mesh = snapshot.mesh_config
    proxy_tracing = mesh.default_config.tracing
    sampling = DEFAULT_SAMPLING
    if proxy_tracing is not None and proxy_tracing.sampling is not None:
        sampling = proxy_tracing.sampling
    max_path = proxy_tracing.max_path_tag_length if proxy_tracing is not None else None
    defaults = tuple(mesh.default_providers.tracing) if mesh.default_providers else ()
    provider: Any = None
    if defaults:
        _ok, provider = _tracing_provider(mesh, defaults[0], None, "", findings)
    base = TracingChoice(sampling, provider, (), max_path) if mesh.enable_tracing else None
    chosen: dict[str, TracingChoice | None] = {CLIENT: base, SERVER: base}
    for res in levels:
        for index, entry in enumerate(res.spec.tracing):
            path = f"spec.tracing[{index}]"
            for mode in _modes(entry.match):
                current = chosen[mode] or TracingChoice(sampling, provider, (), max_path)
                if entry.disable_span_reporting:
                    chosen[mode] = None
                    continue
                this_provider = current.provider
                if entry.providers:
                    ok, found = _tracing_provider(
                        mesh, entry.providers[0].name, res, f"{path}.providers[0]", findings
                    )
                    if not ok:
                        continue
                    this_provider = found
                tags = dict(current.custom_tags)
                tags.update(entry.custom_tags)
                chosen[mode] = TracingChoice(
                    entry.random_sampling_percentage
                    if entry.random_sampling_percentage is not None
                    else current.sampling,
                    this_provider,
                    tuple(sorted(tags.items())),
                    max_path,
                )
    return chosen


# ---- metrics ----------------------------------------------------------------------------

_CEL_LITERAL = re.compile(r"""^\s*(?:'([^'%]*)'|"([^"%]*)")\s*$""")
_CEL_HEADER = re.compile(r"""^\s*request\.headers\[\s*['"]([A-Za-z0-9_.:-]+)['"]\s*\]\s*$""")
_CEL_ATTRIBUTES = {
    "request.host": "%REQ(:authority)%",
    "request.method": "%REQ(:method)%",
    "request.path": "%REQ(:path)%",
    "request.url_path": "%REQ(:path)%",
    "request.scheme": "%REQ(:scheme)%",
    "request.useragent": "%REQ(user-agent)%",
    "request.protocol": "%PROTOCOL%",
    "response.code": "%RESPONSE_CODE%",
    "connection.requested_server_name": "%REQUESTED_SERVER_NAME%",
}


def cel_to_format(expression: str) -> str | None:
    """An Envoy format for the CEL expressions a tagOverride value may use here: a string
    literal, `request.headers['name']` and some request attributes; None otherwise."""
    literal = _CEL_LITERAL.match(expression)
    if literal:
        return literal.group(1) if literal.group(1) is not None else literal.group(2)
    header = _CEL_HEADER.match(expression)
    if header:
        return f"%REQ({header.group(1)})%"
    return _CEL_ATTRIBUTES.get(expression.strip())


def _metrics(
    levels: list[Resource[Any]], findings: Findings
) -> tuple[frozenset[tuple[str, str]], dict[tuple[str, str], tuple[tuple[str, str | None], ...]]]:
    disabled: set[tuple[str, str]] = set()
    overrides: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for res in levels:
        for index, entry in enumerate(res.spec.metrics):
            path = f"spec.metrics[{index}]"
            names = [p.name for p in entry.providers] or [PROMETHEUS_PROVIDER]
            if any(n != PROMETHEUS_PROVIDER for n in names):
                findings.not_supported(res, f"{path}.providers", "metrics providers but prometheus")
                continue
            if entry.reporting_interval is not None:
                findings.not_supported(res, f"{path}.reportingInterval", "reportingInterval")
            for oi, override in enumerate(entry.overrides):
                opath = f"{path}.overrides[{oi}]"
                match = override.match
                if match is not None and match.custom_metric:
                    findings.not_supported(res, f"{opath}.match.customMetric", "custom metrics")
                    continue
                name = match.metric if match is not None and match.metric else "ALL_METRICS"
                metrics = ALL_METRICS if name == "ALL_METRICS" else (TELEMETRY_METRIC.get(name),)
                if metrics == (None,):
                    findings.not_supported(res, f"{opath}.match.metric", f"metric {name}")
                    continue
                mode = match.mode if match is not None else "CLIENT_AND_SERVER"
                reporters = (
                    (SOURCE,)
                    if mode == CLIENT
                    else (DESTINATION,)
                    if mode == SERVER
                    else (SOURCE, DESTINATION)
                )
                for metric in metrics:
                    assert metric is not None
                    for reporter in reporters:
                        key = (metric, reporter)
                        if override.disabled is True:
                            disabled.add(key)
                        elif override.disabled is False:
                            disabled.discard(key)
                        for tag, tag_override in sorted(override.tag_overrides.items()):
                            value: str | None = None
                            if tag_override.operation == "UPSERT":
                                value = cel_to_format(tag_override.value or "")
                                if value is None:
                                    findings.not_supported(
                                        res,
                                        f"{opath}.tagOverrides.{tag}.value",
                                        f"the expression {tag_override.value!r}",
                                    )
                                    continue
                            overrides.setdefault(key, []).append((tag, value))
    return frozenset(disabled), {k: tuple(v) for k, v in overrides.items()}


def resolve(snapshot: Any, instance: WorkloadInstance, findings: Findings) -> ProxyTelemetry:
    """Everything one proxy reports."""
    levels = _levels(snapshot, instance, findings)
    disabled, overrides = _metrics(levels, findings)
    return ProxyTelemetry(
        disabled_metrics=disabled,
        tag_overrides=overrides,
        access_logs=_access_logs(snapshot, levels, findings),
        tracing=_tracing(snapshot, levels, findings),
    )


def identity(snapshot: Any, instance: WorkloadInstance) -> PeerMetadata:
    """The proxy's own peer metadata (what its peers' metrics name it by)."""
    return PeerMetadata(
        name=instance.name,
        namespace=instance.namespace,
        workload=instance.workload,
        labels=dict(instance.labels),
        service_account=instance.service_account,
        mesh_id=str(getattr(snapshot.mesh_config, "trust_domain", "cluster.local")),
    )


def inbound_service_index(snapshot: Any) -> dict[tuple[str, str, int], list[str]]:
    """(instance, namespace, inbound port) → the services whose endpoints include it."""
    index: dict[tuple[str, str, int], list[str]] = {}
    for hostname in sorted(snapshot.services):
        for port_endpoints in snapshot.services[hostname].endpoints.values():
            for e in port_endpoints:
                found = index.setdefault((e.instance, e.namespace, e.port), [])
                if hostname not in found:
                    found.append(hostname)
    return index
