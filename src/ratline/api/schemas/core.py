"""Kubernetes core/v1 kinds Ratline reads: Service, plus ServiceAccount and Namespace.

Only what a mesh needs is modelled; fields Kubernetes assigns (clusterIP and the like)
are accepted and ignored so that `kubectl get -o yaml` output loads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ratline.api.schemas.common import PortNumber, Seq, Spec


class ServicePort(Spec):
    """One port of a Service and the workload port it forwards to."""

    name: str | None = None
    port: PortNumber
    target_port: PortNumber | str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    node_port: PortNumber | None = None


class ServiceSpec(Spec):
    """A Kubernetes Service: a name for the workloads its selector picks."""

    ports: Seq[ServicePort] = Field(min_length=1)
    selector: dict[str, str] = {}
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: Seq[str] = Field(default=(), alias="clusterIPs")
    external_name: str | None = None
    external_ips: Seq[str] = Field(default=(), alias="externalIPs")
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    session_affinity: Literal["None", "ClientIP"] | None = None
    session_affinity_config: dict[str, Any] | None = None
    publish_not_ready_addresses: bool | None = None
    ip_families: Seq[str] = ()
    ip_family_policy: str | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None

    @model_validator(mode="after")
    def _ports(self) -> ServiceSpec:
        if len(self.ports) > 1 and any(not p.name for p in self.ports):
            raise ValueError("every port needs a name when there are several")
        names = [p.name for p in self.ports if p.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate port name {', '.join(duplicates)}")
        numbers = [(p.port, p.protocol) for p in self.ports]
        if len(set(numbers)) != len(numbers):
            raise ValueError("duplicate port number")
        return self


class NoSpec(Spec):
    """The (empty) spec of kinds that have none, such as ServiceAccount and Namespace."""


__all__ = ["NoSpec", "ServicePort", "ServiceSpec"]
