"""Cross-resource analysis, like Istio's analyzers: references that lead nowhere,
conflicts and likely mistakes that no single resource's schema can catch.

Codes: IST0101 (referenced resource not found), IST0109 (conflicting VirtualServices
for a host and gateway) as in Istio; RL01xx for Ratline's own findings.
"""

from __future__ import annotations

import contextlib
import shutil
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratline.api.envelope import Resource, ResourceKey
from ratline.api.errors import ConfigMessage, Severity
from ratline.api.gateway_deployment import (
    GatewayDeploymentError,
    is_gateway_deployment,
    parse_gateway_deployment,
)
from ratline.api.hosts import MESH_GATEWAY, fqdn, host_matches, hosts_overlap, resolve_gateway
from ratline.api.kinds import known_kind
from ratline.api.schemas.core import ServiceSpec
from ratline.api.schemas.networking import (
    Destination,
    DestinationRuleSpec,
    GatewaySpec,
    HTTPRouteDestination,
    RouteDestination,
    ServiceEntrySpec,
    TCPRoute,
    TLSRoute,
    VirtualServiceSpec,
    WorkloadEntrySpec,
)
from ratline.api.schemas.workload import WorkloadSpec
from ratline.api.traffic_support import unsupported_fields

REFERENCED_RESOURCE_NOT_FOUND = "IST0101"
CONFLICTING_VIRTUAL_SERVICES = "IST0109"
ROUTE_WEIGHTS_NOT_100 = "RL0101"
SERVICE_SELECTS_NO_WORKLOAD = "RL0102"
COMMAND_NOT_FOUND = "RL0103"
BAD_GATEWAY_DEPLOYMENT = "RL0106"
LOCALITY_FAILOVER_WITHOUT_OUTLIER = "RL0105"

INGRESS_GATEWAY_NAMESPACE = "istio-system"
INGRESS_GATEWAY_LABELS: Mapping[str, str] = {"istio": "ingressgateway"}
"""Labels of the built-in ingress gateway, which always exists."""


TRAFFIC_SPECS = (VirtualServiceSpec, DestinationRuleSpec, GatewaySpec, ServiceEntrySpec)
"""The kinds whose fields `traffic_support` rates."""


def analyze(
    resources: Sequence[Resource[Any]],
    mesh_config: object = None,
    mesh_dir: Path | None = None,
) -> list[ConfigMessage]:
    """Every finding about `resources` taken together; `mesh_dir` resolves commands.

    `mesh_config` is accepted for analyzers that depend on it (none yet).
    """
    index = _Index.build(resources)
    messages: list[ConfigMessage] = []
    for resource in resources:
        spec = resource.spec
        report = _Reporter(resource, messages)
        if isinstance(spec, TRAFFIC_SPECS):
            messages.extend(unsupported_fields(resource))
        if isinstance(spec, VirtualServiceSpec):
            _check_virtual_service(spec, resource.namespace, index, report)
        elif isinstance(spec, DestinationRuleSpec):
            _check_destination_rule(spec, resource.namespace, index, report)
        elif isinstance(spec, GatewaySpec):
            _check_gateway(spec, index, report)
        elif isinstance(spec, ServiceSpec):
            _check_service(spec, resource.namespace, index, report)
        elif isinstance(spec, WorkloadSpec):
            _check_workload(spec, mesh_dir, report)
        else:
            _check_opaque(resource, report)
    _check_conflicts(resources, messages)
    return messages


@dataclass
class _Reporter:
    resource: Resource[Any]
    messages: list[ConfigMessage]

    def __call__(self, field: str, message: str, code: str, severity: Severity) -> None:
        self.messages.append(
            ConfigMessage(
                message,
                self.resource.source,
                self.resource.key,
                field,
                severity=severity,
                code=code,
            )
        )


