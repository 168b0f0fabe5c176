"""Which Istio resources apply where: host names and wildcards, the DestinationRule of a
service, its subsets and the traffic policy in force for one port and subset.

Istio semantics kept here: a short host resolves in the resource's namespace; a
DestinationRule in the service's own namespace wins over one elsewhere, an exact host over
a wildcard; a port-level setting replaces the load balancer, connection pool, outlier
detection and TLS of the policy it sits in (nothing of those is inherited), and a subset's
policy overrides the rule's field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic.alias_generators import to_camel

from ratline.api.envelope import Resource
from ratline.api.hosts import fqdn, host_matches
from ratline.model.snapshot import MeshSnapshot, Service

CLUSTER_DOMAIN = "svc.cluster.local"


def hosts_intersection(a: str, b: str) -> str | None:
    """The more specific of two host patterns when one covers the other, else None."""
    if host_matches(a, b):
        return b
    if host_matches(b, a):
        return a
    return None


def visible_to(export_to: Iterable[str], owner_namespace: str, namespace: str) -> bool:
    """Istio's exportTo: empty or `*` means everywhere, `.` the owner's own namespace."""
    targets = tuple(export_to)
    if not targets or "*" in targets:
        return True
    return any((t == "." and namespace == owner_namespace) or t == namespace for t in targets)


def _specificity(pattern: str) -> tuple[int, int]:
    return (0 if pattern.startswith("*") else 1, len(pattern))


_Indexed = tuple[int, Resource[Any], str]
"""(order in the snapshot, the rule, its host as a FQDN)."""


@dataclass(frozen=True)
class _RuleIndex:
    """A snapshot's DestinationRules by exact host, and the wildcard ones."""

    rules: tuple[Resource[Any], ...]
    """The tuple indexed (held, so that its identity stays its own)."""
    exact: Mapping[str, tuple[_Indexed, ...]]
    wildcard: tuple[_Indexed, ...]


_last_index: _RuleIndex | None = None
"""The index of the DestinationRules asked about last (one snapshot asks many times)."""


def _rule_index(rules: tuple[Resource[Any], ...]) -> _RuleIndex:
    global _last_index
    index = _last_index
    if index is None or index.rules is not rules:
        exact: dict[str, list[_Indexed]] = {}
        wildcard: list[_Indexed] = []
        for order, rule in enumerate(rules):
            host = fqdn(rule.spec.host, rule.namespace)
            if host.startswith("*"):
                wildcard.append((order, rule, host))
            else:
                exact.setdefault(host.lower(), []).append((order, rule, host))
        index = _RuleIndex(rules, {h: tuple(v) for h, v in exact.items()}, tuple(wildcard))
        _last_index = index
    return index


def destination_rule_for(snapshot: MeshSnapshot, service: Service) -> Resource[Any] | None:
    """The DestinationRule for a service: its own namespace first, then the most specific."""
    index = _rule_index(tuple(snapshot.destination_rules))
    hostname = service.hostname
    matching = [] if hostname.startswith("*") else list(index.exact.get(hostname.lower(), ()))
    matching += [w for w in index.wildcard if host_matches(w[2], hostname)]
    candidates: list[tuple[tuple[int, int, int], int, Resource[Any]]] = []
    for order, rule, host in matching:
        if not visible_to(getattr(rule.spec, "export_to", ()), rule.namespace, service.namespace):
            continue
        rank = (1 if rule.namespace == service.namespace else 0, *_specificity(host))
        candidates.append((rank, -order, rule))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def subsets_of(rule: Resource[Any] | None) -> tuple[Any, ...]:
    """The subsets a DestinationRule declares (none without a rule)."""
    return tuple(rule.spec.subsets or ()) if rule is not None else ()


def subset_named(rule: Resource[Any] | None, name: str) -> Any | None:
    return next((s for s in subsets_of(rule) if s.name == name), None)


@dataclass(frozen=True)
class EffectivePolicy:
    """The traffic policy in force for one service port and subset (Istio field objects)."""

    load_balancer: Any = None
    connection_pool: Any = None
    outlier_detection: Any = None
    tls: Any = None
    tunnel: Any = None
    proxy_protocol: Any = None
    retry_budget: Any = None
    paths: Mapping[str, str] = field(default_factory=dict)
    """Field → where it was read from (`spec.subsets[0].trafficPolicy`), for findings."""

    def path(self, name: str) -> str:
        """Where `name` (a snake_case field) comes from, as a camelCase field path."""
        base = self.paths.get(name, "spec.trafficPolicy")
        return f"{base}.{to_camel(name)}"

    @property
    def field_path(self) -> str:
        """Where the TLS settings come from (the policy path without the field)."""
        return self.paths.get("tls", "spec.trafficPolicy")


PORT_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")
"""What a port-level setting holds; it replaces all four (no inheritance, as in Istio)."""
OTHER_FIELDS = ("tunnel", "proxy_protocol", "retry_budget")


def _for_port(policy: Any, port: int, path: str) -> tuple[dict[str, tuple[Any, str]], bool]:
    """A TrafficPolicy's fields for `port`: its port-level setting for that port replaces
    the load balancer, connection pool, outlier detection and TLS; the rest stay."""
    fields = {name: (getattr(policy, name, None), path) for name in (*PORT_FIELDS, *OTHER_FIELDS)}
    for index, level in enumerate(getattr(policy, "port_level_settings", None) or ()):
        if level.port.number == port:
            level_path = f"{path}.portLevelSettings[{index}]"
            fields.update({name: (getattr(level, name), level_path) for name in PORT_FIELDS})
            return fields, True
    return fields, False


def effective_policy(rule: Resource[Any] | None, port: int, subset: str = "") -> EffectivePolicy:
    """Istio's merge: the rule's policy for the port, then the subset's fields that are set
    (all four port fields when the subset has a port-level setting for this port)."""
    if rule is None:
        return EffectivePolicy()
    top = rule.spec.traffic_policy
    merged, _ = _for_port(top, port, "spec.trafficPolicy") if top is not None else ({}, False)
    for index, candidate in enumerate(subsets_of(rule)):
        if candidate.name != subset or candidate.traffic_policy is None:
            continue
        path = f"spec.subsets[{index}].trafficPolicy"
        own, port_level = _for_port(candidate.traffic_policy, port, path)
        for name, (value, where) in own.items():
            if value is not None or (port_level and name in PORT_FIELDS) or not merged:
                merged[name] = (value, where)
    values = {name: value for name, (value, _) in merged.items()}
    paths = {name: where for name, (_, where) in merged.items()}
    return EffectivePolicy(**values, paths=paths)


def consistent_hash(rule: Resource[Any] | None, port: int, subset: str = "") -> Any:
    """The consistentHash in force for a destination (None: no session affinity)."""
    lb = effective_policy(rule, port, subset).load_balancer
    return getattr(lb, "consistent_hash", None)
