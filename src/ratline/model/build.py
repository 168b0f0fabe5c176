"""Building a `MeshSnapshot` from the config store's resources and the registry's instances."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ratline.api.envelope import Resource
from ratline.model.services import build_services
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance

_ROUTING_KINDS = {
    "VirtualService": "virtual_services",
    "DestinationRule": "destination_rules",
    "Gateway": "gateways",
    "ServiceEntry": "service_entries",
}
_REGISTRY_KINDS = {"Service", "WorkloadEntry", "Workload"}


def build_snapshot(
    resources: Iterable[Resource[Any]],
    instances: Iterable[WorkloadInstance],
    mesh_config: Any,
    inputs_version: str,
    config_version: str = "",
) -> MeshSnapshot:
    """One immutable snapshot; `inputs_version` must change whenever any input does, and
    `config_version` (if given) whenever `resources` or `mesh_config` do."""
    resources = sorted(resources, key=lambda r: r.key)
    instances = list(instances)
    domain_suffix = "cluster.local"
    services = build_services(resources, instances, domain_suffix)
    grouped: dict[str, list[Resource[Any]]] = {v: [] for v in _ROUTING_KINDS.values()}
    extra: dict[str, list[Resource[Any]]] = {}
    for res in resources:
        if res.kind in _ROUTING_KINDS:
            grouped[_ROUTING_KINDS[res.kind]].append(res)
        elif res.kind not in _REGISTRY_KINDS:
            extra.setdefault(res.kind, []).append(res)
    return MeshSnapshot(
        version=inputs_version,
        mesh_config=mesh_config,
        services=services,
        instances={i.node_id: i for i in instances},
        virtual_services=tuple(grouped["virtual_services"]),
        destination_rules=tuple(grouped["destination_rules"]),
        gateways=tuple(grouped["gateways"]),
        service_entries=tuple(grouped["service_entries"]),
        extra={k: tuple(v) for k, v in extra.items()},
        config_version=config_version,
    )
