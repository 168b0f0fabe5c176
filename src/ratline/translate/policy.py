"""Which Istio resources apply where: host names and wildcards, the DestinationRule of a
service, its subsets and the traffic policy in force for one port and subset.

Istio semantics kept here: a short host resolves in the resource's namespace; a
DestinationRule in the service's own namespace wins over one elsewhere, an exact host over
a wildcard; a subset's traffic policy overrides the rule's, and port-level settings
override the policy they sit in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

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


def destination_rule_for(snapshot: MeshSnapshot, service: Service) -> Resource[Any] | None:
    """The DestinationRule for a service: its own namespace first, then the most specific."""
    candidates: list[tuple[tuple[int, int, int], int, Resource[Any]]] = []
    for order, rule in enumerate(snapshot.destination_rules):
        host = fqdn(rule.spec.host, rule.namespace)
        if not host_matches(host, service.hostname):
            continue
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
    field_path: str = ""
    """Where the policy was read from, for findings (`spec.subsets[0].trafficPolicy`)."""


_POLICY_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")


def _set_fields(policy: Any) -> dict[str, Any]:
    return {f: getattr(policy, f) for f in _POLICY_FIELDS if getattr(policy, f, None) is not None}


def _apply(base: EffectivePolicy, policy: Any, port: int, path: str) -> EffectivePolicy:
    """Overlay an Istio TrafficPolicy (and its settings for `port`) onto `base`."""
    if policy is None:
        return base
    result = replace(base, **_set_fields(policy), field_path=path)
    for index, level in enumerate(getattr(policy, "port_level_settings", None) or ()):
        level_port = getattr(getattr(level, "port", None), "number", None)
        if level_port == port:
            level_path = f"{path}.portLevelSettings[{index}]"
            result = replace(result, **_set_fields(level), field_path=level_path)
    return result


def effective_policy(rule: Resource[Any] | None, port: int, subset: str = "") -> EffectivePolicy:
    """Rule policy, then its port-level settings, then the subset's policy and port levels."""
    result = EffectivePolicy()
    if rule is None:
        return result
    result = _apply(result, rule.spec.traffic_policy, port, "spec.trafficPolicy")
    if subset:
        for index, candidate in enumerate(subsets_of(rule)):
            if candidate.name == subset:
                path = f"spec.subsets[{index}].trafficPolicy"
                result = _apply(result, candidate.traffic_policy, port, path)
    return result
