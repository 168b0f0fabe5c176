"""Building a `MeshSnapshot` from the config store's resources and the registry's instances."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from ratline.api.envelope import Resource
from ratline.model.gateway_api import convert
from ratline.model.services import build_services, labels_match
from ratline.model.snapshot import MeshSnapshot, Service
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
    previous: MeshSnapshot | None = None,
) -> MeshSnapshot:
    """One immutable snapshot; `inputs_version` must change whenever any input does, and
    `config_version` (if given) whenever `resources` or `mesh_config` do.

    With the `previous` snapshot of the same config, a Service none of whose selected
    instances changed keeps its previous `Service` (an endpoint change costs the services
    it touches, not the mesh).
    """
    resources = sorted(resources, key=lambda r: r.key)
    instances = list(instances)
    domain_suffix = "cluster.local"
    unchanged = None
    if previous is not None and config_version and previous.config_version == config_version:
        unchanged = _unchanged_services(previous, instances, domain_suffix)
    services = build_services(resources, instances, domain_suffix, unchanged)
    if (
        unchanged is not None
        and previous is not None
        and services.keys() == previous.services.keys()
    ):
        # Same config, same service hosts: the routing resources, the Gateway API's
        # conversion (it reads only which hosts exist) and its findings are the previous ones.
        return replace(
            previous,
            version=inputs_version,
            services=services,
            instances={i.node_id: i for i in instances},
        )
    grouped: dict[str, list[Resource[Any]]] = {v: [] for v in _ROUTING_KINDS.values()}
    extra: dict[str, list[Resource[Any]]] = {}
    for res in resources:
        if res.kind in _ROUTING_KINDS:
            grouped[_ROUTING_KINDS[res.kind]].append(res)
        elif res.kind not in _REGISTRY_KINDS:
            extra.setdefault(res.kind, []).append(res)
    gateway_api = convert(resources, services, domain_suffix)
    grouped["gateways"] += gateway_api.gateways
    grouped["virtual_services"] += gateway_api.virtual_services
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
        gateway_api_status=gateway_api.status,
        model_findings=tuple(gateway_api.findings),
        config_version=config_version,
    )


def _unchanged_services(
    previous: MeshSnapshot, instances: list[WorkloadInstance], domain_suffix: str
) -> Callable[[Resource[Any]], Service | None]:
    """For a Service resource, its previous Service if no instance it selects changed."""
    changed = [i for i in instances if previous.instances.get(i.node_id) is not i]
    current = {i.node_id for i in instances}
    changed += [i for node, i in previous.instances.items() if node not in current]
    # An instance differs from its previous self: both versions may be selected (labels).
    changed += [
        previous.instances[i.node_id] for i in list(changed) if i.node_id in previous.instances
    ]

    def unchanged(res: Resource[Any]) -> Service | None:
        kept = previous.services.get(f"{res.name}.{res.namespace}.svc.{domain_suffix}")
        if kept is None or kept.origin != "Service":
            return None
        selector = dict(res.spec.selector or {})
        for instance in changed:
            if instance.namespace == res.namespace and labels_match(selector, instance.labels):
                return None
        return kept

    return unchanged