@dataclass
class _Index:
    service_hosts: list[str] = field(default_factory=list)
    subsets: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    """(DestinationRule host pattern as FQDN, subset names)."""
    gateways: set[tuple[str, str]] = field(default_factory=set)
    workloads: list[tuple[str, Mapping[str, str]]] = field(default_factory=list)
    """(namespace, labels) of every workload, gateways included."""
    pod_templates: list[tuple[str, str, Mapping[str, str]]] = field(default_factory=list)
    """(namespace, `Deployment name`, pod labels) of Kubernetes workload kinds, which local
    mode does not run (only their Services' findings mention them)."""

    @classmethod
    def build(cls, resources: Sequence[Resource[Any]]) -> _Index:
        index = cls()
        index.workloads.append((INGRESS_GATEWAY_NAMESPACE, INGRESS_GATEWAY_LABELS))
        for r in resources:
            spec = r.spec
            if isinstance(spec, ServiceSpec):
                index.service_hosts.append(fqdn(r.name, r.namespace))
            elif isinstance(spec, ServiceEntrySpec):
                index.service_hosts.extend(fqdn(h, r.namespace) for h in spec.hosts)
            elif isinstance(spec, DestinationRuleSpec):
                names = frozenset(s.name for s in spec.subsets)
                index.subsets.append((fqdn(spec.host, r.namespace), names))
            elif isinstance(spec, GatewaySpec):
                index.gateways.add((r.namespace, r.name))
            elif isinstance(spec, WorkloadSpec):
                index.workloads.append((r.namespace, r.labels))
            elif isinstance(spec, WorkloadEntrySpec):
                index.workloads.append((r.namespace, {**r.labels, **spec.labels}))
            elif is_gateway_deployment(r.raw):
                with contextlib.suppress(GatewayDeploymentError):
                    gateway = parse_gateway_deployment(r.raw)
                    index.workloads.append((gateway.namespace, gateway.label_map))
            elif (labels := _pod_template_labels(r.raw)) is not None:
                index.pod_templates.append((r.namespace, f"{r.kind} {r.name}", labels))
        return index

    def has_service(self, host: str) -> bool:
        return any(host_matches(known, host) for known in self.service_hosts)

    def any_service_overlapping(self, pattern: str) -> bool:
        return any(hosts_overlap(pattern, known) for known in self.service_hosts)

    def has_subset(self, host: str, subset: str) -> bool:
        return any(host_matches(p, host) and subset in names for p, names in self.subsets)


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _l4_sections(spec: VirtualServiceSpec) -> list[tuple[str, Sequence[TCPRoute | TLSRoute]]]:
    return [("tcp", spec.tcp), ("tls", spec.tls)]


def _destinations(spec: VirtualServiceSpec) -> Iterator[tuple[str, Destination]]:
    """Every destination a VirtualService sends traffic to, with its field path."""
    for i, http in enumerate(spec.http):
        for j, http_dest in enumerate(http.route):
            yield f"spec.http[{i}].route[{j}].destination", http_dest.destination
        if http.mirror is not None:
            yield f"spec.http[{i}].mirror", http.mirror
        for j, mirror in enumerate(http.mirrors):
            yield f"spec.http[{i}].mirrors[{j}].destination", mirror.destination
    for section, routes in _l4_sections(spec):
        for i, rule in enumerate(routes):
            for j, dest in enumerate(rule.route):
                yield f"spec.{section}[{i}].route[{j}].destination", dest.destination


def _weighted_routes(
    spec: VirtualServiceSpec,
) -> Iterator[tuple[str, Sequence[HTTPRouteDestination | RouteDestination]]]:
    for i, http in enumerate(spec.http):
        yield f"spec.http[{i}].route", http.route
    for section, routes in _l4_sections(spec):
        for i, rule in enumerate(routes):
            yield f"spec.{section}[{i}].route", rule.route


def _gateway_refs(spec: VirtualServiceSpec) -> Iterator[tuple[str, str]]:
    for k, ref in enumerate(spec.gateways):
        yield f"spec.gateways[{k}]", ref
    match_lists: list[tuple[str, Sequence[Any]]] = [
        *((f"spec.http[{i}]", rule.match) for i, rule in enumerate(spec.http)),
        *((f"spec.tcp[{i}]", rule.match) for i, rule in enumerate(spec.tcp)),
        *((f"spec.tls[{i}]", rule.match) for i, rule in enumerate(spec.tls)),
    ]
    for path, matches in match_lists:
        for j, match in enumerate(matches):
            for k, ref in enumerate(match.gateways):
                yield f"{path}.match[{j}].gateways[{k}]", ref


