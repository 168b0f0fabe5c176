"""A VirtualService's `tcp:` and `tls:` rules → the filter chains of one L4 listener.

An Istio TCP or TLS rule is a list of match blocks (ORed; the attributes of one block
ANDed) and weighted destinations; the first rule that matches wins. What can be decided
when translating for one proxy and port is decided here (`port`, `gateways`,
`sourceLabels`, `sourceNamespace`, and a sidecar's `destinationSubnets`, held against the
addresses of the service the listener stands for); what only a connection can tell
becomes an Envoy filter chain match: `sniHosts` (server names, read by the TLS
inspector), `sourceSubnet` (source prefix ranges) and a gateway's `destinationSubnets`
(destination prefix ranges). Envoy picks the most specific chain rather than the first,
so rules after one that matches everything, and chains equal to an earlier one, are
dropped (Istio drops them too).

The result is plain data (`L4Chain`); `translate.l4_listeners` builds the listeners, and
`tcp_proxy_filter` is the one place a chain's `tcp_proxy` is made (stat prefix, access
log), for everything that wants to extend it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from ratline.api.envelope import Resource
from ratline.api.schemas.networking import L4MatchAttributes, RouteDestination, TLSMatchAttributes
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.translate import names
from ratline.translate.common import DEFAULTED, UNRESOLVED, Findings, labels_match, pack_any
from ratline.translate.http_routes import RouteContext, destination_cluster, gateway_ref
from ratline.translate.listeners import access_logs

if TYPE_CHECKING:
    from ratline.translate.telemetry_envoy import TcpTelemetry

TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"


@dataclass(frozen=True)
class L4Destination:
    cluster: str
    weight: int = 1


@dataclass(frozen=True)
class L4Chain:
    """One filter chain: what a connection must show, and where it then goes."""

    name: str
    destinations: tuple[L4Destination, ...]
    server_names: tuple[str, ...] = ()
    source_prefixes: tuple[str, ...] = ()
    destination_prefixes: tuple[str, ...] = ()

    @property
    def match_key(self) -> tuple[tuple[str, ...], ...]:
        return (
            tuple(sorted(self.server_names)),
            tuple(sorted(self.source_prefixes)),
            tuple(sorted(self.destination_prefixes)),
        )

    @property
    def matches_everything(self) -> bool:
        return not any(self.match_key)


@dataclass(frozen=True)
class L4Context:
    """Where rules are being translated: which proxy, gateway and port."""

    snapshot: MeshSnapshot
    gateway: str
    """`mesh` for sidecars, `namespace/name` of the Gateway otherwise."""
    port: int
    """The service port (sidecars) or the Gateway server port."""
    proxy_namespace: str
    proxy_labels: Mapping[str, str]
    findings: Findings
    service: Service | None = None
    """Sidecars: the service the listener stands for (its addresses decide
    `destinationSubnets`). None at gateways, where the connection's address does."""
    _routes: dict[str, RouteContext] = field(default_factory=dict, compare=False)

    def route_context(self, vs: Resource[Any]) -> RouteContext:
        """The HTTP routes' context for one VirtualService (to resolve its destinations)."""
        found = self._routes.get(str(vs.key))
        if found is None:
            found = RouteContext(
                snapshot=self.snapshot,
                virtual_service=vs,
                gateway=self.gateway,
                port=self.port,
                proxy_namespace=self.proxy_namespace,
                proxy_labels=dict(self.proxy_labels),
                findings=self.findings,
            )
            self._routes[str(vs.key)] = found
        return found


# ---- matching ----------------------------------------------------------------------------


def _applies(
    ctx: L4Context, vs: Resource[Any], match: L4MatchAttributes | TLSMatchAttributes
) -> bool:
    """The attributes a proxy and port decide: port, gateways and source."""
    if match.port is not None and match.port != ctx.port:
        return False
    if match.gateways:
        refs = {gateway_ref(g, vs.namespace) for g in match.gateways}
        if ctx.gateway not in refs:
            return False
    if match.source_namespace is not None and match.source_namespace != ctx.proxy_namespace:
        return False
    return not match.source_labels or labels_match(match.source_labels, ctx.proxy_labels)


