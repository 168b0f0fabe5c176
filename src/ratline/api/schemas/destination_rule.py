"""Istio's DestinationRule (networking.istio.io): traffic policy and subsets for a host.

Field names and semantics follow Istio's documentation of `DestinationRule`; import
these through `ratline.api.schemas.networking`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ratline.api.schemas.common import (
    Duration,
    FloatPercent,
    IntPercent,
    NonEmptyStr,
    NonNegativeInt,
    PortNumber,
    PortSelector,
    PositiveDuration,
    PositiveInt,
    Seq,
    Spec,
    only_one_of,
)


class CookieAttribute(Spec):
    name: NonEmptyStr
    value: str = ""


class HTTPCookie(Spec):
    """A cookie to hash on; Envoy generates it when absent and `ttl` is set."""

    name: NonEmptyStr
    path: str | None = None
    ttl: Duration | None = None
    attributes: Seq[CookieAttribute] = ()


class RingHash(Spec):
    minimum_ring_size: PositiveInt | None = None


class MagLev(Spec):
    table_size: PositiveInt | None = None


class ConsistentHashLB(Spec):
    """Session affinity: hash on a header, cookie, source IP or query parameter."""

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_key(self) -> ConsistentHashLB:
        only_one_of(
            self,
            ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name"),
            required=True,
        )
        only_one_of(self, ("ring_hash", "maglev"), required=False)
        return self


class LocalityDistribute(Spec):
    from_: str = Field(alias="from")
    to: dict[str, int] = {}


class LocalityFailover(Spec):
    from_: str = Field(alias="from")
    to: str


class LocalityLoadBalancerSetting(Spec):
    """How traffic is spread and failed over across localities."""

    distribute: Seq[LocalityDistribute] = ()
    failover: Seq[LocalityFailover] = ()
    failover_priority: Seq[str] = ()
    enabled: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> LocalityLoadBalancerSetting:
        if self.distribute and self.failover:
            raise ValueError("set only one of distribute, failover")
        for rule in self.distribute:
            if any(not 1 <= weight <= 100 for weight in rule.to.values()):
                raise ValueError(f"distribute from {rule.from_!r}: weights must be 1..100")
            if sum(rule.to.values()) != 100:
                raise ValueError(f"distribute from {rule.from_!r}: weights must add up to 100")
        for failover in self.failover:
            if failover.from_ == failover.to:
                raise ValueError(f"failover from {failover.from_!r} to itself")
            if "/" in failover.from_ or "/" in failover.to:
                raise ValueError("failover from/to name regions, without zones (no '/')")
        return self


class ZoneAwareFailover(Spec):
    from_: str = Field(alias="from")
    to: str


class ZoneAwareLoadBalancerSetting(Spec):
    """Envoy's zone-aware routing (Istio 1.28+)."""

    enabled: bool | None = None
    failover: Seq[ZoneAwareFailover] = ()
    failover_priority: Seq[str] = ()
    min_cluster_size: PositiveInt | None = None


class WarmupConfiguration(Spec):
    duration: PositiveDuration
    minimum_percent: FloatPercent | None = None
    aggression: float | None = None


SimpleLB = Literal[
    "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"
]


class LoadBalancerSettings(Spec):
    """Load balancing: a simple algorithm or consistent hashing."""

    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: PositiveDuration | None = None
    warmup: WarmupConfiguration | None = None

    @model_validator(mode="after")
    def _one_policy(self) -> LoadBalancerSettings:
        only_one_of(self, ("simple", "consistent_hash"), required=False)
        return self


def _code_range(value: int) -> int:
    if not 100 <= value <= 599:
        raise ValueError("must be an HTTP status code, 100..599")
    return value


class TcpKeepalive(Spec):
    probes: PositiveInt | None = None
    time: PositiveDuration | None = None
    interval: PositiveDuration | None = None


class TCPSettings(Spec):
    """Limits on TCP connections to each host of the destination."""

    max_connections: PositiveInt | None = None
    connect_timeout: PositiveDuration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: PositiveDuration | None = None
    idle_timeout: Duration | None = None


class ConnectionKeepalive(Spec):
    """HTTP/2 PING frames: how often, and how long to wait for the answer."""

    interval: PositiveDuration
    timeout: PositiveDuration


