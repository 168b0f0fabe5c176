"""Istio's `Sidecar` resource, egress side: which services a sidecar proxy may see.

The Sidecar that applies to a proxy is, as in Istio: one in the proxy's namespace whose
`workloadSelector` matches its labels; else the one in its namespace without a selector;
else the one in the mesh root namespace (MeshConfig `rootNamespace`) without a selector;
else none, and the proxy sees every service (`EVERYTHING`). Between several candidates of
the same rank the oldest (`metadata.creationTimestamp`, when given) wins, then the first
by name; the others are reported.

The union of the hosts of every egress listener decides what the proxy sees (a Sidecar
without egress listeners imports `*/*`, as in Istio). A host is
`namespace/dnsName`: namespace `*` (any), `.` (the proxy's own namespace, also for a
Sidecar in the root namespace) or `~` (none); dnsName `*`, `*.suffix` or a FQDN matched
literally (short names match nothing, as in Istio). Services a VirtualService for a
visible host routes or mirrors to are visible too (Istio imports them so that its routes
do not point at missing clusters). A scoped proxy sees only services exported to its
namespace. Gateways (router proxies) are never scoped.

`EgressScope` is a small hashable value: proxies with equal scopes get the very same
translated resources (see `translate.generator`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ratline.api.envelope import Resource, ResourceKey
from ratline.api.hosts import (
    MESH_GATEWAY,
    fqdn,
    host_matches,
    hosts_overlap,
    split_namespaced_host,
)
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.translate.common import (
    CONFLICT,
    DEFAULTED,
    UNRESOLVED,
    Findings,
    age_key,
    labels_match,
)
from ratline.translate.policy import visible_to

SIDECAR_KIND = "Sidecar"
ANY_NAMESPACE = "*"
OWN_NAMESPACE = "."
NO_NAMESPACE = "~"
DEFAULT_ROOT_NAMESPACE = "istio-system"


@dataclass(frozen=True, order=True)
class HostPattern:
    """One egress host with its namespace resolved: (`*` or a namespace, dnsName)."""

    namespace: str
    host: str

    def covers(self, service: Service) -> bool:
        """Whether this pattern imports the service."""
        if self.namespace not in (ANY_NAMESPACE, service.namespace):
            return False
        return host_matches(self.host, service.hostname)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.host}"


@dataclass(frozen=True)
class EgressScope:
    """What one sidecar may see; hashable, so a memo key for what depends on it.

    `patterns` None means no Sidecar applies: every service is visible (`EVERYTHING`).
    """

    patterns: tuple[HostPattern, ...] | None = None
    also: frozenset[str] = frozenset()
    """Hostnames visible because a visible host's VirtualService routes to them."""
    export_namespace: str = ""
    """The proxy's namespace when some service's exportTo restricts it, else ''."""
    outbound_mode: str | None = None
    """The Sidecar's outboundTrafficPolicy mode; None means MeshConfig's."""
    sidecar: ResourceKey | None = field(default=None, compare=False)
    """The Sidecar that applies (for messages; not part of equality)."""

    @property
    def unrestricted(self) -> bool:
        return self.patterns is None

    def sees(self, service: Service) -> bool:
        """Whether the proxy gets this service's clusters, endpoints and virtual hosts."""
        if self.patterns is None:
            return True
        if service.hostname in self.also:
            return True
        if self.export_namespace and not visible_to(
            service.export_to, service.namespace, self.export_namespace
        ):
            return False
        return any(p.covers(service) for p in self.patterns)

    @property
    def visibility(self) -> EgressScope:
        """The part outbound clusters and load assignments depend on (no traffic policy);
        `EVERYTHING` when the scope hides nothing (`*/*` without exportTo limits)."""
        if self.patterns is not None and not self.export_namespace and (ALL_HOSTS in self.patterns):
            return EVERYTHING
        if self.outbound_mode is None:
            return self
        return replace(self, outbound_mode=None)


EVERYTHING = EgressScope()
"""No Sidecar applies: every service is visible (and gateways always use this)."""

