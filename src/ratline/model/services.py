"""Services and their endpoints, joined from config and the instances runners report.

This is where the registry's raw input (instances, WorkloadEntries) meets config.

A Kubernetes `Service` selects workload instances (and WorkloadEntries) by labels; an
Istio `ServiceEntry` declares hosts with inline endpoints or a workload selector. Both
become `model.snapshot.Service` values with endpoints per service port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ratline.api.envelope import Resource
from ratline.api.hosts import fqdn
from ratline.api.protocols import service_port_protocol
from ratline.model.snapshot import Endpoint, Resolution, Service, ServicePort
from ratline.registry.instances import InstancePort, WorkloadInstance

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
ISTIO_LOCALITY_LABEL = "istio-locality"
"""`region.zone.subzone` in one label, as Istio reads it on a pod."""


def locality_of(labels: Mapping[str, str]) -> str:
    """A workload's `region/zone/subzone` from its labels ("" when it has none)."""
    combined = labels.get(ISTIO_LOCALITY_LABEL)
    if combined:
        parts = combined.split(".")
    else:
        parts = [labels.get(name, "") for name in (REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL)]
    return "/".join(parts).rstrip("/")


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _target_port(
    instance_ports: Sequence[InstancePort], target: int | str | None, service_port: int
) -> InstancePort | None:
    if target is None:
        target = service_port
    if isinstance(target, str) and not target.isdigit():
        return next((p for p in instance_ports if p.name == target), None)
    number = int(target)
    return next((p for p in instance_ports if p.container_port == number), None)


def _index_by_label(
    instances: Sequence[WorkloadInstance],
) -> dict[tuple[str, str, str], list[WorkloadInstance]]:
    """(namespace, label key, label value) → instances carrying that label, in input order."""
    index: dict[tuple[str, str, str], list[WorkloadInstance]] = {}
    for inst in instances:
        for key, value in inst.labels.items():
            index.setdefault((inst.namespace, key, value), []).append(inst)
    return index


def _candidates(
    index: Mapping[tuple[str, str, str], list[WorkloadInstance]],
    namespace: str,
    selector: Mapping[str, str],
) -> list[WorkloadInstance]:
    """Instances that may match a non-empty selector: those with its rarest label.

    Keeps a Service's endpoint lookup proportional to its candidates, not to the mesh.
    """
    lists = [index.get((namespace, k, v), []) for k, v in selector.items()]
    return min(lists, key=len)


def build_services(
    resources: Iterable[Resource[Any]],
    instances: Iterable[WorkloadInstance],
    domain_suffix: str = "cluster.local",
    unchanged: Callable[[Resource[Any]], Service | None] | None = None,
) -> dict[str, Service]:
    """Every service of the mesh by hostname, with endpoints per service port.

    `unchanged` may give, for a Service resource, the Service built before when neither
    it nor any instance it selects changed since; that one is kept as it is.
    """
    resources = list(resources)
    instances = [i for i in instances if i.ports]
    workload_entries = [r for r in resources if r.kind == "WorkloadEntry"]
    services: dict[str, Service] = {}
    by_label: dict[tuple[str, str, str], list[WorkloadInstance]] | None = None

    for res in resources:
        if res.kind != "Service":
            continue
        kept = unchanged(res) if unchanged is not None else None
        if kept is not None:
            services[kept.hostname] = kept
            continue
        if by_label is None:
            by_label = _index_by_label(instances)
        spec = res.spec
        selector = dict(spec.selector or {})
        hostname = f"{res.name}.{res.namespace}.svc.{domain_suffix}"
        ports: list[ServicePort] = []
        endpoints: dict[int, tuple[Endpoint, ...]] = {}
        for sp in spec.ports or ():
            chosen = service_port_protocol(sp.port, sp.name, sp.protocol, sp.app_protocol)
            ports.append(
                ServicePort(
                    sp.name or "", sp.port, chosen.protocol, sp.target_port, chosen.declared
                )
            )
            eps: list[Endpoint] = []
            if selector:
                for inst in _candidates(by_label, res.namespace, selector):
                    if inst.namespace != res.namespace or not labels_match(selector, inst.labels):
                        continue
                    endpoint = _instance_endpoint(inst, sp.target_port, sp.port)
                    if endpoint is not None:
                        eps.append(endpoint)
                for we in workload_entries:
                    if we.namespace != res.namespace:
                        continue
                    if not labels_match(selector, dict(we.spec.labels or {})):
                        continue
                    eps.append(_workload_entry_endpoint(we, sp.name, sp.target_port or sp.port))
            endpoints[sp.port] = tuple(sorted(eps, key=lambda e: (e.instance, e.port)))
        services[hostname] = Service(
            hostname=hostname,
            namespace=res.namespace,
            name=res.name,
            ports=tuple(ports),
            resolution=Resolution.EDS,
            endpoints=endpoints,
            export_to=("*",),
            origin="Service",
            addresses=tuple(
                ip for ip in (spec.cluster_ips or (spec.cluster_ip,)) if ip and ip != "None"
            ),
        )

    global _inline_entries
    inline: dict[tuple[int, str], tuple[Resource[Any], tuple[Service, ...]]] = {}
    selected: _Selected | None = None
    for res in resources:
        if res.kind != "ServiceEntry":
            continue
        if res.spec.workload_selector is None:
            key = (id(res), domain_suffix)
            hit = _inline_entries.get(key)
            if hit is None or hit[0] is not res:
                hit = (res, tuple(_service_entry_services(res, _Selected(), domain_suffix)))
            inline[key] = hit
            entry_services: Iterable[Service] = hit[1]
        else:
            if selected is None:
                selected = _Selected(instances, workload_entries)
            entry_services = _service_entry_services(res, selected, domain_suffix)
        for svc in entry_services:
            services.setdefault(svc.hostname, svc)
    _inline_entries = inline
    return services


