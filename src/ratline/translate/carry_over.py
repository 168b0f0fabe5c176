"""What a snapshot's generator may take from the previous snapshot's, by what changed.

A push after a config edit used to translate the whole mesh again. Translation reads only
the snapshot, so comparing two snapshots field by field says which translations still
hold (the comparison is the cache key, and it covers every field translation reads):

- `Carry.ALL`: nothing but endpoints changed (the same mesh config, VirtualServices,
  DestinationRules, Gateways and other kinds, every service with the same hosts, ports
  and settings): a ServiceEntry or WorkloadEntry endpoint edit, like an instance report.
  Route configurations, every unchanged service's clusters and load assignments and
  every proxy whose view of the services is unchanged are carried over.
- `Carry.OUTBOUND`: only VirtualServices changed besides endpoints. Outbound clusters
  and load assignments read DestinationRules, PeerAuthentications, the mesh config, the
  service and the instances behind it, never a VirtualService, so each unchanged
  service's are carried over; routes and listeners are translated again.
- `Carry.NOTHING`: anything else.

Objects are compared by identity first (the config store keeps an unchanged file's
resources as the very same objects), then by value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from ratline.api.errors import ConfigMessage
from ratline.model.snapshot import MeshSnapshot, Service

InstanceView = frozenset[tuple[str, str, str, int, str, int, bool]]
"""What the services say about one instance: (hostname, service name, service namespace,
service port, its protocol, endpoint port, has a sidecar) for each endpoint naming it."""


VS_KIND = "VirtualService"


class Carry(Enum):
    NOTHING = 0
    OUTBOUND = 1
    ALL = 2


def carry_from(previous: MeshSnapshot, snapshot: MeshSnapshot) -> Carry:
    """How much of `previous`'s translation holds for `snapshot` (mTLS and the settings
    are the generator's to compare)."""
    if snapshot.config_version and previous.config_version == snapshot.config_version:
        return Carry.ALL
    if not (
        _same(previous.mesh_config, snapshot.mesh_config)
        and _same_seq(previous.destination_rules, snapshot.destination_rules)
        and _same_seq(previous.gateways, snapshot.gateways)
        and _same_extra(previous.extra, snapshot.extra)
        and _same_seq(previous.model_findings, snapshot.model_findings)
        and _same_shapes(previous.services, snapshot.services)
    ):
        return Carry.NOTHING
    if _same_seq(previous.virtual_services, snapshot.virtual_services):
        return Carry.ALL
    return Carry.OUTBOUND


def not_about_routing(messages: Iterable[ConfigMessage]) -> list[ConfigMessage]:
    """The findings to carry under `Carry.OUTBOUND`: those about VirtualServices come again
    from translating the routes afresh."""
    return [m for m in messages if m.resource is None or m.resource.kind != VS_KIND]


def service_shape(service: Service) -> tuple[Any, ...]:
    """Everything of a service but its endpoints."""
    return (
        service.hostname,
        service.namespace,
        service.name,
        service.ports,
        service.resolution,
        service.mesh_external,
        service.export_to,
        service.origin,
        service.addresses,
        service.subject_alt_names,
    )


def instance_views(snapshot: MeshSnapshot) -> dict[tuple[str, str], InstanceView]:
    """(instance name, namespace) → what the services' endpoints say about it: all that
    a proxy's own resources read of endpoints (the services of its inbound ports, their
    protocols, the services a policy's targetRef puts it behind)."""
    views: dict[tuple[str, str], set[tuple[str, str, str, int, str, int, bool]]] = {}
    for hostname, service in snapshot.services.items():
        for port in service.ports:
            for e in service.endpoints.get(port.port, ()):
                views.setdefault((e.instance, e.namespace), set()).add(
                    (
                        hostname,
                        service.name,
                        service.namespace,
                        port.port,
                        port.protocol,
                        e.port,
                        e.has_sidecar,
                    )
                )
        for number, port_endpoints in service.endpoints.items():
            if service.port(number) is None:  # endpoints of no declared port: still read
                for e in port_endpoints:
                    views.setdefault((e.instance, e.namespace), set()).add(
                        (hostname, service.name, service.namespace, number, "", e.port, False)
                    )
    return {key: frozenset(view) for key, view in views.items()}


def _same(a: Any, b: Any) -> bool:
    return a is b or bool(a == b)


def _same_seq(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b, strict=True))


def _same_extra(a: Mapping[str, Sequence[Any]], b: Mapping[str, Sequence[Any]]) -> bool:
    return a.keys() == b.keys() and all(_same_seq(a[kind], b[kind]) for kind in a)


def _same_shapes(a: Mapping[str, Service], b: Mapping[str, Service]) -> bool:
    if a.keys() != b.keys():
        return False
    for hostname, service in b.items():
        before = a[hostname]
        if before is not service and service_shape(before) != service_shape(service):
            return False
    return True