ALL_HOSTS = HostPattern(ANY_NAMESPACE, "*")
"""`*/*`: also what a Sidecar without egress listeners imports, as in Istio."""


def root_namespace(snapshot: MeshSnapshot) -> str:
    """MeshConfig `rootNamespace` (Istio's default `istio-system`)."""
    return str(getattr(snapshot.mesh_config, "root_namespace", None) or DEFAULT_ROOT_NAMESPACE)


def _selector(sidecar: Resource[Any]) -> dict[str, str] | None:
    selector = sidecar.spec.workload_selector
    if selector is None or not selector.labels:
        return None
    return dict(selector.labels)


class SidecarIndex:
    """The Sidecars of one snapshot, and the egress scope of each proxy (memoized)."""

    def __init__(self, snapshot: MeshSnapshot, findings: Findings | None = None) -> None:
        self.snapshot = snapshot
        self.findings = findings if findings is not None else Findings()
        self.root = root_namespace(snapshot)
        self._by_namespace: dict[str, list[Resource[Any]]] = {}
        for sidecar in sorted(snapshot.extra.get(SIDECAR_KIND, ()), key=age_key):
            self._by_namespace.setdefault(sidecar.namespace, []).append(sidecar)
        self._export_matters = any(
            tuple(s.export_to) not in ((), ("*",)) for s in snapshot.services.values()
        )
        self._scopes: dict[tuple[ResourceKey, str], EgressScope] = {}
        self._reported: set[ResourceKey] = set()

    def sidecar_for(self, instance: WorkloadInstance) -> Resource[Any] | None:
        """The Sidecar applying to a proxy, None for gateways or when none applies."""
        if instance.kind is ProxyKind.ROUTER or not self._by_namespace:
            return None
        own = self._by_namespace.get(instance.namespace, [])
        selecting = [
            s
            for s in own
            if (selector := _selector(s)) is not None and labels_match(selector, instance.labels)
        ]
        if selecting:
            return self._first(selecting, f"selecting {instance.namespace}/{instance.name}")
        defaults = [s for s in own if _selector(s) is None]
        if defaults:
            return self._first(defaults, f"without workloadSelector in {instance.namespace}")
        mesh_wide = [s for s in self._by_namespace.get(self.root, []) if _selector(s) is None]
        if mesh_wide:
            return self._first(mesh_wide, f"without workloadSelector in {self.root}")
        return None

    def _first(self, candidates: list[Resource[Any]], what: str) -> Resource[Any]:
        chosen = candidates[0]
        for other in candidates[1:]:
            message = f"{chosen.key} also applies ({what}) and wins (oldest, then by name); ignored"
            self.findings.add(other, "spec.workloadSelector", message, CONFLICT)
        return chosen

    def scope_for(self, instance: WorkloadInstance) -> EgressScope:
        """The egress scope of a proxy (`EVERYTHING` when no Sidecar applies)."""
        sidecar = self.sidecar_for(instance)
        if sidecar is None:
            return EVERYTHING
        memo_key = (sidecar.key, instance.namespace)
        scope = self._scopes.get(memo_key)
        if scope is None:
            scope = self._scope(sidecar, instance.namespace)
            self._scopes[memo_key] = scope
        return scope

    def _scope(self, sidecar: Resource[Any], proxy_namespace: str) -> EgressScope:
        if sidecar.key not in self._reported:
            self._reported.add(sidecar.key)
            report_untranslated(sidecar, self.findings)
        if sidecar.spec.egress:
            patterns = tuple(sorted(set(self._patterns(sidecar, proxy_namespace))))
        else:
            patterns = (ALL_HOSTS,)
        spec = sidecar.spec
        mode = spec.outbound_traffic_policy.mode if spec.outbound_traffic_policy else None
        scope = EgressScope(
            patterns=patterns,
            export_namespace=proxy_namespace if self._export_matters else "",
            outbound_mode=mode,
            sidecar=sidecar.key,
        )
        also = frozenset(self._destinations(scope, proxy_namespace)) if patterns else frozenset()
        return replace(scope, also=also)

    def _patterns(self, sidecar: Resource[Any], proxy_namespace: str) -> Iterator[HostPattern]:
        for index, listener in enumerate(sidecar.spec.egress):
            for host_index, value in enumerate(listener.hosts):
                where = f"spec.egress[{index}].hosts[{host_index}]"
                if "/" not in value:
                    message = (
                        f"host {value} has no namespace/ (Istio requires "
                        f"namespace/dnsName); read as */{value}"
                    )
                    self.findings.add(sidecar, where, message, DEFAULTED)
                namespace, host = split_namespaced_host(value, proxy_namespace)
                if namespace == NO_NAMESPACE:
                    continue
                pattern = HostPattern(namespace, host.lower())
                if not host.startswith("*") and not any(
                    pattern.covers(s) for s in self.snapshot.services.values()
                ):
                    hint = "" if "." in host else " (dnsName must be a FQDN)"
                    message = f"egress host {value} matches no service in the registry{hint}"
                    self.findings.add(sidecar, where, message, UNRESOLVED)
                yield pattern

    def _destinations(self, scope: EgressScope, proxy_namespace: str) -> Iterator[str]:
        """Hosts the VirtualServices of visible hosts send traffic to (also visible)."""
        patterns = scope.patterns or ()
        for vs in self.snapshot.virtual_services:
            if vs.spec.gateways and MESH_GATEWAY not in vs.spec.gateways:
                continue
            if not visible_to(vs.spec.export_to, vs.namespace, proxy_namespace):
                continue
            hosts = [fqdn(h, vs.namespace) for h in vs.spec.hosts]
            if not any(
                p.namespace in (ANY_NAMESPACE, vs.namespace) and hosts_overlap(p.host, h)
                for p in patterns
                for h in hosts
            ):
                continue
            for host in destination_hosts(vs):
                service = self.snapshot.services.get(host)
                if service is not None and visible_to(
                    service.export_to, service.namespace, proxy_namespace
                ):
                    yield host