_inline_entries: dict[tuple[int, str], tuple[Resource[Any], tuple[Service, ...]]] = {}
"""(id(ServiceEntry), domain suffix) → (the entry, held so the id stays its own; its
services), for the entries without a workload selector of the last build: those read
nothing but themselves, so an entry the config store kept (the same object) is not
built again."""


class _Selected:
    """The WorkloadEntries and instances a ServiceEntry's workload selector may pick,
    indexed by label (input order kept), so that each selector costs its candidates."""

    def __init__(
        self,
        instances: Sequence[WorkloadInstance] = (),
        workload_entries: Sequence[Resource[Any]] = (),
    ) -> None:
        self.instances = instances
        self.workload_entries = workload_entries
        self._instances_by_label = _index_by_label(instances)
        self._entries_by_label: dict[tuple[str, str, str], list[Resource[Any]]] = {}
        for we in workload_entries:
            for key, value in dict(we.spec.labels or {}).items():
                self._entries_by_label.setdefault((we.namespace, key, value), []).append(we)

    def entries(self, namespace: str, selector: Mapping[str, str]) -> list[Resource[Any]]:
        if not selector:
            candidates = list(self.workload_entries)
        else:
            lists = [self._entries_by_label.get((namespace, k, v), []) for k, v in selector.items()]
            candidates = min(lists, key=len)
        return [
            we
            for we in candidates
            if we.namespace == namespace and labels_match(selector, dict(we.spec.labels or {}))
        ]

    def instances_of(self, namespace: str, selector: Mapping[str, str]) -> list[WorkloadInstance]:
        if not selector:
            candidates = list(self.instances)
        else:
            candidates = _candidates(self._instances_by_label, namespace, selector)
        return [
            i for i in candidates if i.namespace == namespace and labels_match(selector, i.labels)
        ]


def _instance_endpoint(
    inst: WorkloadInstance, target: int | str | None, service_port: int
) -> Endpoint | None:
    """The endpoint of one instance for a service port, or None if it lacks the port."""
    port = _target_port(inst.ports, target, service_port)
    if port is None:
        return None
    return Endpoint(
        address=inst.address,
        port=port.inbound_port or port.app_port,
        labels=dict(inst.labels),
        namespace=inst.namespace,
        service_account=inst.service_account,
        instance=inst.name,
        healthy=inst.healthy,
        has_sidecar=port.inbound_port is not None,
        locality=locality_of(inst.labels) or inst.locality,
    )


def _workload_entry_endpoint(we: Resource[Any], port_name: str | None, port: int | str) -> Endpoint:
    spec = we.spec
    entry_ports = dict(spec.ports or {})
    number = entry_ports.get(port_name or "", port if isinstance(port, int) else 0)
    return Endpoint(
        address=spec.address or "",
        port=int(number),
        labels=dict(spec.labels or {}),
        namespace=we.namespace,
        service_account=spec.service_account or "",
        instance=we.name,
        healthy=True,
        weight=spec.weight or 1,
        has_sidecar=False,
        locality=spec.locality or locality_of(dict(spec.labels or {})),
    )


def _service_entry_services(
    res: Resource[Any], selected: _Selected, domain_suffix: str
) -> list[Service]:
    spec = res.spec
    resolution = {
        "STATIC": Resolution.EDS,
        "DNS": Resolution.DNS,
        "DNS_ROUND_ROBIN": Resolution.DNS_ROUND_ROBIN,
        "NONE": Resolution.NONE,
    }[spec.resolution or "NONE"]
    ports = tuple(
        ServicePort(p.name or "", p.number, p.protocol, p.target_port) for p in spec.ports or ()
    )
    selector = dict(spec.workload_selector.labels) if spec.workload_selector else None
    out = []
    for host in spec.hosts:
        hostname = fqdn(host, res.namespace, domain_suffix)
        endpoints: dict[int, tuple[Endpoint, ...]] = {}
        for sp in ports:
            eps: list[Endpoint] = []
            for we_spec in spec.endpoints or ():
                entry_ports = dict(we_spec.ports or {})
                eps.append(
                    Endpoint(
                        address=we_spec.address or host,
                        port=int(entry_ports.get(sp.name, sp.target_port or sp.port)),
                        labels=dict(we_spec.labels or {}),
                        namespace=res.namespace,
                        service_account=we_spec.service_account or "",
                        instance=f"{res.name}-{we_spec.address}",
                        weight=we_spec.weight or 1,
                        locality=we_spec.locality or locality_of(dict(we_spec.labels or {})),
                    )
                )
            if selector is not None:
                for we in selected.entries(res.namespace, selector):
                    eps.append(_workload_entry_endpoint(we, sp.name, sp.target_port or sp.port))
                for inst in selected.instances_of(res.namespace, selector):
                    endpoint = _instance_endpoint(inst, sp.target_port, sp.port)
                    if endpoint is not None:
                        eps.append(endpoint)
            if not eps and resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
                target = sp.target_port if isinstance(sp.target_port, int) else sp.port
                eps.append(Endpoint(address=host, port=target))
            endpoints[sp.port] = tuple(eps)
        out.append(
            Service(
                hostname=hostname,
                namespace=res.namespace,
                name=host,
                ports=ports,
                resolution=resolution,
                mesh_external=(spec.location or "MESH_EXTERNAL") == "MESH_EXTERNAL",
                endpoints=endpoints,
                export_to=tuple(spec.export_to or ("*",)),
                origin="ServiceEntry",
                addresses=tuple(spec.addresses),
                subject_alt_names=tuple(spec.subject_alt_names),
            )
        )
    return out