def _networks(values: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    result = []
    for value in values:
        try:
            result.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            continue  # schema-valid but not an address: matches nothing
    return result


def _service_in_subnets(service: Service, subnets: Sequence[str]) -> bool:
    """Whether an address of the service lies in one of the subnets."""
    wanted = _networks(subnets)
    for own in _networks(service.addresses):
        if any(own.version == net.version and own.subnet_of(net) for net in wanted):  # type: ignore[arg-type]
            return True
    return False


@dataclass(frozen=True)
class _Dynamic:
    """The part of one match block only a connection can tell."""

    server_names: tuple[str, ...] = ()
    source_prefixes: tuple[str, ...] = ()
    destination_prefixes: tuple[str, ...] = ()


def _dynamic_part(
    ctx: L4Context,
    vs: Resource[Any],
    match: L4MatchAttributes | TLSMatchAttributes,
    where: str,
) -> _Dynamic | None:
    """The connection-level match of a block, or None if it can never hold here."""
    if not _applies(ctx, vs, match):
        return None
    destination_prefixes: tuple[str, ...] = ()
    if match.destination_subnets:
        if ctx.service is None:
            destination_prefixes = tuple(match.destination_subnets)
        elif not _service_in_subnets(ctx.service, match.destination_subnets):
            if not ctx.service.addresses:
                message = (
                    f"{ctx.service.hostname} has no address in local mode (no cluster IP): "
                    "destinationSubnets never match it"
                )
                ctx.findings.add(vs, f"{where}.destinationSubnets", message, UNRESOLVED)
            return None
    server_names: tuple[str, ...] = ()
    if isinstance(match, TLSMatchAttributes):
        server_names = tuple(h for h in match.sni_hosts if h != "*")
        if len(server_names) != len(match.sni_hosts):
            server_names = ()  # `*` among them: any name
    source_prefixes: tuple[str, ...] = ()
    if isinstance(match, L4MatchAttributes) and match.source_subnet:
        source_prefixes = (match.source_subnet,)
    return _Dynamic(server_names, source_prefixes, destination_prefixes)


def destinations(
    ctx: L4Context, vs: Resource[Any], route: Sequence[RouteDestination], where: str
) -> tuple[L4Destination, ...]:
    """A rule's weighted destinations (weight 0 dropped; none given: an even split)."""
    route_ctx = ctx.route_context(vs)
    entries = [
        (d.weight, destination_cluster(route_ctx, d.destination, f"{where}.route[{i}].destination"))
        for i, d in enumerate(route)
    ]
    if len(entries) == 1:
        return (L4Destination(entries[0][1], 1),)
    weighted = [L4Destination(cluster, weight) for weight, cluster in entries if weight]
    if not weighted and entries:
        ctx.findings.add(vs, f"{where}.route", "no weights: traffic split evenly", DEFAULTED)
        weighted = [L4Destination(cluster, 1) for _, cluster in entries]
    return tuple(weighted)


def rule_chains(
    ctx: L4Context, virtual_services: Sequence[Resource[Any]], section: str
) -> list[L4Chain]:
    """The chains of every `tcp` or `tls` rule (`section`) of these VirtualServices, in
    order, before deduplication."""
    chains: list[L4Chain] = []
    for vs in virtual_services:
        for index, rule in enumerate(getattr(vs.spec, section)):
            where = f"spec.{section}[{index}]"
            if not rule.route:
                continue
            blocks: list[Any] = list(rule.match) or [None]
            parts = []
            for j, match in enumerate(blocks):
                if match is None:
                    parts.append(_Dynamic())
                    continue
                part = _dynamic_part(ctx, vs, match, f"{where}.match[{j}]")
                if part is not None:
                    parts.append(part)
            if not parts:
                continue
            targets = destinations(ctx, vs, rule.route, where)
            if not targets:
                continue
            for j, part in enumerate(parts):
                chains.append(
                    L4Chain(
                        name=f"{vs.namespace}/{vs.name}.{section}[{index}].{j}",
                        destinations=targets,
                        server_names=part.server_names,
                        source_prefixes=part.source_prefixes,
                        destination_prefixes=part.destination_prefixes,
                    )
                )
    return chains


def first_match_wins(chains: Iterable[L4Chain], default: L4Chain | None) -> list[L4Chain]:
    """Drop what Envoy's most-specific-chain choice would let win against rule order:
    chains after one that matches everything, and chains equal to an earlier one. The
    `default` goes last when no chain matches everything."""
    kept: list[L4Chain] = []
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for chain in chains:
        if chain.match_key in seen:
            continue
        seen.add(chain.match_key)
        kept.append(chain)
        if chain.matches_everything:
            return kept
    if default is not None:
        kept.append(default)
    return kept


# ---- Envoy filters and chains ------------------------------------------------------------


def tcp_proxy_filter(
    stat_prefix: str,
    targets: Sequence[L4Destination],
    mesh_config: Any,
    telemetry: TcpTelemetry | None = None,
) -> listener_components_pb2.Filter:
    """The `tcp_proxy` of an L4 chain: to one cluster or weighted clusters, with the
    mesh's access log, or the proxy's telemetry (`telemetry_envoy.tcp_telemetry`: access
    logs, Istio's TCP metrics, the client's metadata TLV). Every TCP chain Ratline makes
    gets its tcp_proxy here."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    if len(targets) == 1:
        proxy.cluster = targets[0].cluster
    else:
        for target in targets:
            proxy.weighted_clusters.clusters.add(name=target.cluster, weight=target.weight)
    # The proxy's telemetry (access logs, metrics) replaces MeshConfig's access log.
    proxy.access_log.extend(access_logs(mesh_config) if telemetry is None else telemetry.logs)
    if telemetry is not None and telemetry.counts:
        # connections_opened is logged when the upstream connects (TcpUpstreamConnected).
        proxy.access_log_options.flush_access_log_on_connected = True
    if telemetry is not None:
        proxy.proxy_protocol_tlvs.extend(telemetry.tlvs)
    return listener_components_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=pack_any(proxy))


def _cidr(value: str) -> address_pb2.CidrRange:
    network = ipaddress.ip_network(value, strict=False)
    cidr = address_pb2.CidrRange(address_prefix=str(network.network_address))
    cidr.prefix_len.value = network.prefixlen
    return cidr


def filter_chain(
    chain: L4Chain,
    mesh_config: Any,
    extra_filters: Sequence[Any] = (),
    telemetry: TcpTelemetry | None = None,
) -> listener_components_pb2.FilterChain:
    """An Envoy filter chain: the chain's match, `extra_filters` (RBAC), its tcp_proxy
    (with the proxy's TCP `telemetry`)."""
    result = listener_components_pb2.FilterChain(name=chain.name)
    match = result.filter_chain_match
    match.server_names.extend(chain.server_names)
    match.source_prefix_ranges.extend(_cidr(p) for p in _valid(chain.source_prefixes))
    match.prefix_ranges.extend(_cidr(p) for p in _valid(chain.destination_prefixes))
    result.filters.extend(extra_filters)
    stat_prefix = chain.destinations[0].cluster if len(chain.destinations) == 1 else chain.name
    result.filters.append(tcp_proxy_filter(stat_prefix, chain.destinations, mesh_config, telemetry))
    return result


def _valid(prefixes: Iterable[str]) -> list[str]:
    return [str(n) for n in _networks(prefixes)]


def http_proxy_route(ctx: L4Context, vs: Resource[Any], default_cluster: str) -> rc.Route:
    """The route of an HTTP request an app sends through HTTP_PROXY to a TCP service
    port: where the port's `tcp:` rules send a connection from this proxy (the first
    rule that needs nothing only a connection can tell), as Istio proxies such a request
    as bytes; the service itself when none applies."""
    route = rc.Route(name="tcp", match=rc.RouteMatch(prefix="/"))
    targets: tuple[L4Destination, ...] = (L4Destination(default_cluster),)
    for chain in first_match_wins(rule_chains(ctx, [vs], "tcp"), None):
        if chain.matches_everything:
            targets = chain.destinations
            break
    if len(targets) == 1:
        route.route.cluster = targets[0].cluster
    else:
        for target in targets:
            entry = route.route.weighted_clusters.clusters.add(name=target.cluster)
            entry.weight.value = target.weight
    route.route.timeout.SetInParent()  # 0s: a TCP connection has no request timeout
    return route


def blackhole_chain(name: str) -> L4Chain:
    """Everything to `BlackHoleCluster` (nothing routes here): connections close at once."""
    return L4Chain(name=name, destinations=(L4Destination(names.BLACKHOLE_CLUSTER),))