def destination_hosts(vs: Resource[Any]) -> Iterator[str]:
    """Every destination host (as a FQDN) a VirtualService routes or mirrors to."""
    spec = vs.spec
    for http in spec.http:
        for weighted in http.route:
            yield fqdn(weighted.destination.host, vs.namespace)
        if http.mirror is not None:
            yield fqdn(http.mirror.host, vs.namespace)
        for mirror in http.mirrors:
            yield fqdn(mirror.destination.host, vs.namespace)
    for route in (*spec.tcp, *spec.tls):
        for weighted in route.route:
            yield fqdn(weighted.destination.host, vs.namespace)


def report_untranslated(sidecar: Resource[Any], findings: Findings) -> None:
    """Findings for the Sidecar fields Ratline does not translate (hosts are)."""
    spec = sidecar.spec
    if spec.ingress:
        findings.not_supported(sidecar, "spec.ingress", "Sidecar ingress listeners")
    if spec.inbound_connection_pool is not None:
        findings.not_supported(sidecar, "spec.inboundConnectionPool", "inboundConnectionPool")
    policy = spec.outbound_traffic_policy
    if policy is not None and policy.egress_proxy is not None:
        findings.not_supported(sidecar, "spec.outboundTrafficPolicy.egressProxy", "egressProxy")
    for index, listener in enumerate(spec.egress):
        where = f"spec.egress[{index}]"
        if listener.port is not None:
            findings.not_supported(
                sidecar, f"{where}.port", "egress listener port (hosts apply on every port)"
            )
        if listener.bind:
            findings.not_supported(sidecar, f"{where}.bind", "egress listener bind")
        if listener.capture_mode not in (None, "DEFAULT"):
            findings.not_supported(sidecar, f"{where}.captureMode", "egress captureMode")


def egress_scope(
    snapshot: MeshSnapshot, instance: WorkloadInstance, findings: Findings | None = None
) -> EgressScope:
    """The egress scope of one proxy (for many proxies, keep one `SidecarIndex`)."""
    return SidecarIndex(snapshot, findings).scope_for(instance)
