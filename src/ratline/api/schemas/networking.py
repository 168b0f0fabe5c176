"""Istio's networking.istio.io kinds: the spec models of every networking resource.

Gateway, ServiceEntry, WorkloadEntry and Sidecar are defined here; VirtualService and
DestinationRule live in their own modules and are re-exported, so callers import every
networking model from this module.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from ratline.api.schemas.common import (
    NonEmptyStr,
    NonNegativeInt,
    PortNumber,
    Seq,
    Spec,
    WorkloadSelector,
)
from ratline.api.schemas.destination_rule import (
    ClientTLSSettings,
    ConnectionKeepalive,
    ConnectionPoolSettings,
    ConsistentHashLB,
    CookieAttribute,
    DestinationRuleSpec,
    DestinationRuleWorkloadSelector,
    HTTPCookie,
    HTTPSettings,
    LoadBalancerSettings,
    LocalityDistribute,
    LocalityFailover,
    LocalityLoadBalancerSetting,
    MagLev,
    OutlierDetection,
    PortTrafficPolicy,
    ProxyProtocol,
    RetryBudget,
    RingHash,
    SimpleLB,
    Subset,
    TcpKeepalive,
    TCPSettings,
    TrafficPolicy,
    TunnelSettings,
    WarmupConfiguration,
    ZoneAwareLoadBalancerSetting,
)
from ratline.api.schemas.virtual_service import (
    CorsPolicy,
    Delegate,
    Destination,
    FaultAbort,
    FaultDelay,
    HeaderOperations,
    Headers,
    HTTPBody,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPMirrorPolicy,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
    L4MatchAttributes,
    RegexRewrite,
    RouteDestination,
    StringMatch,
    TCPRoute,
    TLSMatchAttributes,
    TLSRoute,
    VirtualServiceSpec,
)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


Protocol = Annotated[
    Literal[
        "HTTP",
        "HTTPS",
        "GRPC",
        "GRPC-WEB",
        "HTTP2",
        "HTTP_PROXY",
        "MONGO",
        "REDIS",
        "MYSQL",
        "TCP",
        "TLS",
        "UDP",
    ],
    BeforeValidator(_upper),
]
"""Istio's port protocols (`ratline.api.protocols`), read case-insensitively as Istio
does (`tcp`, `GRPC-Web`) and kept in upper case."""


class Port(Spec):
    """A port with its protocol, as Gateways, ServiceEntries and Sidecars declare them."""

    number: PortNumber
    protocol: Protocol
    name: NonEmptyStr
    target_port: PortNumber | None = None


class ServerTLSSettings(Spec):
    """TLS a gateway server terminates (or passes through)."""

    https_redirect: bool | None = None
    mode: (
        Literal[
            "PASSTHROUGH",
            "SIMPLE",
            "MUTUAL",
            "AUTO_PASSTHROUGH",
            "ISTIO_MUTUAL",
            "OPTIONAL_MUTUAL",
        ]
        | None
    ) = None
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: Seq[str] = ()
    subject_alt_names: Seq[str] = ()
    verify_certificate_spki: Seq[str] = ()
    verify_certificate_hash: Seq[str] = ()
    min_protocol_version: Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"] | None = (
        None
    )
    max_protocol_version: Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"] | None = (
        None
    )
    cipher_suites: Seq[str] = ()


class Server(Spec):
    """One port a gateway listens on, with the hosts it exposes there."""

    port: Port
    bind: str | None = None
    hosts: Seq[NonEmptyStr] = Field(min_length=1)
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


class GatewaySpec(Spec):
    """A load balancer at the edge of the mesh: which proxies, which ports and hosts."""

    selector: dict[str, str] = {}
    servers: Seq[Server] = Field(min_length=1)


class WorkloadEntrySpec(Spec):
    """A non-Kubernetes workload (or a ServiceEntry endpoint)."""

    address: str | None = None
    ports: dict[str, PortNumber] = {}
    labels: dict[str, str] = {}
    network: str | None = None
    locality: str | None = None
    weight: NonNegativeInt | None = None
    service_account: str | None = None


class ServiceEntrySpec(Spec):
    """Adds services to Istio's registry, often services outside the mesh."""

    hosts: Seq[NonEmptyStr] = Field(min_length=1)
    addresses: Seq[str] = ()
    ports: Seq[Port] = ()
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] = "MESH_EXTERNAL"
    resolution: Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"] = "NONE"
    endpoints: Seq[WorkloadEntrySpec] = ()
    workload_selector: WorkloadSelector | None = None
    export_to: Seq[str] = ()
    subject_alt_names: Seq[str] = ()

    @model_validator(mode="after")
    def _check(self) -> ServiceEntrySpec:
        if self.endpoints and self.workload_selector is not None:
            raise ValueError("set only one of endpoints, workloadSelector")
        if self.resolution == "STATIC" and self.workload_selector is None:
            missing = [i for i, e in enumerate(self.endpoints) if not e.address]
            if missing:
                raise ValueError(f"endpoints[{missing[0]}]: STATIC resolution needs an address")
        if self.resolution in ("DNS", "DNS_ROUND_ROBIN") and not self.endpoints:
            wild = [h for h in self.hosts if "*" in h]
            if wild:
                raise ValueError(
                    f"hosts: wildcard host {wild[0]} needs endpoints with "
                    f"resolution {self.resolution} (there is no name to resolve)"
                )
        if self.resolution == "DNS_ROUND_ROBIN" and len(self.endpoints) > 1:
            raise ValueError("endpoints: DNS_ROUND_ROBIN takes at most one endpoint")
        names = [p.name for p in self.ports]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate port name {', '.join(duplicates)}")
        return self


