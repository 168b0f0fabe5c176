"""Locality load balancing, as Istio does it: where each workload is, and what a client in
some locality sees in a service's load assignment.

A workload's locality is `region/zone/subzone` from its labels
(`topology.kubernetes.io/region`, `topology.kubernetes.io/zone`, `topology.istio.io/subzone`,
or `istio-locality: region.zone.subzone`), or a WorkloadEntry's `locality` field.

The setting in force is the DestinationRule's `localityLbSetting`, else MeshConfig's (on
by default, as in Istio). `distribute` reweighs localities for clients whose locality
matches `from`. Otherwise, when the cluster has outlier detection (without it Envoy never
fails over), endpoints get priorities by how close they are to the client: same
region/zone/subzone 0, same zone 1, same region 2, elsewhere 3, and 4 for regions a
`failover` rule of the client's region does not name; `failoverPriority` labels order
endpoints first by how many of the listed labels they share with the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from ratline.model.services import locality_of

__all__ = ["NOWHERE", "ClientLocality", "effective_setting", "locality_of", "localize"]


def split(locality: str) -> tuple[str, str, str]:
    parts = [*locality.split("/"), "", "", ""][:3] if locality else ["", "", ""]
    return parts[0], parts[1], parts[2]


def locality_matches(locality: str, pattern: str) -> bool:
    """Istio's LocalityMatch: `region/zone/subzone` with `*` (or a missing part) for any."""
    have = split(locality)
    want = split(pattern)
    if want[0] != "*" and have[0] != want[0]:
        return False
    return all(w in ("*", "") or h == w for h, w in zip(have[1:], want[1:], strict=True))


@dataclass(frozen=True)
class ClientLocality:
    """What a load assignment may depend on about the client proxy (hashable)."""

    locality: str = ""
    labels: frozenset[tuple[str, str]] = frozenset()
    """The client's values of the labels some `failoverPriority` names."""


NOWHERE = ClientLocality()


def effective_setting(lb: Any, mesh_config: Any) -> Any:
    """The localityLbSetting in force: the rule's, else MeshConfig's; None when disabled."""
    setting = getattr(lb, "locality_lb_setting", None)
    if setting is None:
        setting = getattr(mesh_config, "locality_lb_setting", None)
        if setting is None:
            return _DEFAULT_SETTING
    if setting.enabled is False:
        return None
    return setting


@dataclass(frozen=True)
class _Enabled:
    """MeshConfig's default: locality load balancing on, no rules."""

    distribute: tuple[Any, ...] = ()
    failover: tuple[Any, ...] = ()
    failover_priority: tuple[str, ...] = ()
    enabled: bool = True


_DEFAULT_SETTING = _Enabled()


def weighted_localities(setting: Any, outlier_detection: Any) -> bool:
    """Whether the cluster needs Envoy's locality-weighted LB (Istio's condition)."""
    if setting is None:
        return False
    failover = outlier_detection is not None and bool(setting.failover or setting.failover_priority)
    return bool(setting.distribute) or failover


def depends_on_client(setting: Any, outlier_detection: Any) -> bool:
    """Whether the assignment differs by client locality (distribute, or failover)."""
    return setting is not None and (bool(setting.distribute) or outlier_detection is not None)


def priority_labels(setting: Any) -> list[str]:
    """The label names of `failoverPriority` entries (`name` or `name=value`)."""
    if setting is None or setting.distribute:
        return []
    return [entry.split("=", 1)[0] for entry in setting.failover_priority]


# ---- the assignment for one client -------------------------------------------------------


def _closeness(client: str, endpoint: str) -> int:
    """Istio's LbPriority: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere."""
    c, e = split(client), split(endpoint)
    if c[0] != e[0]:
        return 3
    if c[1] != e[1]:
        return 2
    return 0 if c[2] == e[2] else 1


def _renumber(groups: list[endpoint_components_pb2.LocalityLbEndpoints]) -> None:
    """Priorities from 0 without gaps, keeping their order."""
    for rank, priority in enumerate(sorted({g.priority for g in groups})):
        for group in groups:
            if group.priority == priority:
                group.priority = rank


