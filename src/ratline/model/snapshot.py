"""The immutable mesh snapshot that translation reads: one per push.

Built from the config store and the registry (see `model.build`), never mutated after.
Translation functions are pure functions of (snapshot, proxy), so their results can be
cached by `snapshot.version` plus whatever part of the proxy they depend on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ratline.api.envelope import Resource
from ratline.registry.instances import WorkloadInstance


class Resolution(StrEnum):
    """How a service's endpoints are found (Istio's ServiceEntry resolution)."""

    EDS = "EDS"
    """Endpoints from the registry, sent over EDS (Kubernetes Services, STATIC entries)."""
    DNS = "DNS"
    """Envoy resolves the endpoint addresses (STRICT_DNS)."""
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    """Envoy resolves and uses one address at a time (LOGICAL_DNS)."""
    NONE = "NONE"
    """Passthrough to the address the client asked for."""


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str = "TCP"
    """Istio protocol (`ratline.api.protocols`): HTTP, HTTP2, GRPC, TCP, TLS, HTTPS, …
    (a Service's from appProtocol or the port name, a ServiceEntry's as declared)."""
    target_port: int | str | None = None
    declared: bool = True
    """False for a Service port whose protocol nothing declared (TCP here; Istio sniffs)."""


@dataclass(frozen=True)
class Endpoint:
    """One address traffic for a service port can go to."""

    address: str
    port: int
    """The port to connect to: the sidecar's inbound port, or the app's when it has none."""
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""
    service_account: str = ""
    instance: str = ""
    """Name of the workload instance (or WorkloadEntry) behind this endpoint."""
    healthy: bool = True
    weight: int = 1
    has_sidecar: bool = False
    locality: str = ""


@dataclass(frozen=True)
class Service:
    """A service in the mesh: a Kubernetes Service or a ServiceEntry host."""

    hostname: str
    """FQDN: `reviews.default.svc.cluster.local`, or a ServiceEntry host."""
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    resolution: Resolution = Resolution.EDS
    mesh_external: bool = False
    endpoints: Mapping[int, tuple[Endpoint, ...]] = field(default_factory=dict)
    """Endpoints by service port number."""
    export_to: tuple[str, ...] = ("*",)
    origin: str = "Service"
    """The kind that declared it: Service or ServiceEntry."""
    addresses: tuple[str, ...] = ()
    """A ServiceEntry's `addresses` (IPs or CIDRs), a Service's cluster IPs (none in local
    mode)."""
    subject_alt_names: tuple[str, ...] = ()
    """A ServiceEntry's `subjectAltNames`: the identities its endpoints' certificates
    must carry (instead of those of the sidecars behind it)."""

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


@dataclass(frozen=True)
class MeshSnapshot:
    """Everything translation needs, frozen at one moment."""

    version: str
    """Changes whenever any input changes; part of every translation cache key."""
    mesh_config: Any
    """The validated MeshConfig (`ratline.api.schemas.meshconfig.MeshConfig`)."""
    services: Mapping[str, Service]
    """By hostname."""
    instances: Mapping[str, WorkloadInstance]
    """By proxy node id."""
    virtual_services: tuple[Resource[Any], ...] = ()
    destination_rules: tuple[Resource[Any], ...] = ()
    gateways: tuple[Resource[Any], ...] = ()
    service_entries: tuple[Resource[Any], ...] = ()
    extra: Mapping[str, tuple[Resource[Any], ...]] = field(default_factory=dict)
    """Resources of other kinds by kind (security policies, telemetry, …), for later layers."""
    gateway_api_status: Mapping[Any, Mapping[str, Any]] = field(default_factory=dict)
    """The status of each Gateway API resource by its `ResourceKey`
    (`ratline.model.gateway_api`), as Istio's gateway controller writes it."""
    model_findings: tuple[Any, ...] = ()
    """Findings (`ConfigMessage`s) of building the model: Gateway API config not translated."""
    config_version: str = ""
    """Changes whenever the configuration (every input but the instances) changes; empty
    when unknown. Two snapshots with the same non-empty one differ only in instances."""

    def instance(self, node_id: str) -> WorkloadInstance | None:
        return self.instances.get(node_id)