class IstioIngressListener(Spec):
    port: Port
    bind: str | None = None
    capture_mode: Literal["DEFAULT", "IPTABLES", "NONE"] | None = None
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


class IstioEgressListener(Spec):
    port: Port | None = None
    bind: str | None = None
    capture_mode: Literal["DEFAULT", "IPTABLES", "NONE"] | None = None
    hosts: Seq[NonEmptyStr] = Field(min_length=1)


class OutboundTrafficPolicy(Spec):
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "ALLOW_ANY"
    egress_proxy: Destination | None = None


class SidecarSpec(Spec):
    """Narrows what a sidecar proxy sees and accepts."""

    workload_selector: WorkloadSelector | None = None
    ingress: Seq[IstioIngressListener] = ()
    egress: Seq[IstioEgressListener] = ()
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
    inbound_connection_pool: ConnectionPoolSettings | None = None


__all__ = [
    "ClientTLSSettings",
    "ConnectionKeepalive",
    "ConnectionPoolSettings",
    "ConsistentHashLB",
    "CookieAttribute",
    "CorsPolicy",
    "Delegate",
    "Destination",
    "DestinationRuleSpec",
    "DestinationRuleWorkloadSelector",
    "FaultAbort",
    "FaultDelay",
    "GatewaySpec",
    "HTTPBody",
    "HTTPCookie",
    "HTTPDirectResponse",
    "HTTPFaultInjection",
    "HTTPMatchRequest",
    "HTTPMirrorPolicy",
    "HTTPRedirect",
    "HTTPRetry",
    "HTTPRewrite",
    "HTTPRoute",
    "HTTPRouteDestination",
    "HTTPSettings",
    "HeaderOperations",
    "Headers",
    "IstioEgressListener",
    "IstioIngressListener",
    "L4MatchAttributes",
    "LoadBalancerSettings",
    "LocalityDistribute",
    "LocalityFailover",
    "LocalityLoadBalancerSetting",
    "MagLev",
    "OutboundTrafficPolicy",
    "OutlierDetection",
    "Port",
    "PortTrafficPolicy",
    "Protocol",
    "ProxyProtocol",
    "RegexRewrite",
    "RetryBudget",
    "RingHash",
    "RouteDestination",
    "Server",
    "ServerTLSSettings",
    "ServiceEntrySpec",
    "SidecarSpec",
    "SimpleLB",
    "StringMatch",
    "Subset",
    "TCPRoute",
    "TCPSettings",
    "TLSMatchAttributes",
    "TLSRoute",
    "TcpKeepalive",
    "TrafficPolicy",
    "TunnelSettings",
    "VirtualServiceSpec",
    "WarmupConfiguration",
    "WorkloadEntrySpec",
    "WorkloadSelector",
    "ZoneAwareLoadBalancerSetting",
]