def _group_locality(group: endpoint_components_pb2.LocalityLbEndpoints) -> str:
    loc = group.locality
    return "/".join((loc.region, loc.zone, loc.sub_zone)).rstrip("/")


def _apply_failover(
    assignment: endpoint_pb2.ClusterLoadAssignment, client: str, failover: Iterable[Any]
) -> None:
    region = split(client)[0]
    rules = list(failover)
    for group in assignment.endpoints:
        where = _group_locality(group)
        priority = _closeness(client, where)
        if priority == 3:
            for rule in rules:
                if rule.from_ == region:
                    if split(where)[0] != rule.to:
                        priority = 4
                    break
        group.priority = group.priority * 5 + priority
    _renumber(list(assignment.endpoints))


def _apply_failover_priority(
    assignment: endpoint_pb2.ClusterLoadAssignment,
    labels_of: Mapping[tuple[str, int], Mapping[str, str]],
    client: Mapping[str, str],
    entries: list[str],
) -> None:
    """Split each locality group by how many leading `failoverPriority` labels match."""
    names = [entry.split("=", 1)[0] for entry in entries]
    forced = {e.split("=", 1)[0]: e.split("=", 1)[1] for e in entries if "=" in e}
    lowest = len(names)
    out: list[endpoint_components_pb2.LocalityLbEndpoints] = []
    for group in assignment.endpoints:
        by_priority: dict[int, list[endpoint_components_pb2.LbEndpoint]] = {}
        for lb in group.lb_endpoints:
            address = lb.endpoint.address.socket_address
            labels = labels_of.get((address.address, address.port_value), {})
            priority = 0
            for index, name in enumerate(names):
                if forced.get(name, client.get(name)) != labels.get(name):
                    priority = lowest - index
                    break
            by_priority.setdefault(priority, []).append(lb)
        for priority in sorted(by_priority):
            part = endpoint_components_pb2.LocalityLbEndpoints()
            part.CopyFrom(group)
            del part.lb_endpoints[:]
            part.lb_endpoints.extend(by_priority[priority])
            part.priority = priority
            part.load_balancing_weight.value = sum(
                e.load_balancing_weight.value for e in by_priority[priority]
            )
            out.append(part)
    del assignment.endpoints[:]
    assignment.endpoints.extend(out)
    _renumber(list(assignment.endpoints))


def _apply_distribute(
    assignment: endpoint_pb2.ClusterLoadAssignment, client: str, distribute: Iterable[Any]
) -> None:
    rule = next((r for r in distribute if locality_matches(client, r.from_)), None)
    if rule is None:
        return
    unmatched = set(range(len(assignment.endpoints)))
    for pattern, weight in rule.to.items():
        chosen = {
            i: assignment.endpoints[i].load_balancing_weight.value or 1
            for i in sorted(unmatched)
            if locality_matches(_group_locality(assignment.endpoints[i]), pattern)
        }
        unmatched -= set(chosen)
        total = sum(chosen.values())
        for index, original in chosen.items():
            share = -(-original * weight // total)  # ceil, as Istio
            if share > 0:
                assignment.endpoints[index].load_balancing_weight.value = share
    for index in unmatched:
        del assignment.endpoints[index].lb_endpoints[:]


def localize(
    assignment: endpoint_pb2.ClusterLoadAssignment,
    setting: Any,
    outlier_detection: Any,
    client: ClientLocality,
    labels_of: Mapping[tuple[str, int], Mapping[str, str]],
) -> endpoint_pb2.ClusterLoadAssignment:
    """The assignment as a client at `client` sees it (a copy; the shared one is untouched).

    `labels_of` gives each endpoint's labels by (address, port), for failoverPriority."""
    if not depends_on_client(setting, outlier_detection):
        return assignment
    out = endpoint_pb2.ClusterLoadAssignment()
    out.CopyFrom(assignment)
    if setting.distribute:
        _apply_distribute(out, client.locality, setting.distribute)
        return out
    if setting.failover_priority:
        _apply_failover_priority(
            out, labels_of, dict(client.labels), list(setting.failover_priority)
        )
        if setting.failover:
            _apply_failover(out, client.locality, setting.failover)
    else:
        _apply_failover(out, client.locality, setting.failover)
    return out