def _check_virtual_service(
    spec: VirtualServiceSpec, namespace: str, index: _Index, report: _Reporter
) -> None:
    for path, dest in _destinations(spec):
        host = fqdn(dest.host, namespace)
        if not index.has_service(host):
            report(
                f"{path}.host",
                f"host {dest.host!r} ({host}) matches no Service or ServiceEntry",
                REFERENCED_RESOURCE_NOT_FOUND,
                Severity.ERROR,
            )
        elif dest.subset and not index.has_subset(host, dest.subset):
            report(
                f"{path}.subset",
                f"subset {dest.subset!r} of {host} is not defined by any DestinationRule",
                REFERENCED_RESOURCE_NOT_FOUND,
                Severity.ERROR,
            )
    for path, route in _weighted_routes(spec):
        weights = [d.weight for d in route]
        if len(weights) <= 1 and (not weights or weights[0] in (None, 0, 100)):
            continue
        total = sum(w or 0 for w in weights)
        if total != 100:
            report(
                path,
                f"weights add up to {total}, not 100 (Istio scales them to 100)",
                ROUTE_WEIGHTS_NOT_100,
                Severity.WARNING,
            )
    for path, ref in _gateway_refs(spec):
        gw_namespace, gw_name = resolve_gateway(ref, namespace)
        if gw_name != MESH_GATEWAY and (gw_namespace, gw_name) not in index.gateways:
            report(
                path,
                f"gateway {ref!r} ({gw_namespace}/{gw_name}) not found",
                REFERENCED_RESOURCE_NOT_FOUND,
                Severity.ERROR,
            )


def _policies(spec: DestinationRuleSpec) -> Iterator[tuple[str, Any]]:
    """Every traffic policy of a rule (top, subsets, port levels) with its field path."""
    tops = [("spec.trafficPolicy", spec.traffic_policy)]
    tops += [
        (f"spec.subsets[{i}].trafficPolicy", s.traffic_policy) for i, s in enumerate(spec.subsets)
    ]
    for path, policy in tops:
        if policy is None:
            continue
        yield path, policy
        for i, level in enumerate(policy.port_level_settings):
            yield f"{path}.portLevelSettings[{i}]", level


def _check_destination_rule(
    spec: DestinationRuleSpec, namespace: str, index: _Index, report: _Reporter
) -> None:
    for path, policy in _policies(spec):
        setting = policy.load_balancer.locality_lb_setting if policy.load_balancer else None
        if (
            setting is not None
            and (setting.failover or setting.failover_priority)
            and (policy.outlier_detection is None)
        ):
            report(
                f"{path}.loadBalancer.localityLbSetting",
                "failover needs outlierDetection (without it Envoy never fails over)",
                LOCALITY_FAILOVER_WITHOUT_OUTLIER,
                Severity.WARNING,
            )
    host = fqdn(spec.host, namespace)
    if not index.any_service_overlapping(host):
        report(
            "spec.host",
            f"host {spec.host!r} ({host}) matches no Service or ServiceEntry",
            REFERENCED_RESOURCE_NOT_FOUND,
            Severity.WARNING,
        )


def _check_gateway(spec: GatewaySpec, index: _Index, report: _Reporter) -> None:
    if spec.selector and not any(_selects(spec.selector, lbl) for _, lbl in index.workloads):
        shown = ", ".join(f"{k}={v}" for k, v in spec.selector.items())
        report(
            "spec.selector",
            f"no workload has the labels {shown}",
            REFERENCED_RESOURCE_NOT_FOUND,
            Severity.WARNING,
        )