class HTTPSettings(Spec):
    """Limits on HTTP requests to the destination."""

    http1_max_pending_requests: PositiveInt | None = None
    http2_max_requests: PositiveInt | None = None
    max_requests_per_connection: NonNegativeInt | None = None
    max_retries: NonNegativeInt | None = None
    idle_timeout: Duration | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: PositiveInt | None = None
    http2_keep_alive: ConnectionKeepalive | None = None


class ConnectionPoolSettings(Spec):
    """Circuit breaking limits."""

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


HttpCode = Annotated[int, AfterValidator(_code_range)]


class OutlierDetection(Spec):
    """Eject hosts that keep failing from the load balancing pool."""

    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: NonNegativeInt | None = None
    consecutive_gateway_errors: NonNegativeInt | None = None
    consecutive_5xx_errors: NonNegativeInt | None = Field(
        default=None, alias="consecutive5xxErrors"
    )
    consecutive_errors: NonNegativeInt | None = None
    interval: PositiveDuration | None = None
    base_ejection_time: PositiveDuration | None = None
    max_ejection_percent: IntPercent | None = None
    min_health_percent: IntPercent | None = None
    outlier_detection_http_error_codes: Seq[HttpCode] = ()


class ClientTLSSettings(Spec):
    """TLS the client side (the sidecar or gateway) uses towards the destination."""

    mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] = "DISABLE"
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: Seq[str] = ()
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None

    @model_validator(mode="after")
    def _mutual_needs_cert(self) -> ClientTLSSettings:
        if (
            self.mode == "MUTUAL"
            and self.credential_name is None
            and (self.client_certificate is None or self.private_key is None)
        ):
            raise ValueError("MUTUAL needs clientCertificate and privateKey, or credentialName")
        return self


class PortTrafficPolicy(Spec):
    """Traffic policy for one port of the destination."""

    port: PortSelector
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TunnelSettings(Spec):
    protocol: Literal["CONNECT", "POST"] = "CONNECT"
    target_host: NonEmptyStr
    target_port: PortNumber


class ProxyProtocol(Spec):
    version: Literal["V1", "V2"] = "V1"


class RetryBudget(Spec):
    """A limit on concurrent retries relative to the active requests."""

    percent: FloatPercent | None = None
    min_retry_concurrency: NonNegativeInt | None = None
    budget_interval: Duration | None = None


class TrafficPolicy(Spec):
    """Policies applied to traffic for a destination after routing."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: Seq[PortTrafficPolicy] = ()
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None


class Subset(Spec):
    """A named group of a service's endpoints, chosen by labels (e.g. a version)."""

    name: NonEmptyStr
    labels: dict[str, str] = {}
    traffic_policy: TrafficPolicy | None = None


class DestinationRuleWorkloadSelector(Spec):
    match_labels: dict[str, str] = {}


class DestinationRuleSpec(Spec):
    """Policies for traffic to one host, and its subsets."""

    host: NonEmptyStr
    traffic_policy: TrafficPolicy | None = None
    subsets: Seq[Subset] = ()
    export_to: Seq[str] = ()
    workload_selector: DestinationRuleWorkloadSelector | None = None

    @model_validator(mode="after")
    def _unique_subsets(self) -> DestinationRuleSpec:
        names = [s.name for s in self.subsets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate subset name {', '.join(duplicates)}")
        return self


__all__ = [
    "ClientTLSSettings",
    "ConnectionKeepalive",
    "ConnectionPoolSettings",
    "ConsistentHashLB",
    "CookieAttribute",
    "DestinationRuleSpec",
    "DestinationRuleWorkloadSelector",
    "HTTPCookie",
    "HTTPSettings",
    "LoadBalancerSettings",
    "LocalityDistribute",
    "LocalityFailover",
    "LocalityLoadBalancerSetting",
    "MagLev",
    "OutlierDetection",
    "PortTrafficPolicy",
    "ProxyProtocol",
    "RetryBudget",
    "RingHash",
    "SimpleLB",
    "Subset",
    "TCPSettings",
    "TcpKeepalive",
    "TrafficPolicy",
    "TunnelSettings",
    "WarmupConfiguration",
    "ZoneAwareLoadBalancerSetting",
]