def _check_service(spec: ServiceSpec, namespace: str, index: _Index, report: _Reporter) -> None:
    if not spec.selector:
        return
    if not any(ns == namespace and _selects(spec.selector, lbl) for ns, lbl in index.workloads):
        shown = ", ".join(f"{k}={v}" for k, v in spec.selector.items())
        message = f"no Workload in namespace {namespace} has the labels {shown}"
        templates = sorted(
            what
            for ns, what, lbl in index.pod_templates
            if ns == namespace and _selects(spec.selector, lbl)
        )
        if templates:
            message += (
                f"; only the pods of {', '.join(templates)} do, and local mode runs Workload "
                "resources, not Kubernetes workload kinds (declare a Workload, or run on "
                "Kubernetes)"
            )
        report("spec.selector", message, SERVICE_SELECTS_NO_WORKLOAD, Severity.WARNING)


POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


def _pod_template_labels(raw: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The pod labels of a Kubernetes workload kind (`spec.template.metadata.labels`)."""
    if raw.get("kind") not in POD_TEMPLATE_KINDS:
        return None
    template = (raw.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if not isinstance(labels, dict):
        return None
    return {str(k): str(v) for k, v in labels.items()}


def _check_workload(spec: WorkloadSpec, mesh_dir: Path | None, report: _Reporter) -> None:
    program = spec.command[0]
    if "/" not in program:
        if shutil.which(program) is None:
            report(
                "spec.command[0]",
                f"{program!r} not found on PATH",
                COMMAND_NOT_FOUND,
                Severity.WARNING,
            )
        return
    path = Path(program)
    if not path.is_absolute():
        if mesh_dir is None:
            return
        path = mesh_dir / (spec.working_dir or "") / path
    if not path.is_file():
        report(
            "spec.command[0]",
            f"{program!r} not found (looked for {path})",
            COMMAND_NOT_FOUND,
            Severity.WARNING,
        )


def _check_opaque(resource: Resource[Any], report: _Reporter) -> None:
    """A kind accepted without a schema: say what Ratline does not do with it (a gateway
    Deployment is run as a gateway: only its errors are reported)."""
    if is_gateway_deployment(resource.raw):
        try:
            parse_gateway_deployment(resource.raw)
        except GatewayDeploymentError as exc:
            report(exc.field, exc.message, BAD_GATEWAY_DEPLOYMENT, Severity.ERROR)
        return
    info = known_kind(resource.api_version, resource.kind)
    if info is not None and info.unsupported is not None:
        report("kind", info.unsupported, info.unsupported_code, Severity.WARNING)


def _check_conflicts(resources: Sequence[Resource[Any]], messages: list[ConfigMessage]) -> None:
    """IST0109: several VirtualServices for one host bound to the mesh (sidecars use the
    oldest; on gateways Istio merges them, so that is no conflict)."""
    owners: dict[tuple[str, str], list[tuple[Resource[Any], int]]] = defaultdict(list)
    for r in resources:
        spec = r.spec
        if not isinstance(spec, VirtualServiceSpec):
            continue
        gateways = spec.gateways or (MESH_GATEWAY,)
        for gateway in gateways:
            if resolve_gateway(gateway, r.namespace)[1] != MESH_GATEWAY:
                continue  # on gateways Istio merges VirtualServices for one host
            for k, host in enumerate(spec.hosts):
                owners[(MESH_GATEWAY, fqdn(host, r.namespace))].append((r, k))
    for (_gateway, host), users in owners.items():
        distinct: dict[ResourceKey, tuple[Resource[Any], int]] = {}
        for resource, k in users:
            distinct.setdefault(resource.key, (resource, k))
        if len(distinct) < 2:
            continue
        for key, (resource, k) in distinct.items():
            others = ", ".join(str(o) for o in distinct if o != key)
            messages.append(
                ConfigMessage(
                    f"host {host} on the mesh gateway is also routed by {others}; sidecars "
                    "use only the oldest: merge them into one VirtualService",
                    resource.source,
                    key,
                    f"spec.hosts[{k}]",
                    severity=Severity.WARNING,
                    code=CONFLICTING_VIRTUAL_SERVICES,
                )
            )
