"""The service graph as the page draws it (pure): workloads grouped under their service,
the ingress gateway as the entry, and one edge per (source workload, destination service,
destination workload) that carried traffic in the window.

Node ids: `w:NAMESPACE/WORKLOAD` for a workload (the gateway is one), `s:HOST` for a
service (its group; an edge ends at the service when no workload answered: a fault, no
healthy endpoint, a host outside the mesh), `unknown` for callers outside the mesh.
Health thresholds are Kiali's defaults: an error rate of 0.1% makes an edge or node
degraded (amber), 20% failing (red).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.dashboard.traffic import Traffic, total
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.observability.edges import EdgeKey
from ratline.observability.istio_metrics import UNKNOWN
from ratline.registry.instances import ProxyKind, WorkloadInstance

DEGRADED_ERROR_RATE = 0.001
FAILING_ERROR_RATE = 0.2
UNKNOWN_NODE = "unknown"


def health(error_rate: float | None) -> str:
    """`healthy`, `degraded` (amber) or `failing` (red); `idle` without requests."""
    if error_rate is None:
        return "idle"
    if error_rate >= FAILING_ERROR_RATE:
        return "failing"
    if error_rate >= DEGRADED_ERROR_RATE:
        return "degraded"
    return "healthy"


def traffic_health(t: Traffic) -> str:
    """A window's traffic's health: by its error rate, `healthy` for TCP alone."""
    if t.error_rate is None and t.active:
        return "healthy"
    return health(t.error_rate)


def workload_id(namespace: str, workload: str) -> str:
    return f"w:{namespace}/{workload}"


def service_id(hostname: str) -> str:
    return f"s:{hostname}"


def edge_ends(key: EdgeKey) -> tuple[str, str]:
    source, source_ns, service, workload, namespace = key
    src = UNKNOWN_NODE if source == UNKNOWN else workload_id(source_ns, source)
    dst = service_id(service) if workload == UNKNOWN else workload_id(namespace, workload)
    return src, dst


@dataclass
class WorkloadNode:
    namespace: str
    name: str
    kind: str = "workload"
    """`workload` or `gateway`."""
    labels: Mapping[str, str] = field(default_factory=dict)
    instances: list[str] = field(default_factory=list)
    connected: int = 0
    healthy: int = 0
    registered: bool = True
    """False for a workload only seen in traffic (it stopped, or is outside the registry)."""


_memberships: tuple[MeshSnapshot, dict[tuple[str, str], list[Service]]] | None = None


def workload_services(snapshot: MeshSnapshot) -> dict[tuple[str, str], list[Service]]:
    """The services each workload (namespace, name) is an endpoint of, by hostname;
    remembered for the latest snapshot (every page asks, some once per service)."""
    global _memberships
    if _memberships is not None and _memberships[0] is snapshot:
        return _memberships[1]
    found = _workload_services(snapshot)
    _memberships = (snapshot, found)
    return found


def _workload_services(snapshot: MeshSnapshot) -> dict[tuple[str, str], list[Service]]:
    by_instance = {(i.namespace, i.name): i for i in snapshot.instances.values()}
    found: dict[tuple[str, str], dict[str, Service]] = {}
    for service in snapshot.services.values():
        for endpoints in service.endpoints.values():
            for ep in endpoints:
                inst = by_instance.get((ep.namespace, ep.instance))
                if inst is not None:
                    found.setdefault((inst.namespace, inst.workload), {})[service.hostname] = (
                        service
                    )
    return {k: [v[h] for h in sorted(v)] for k, v in found.items()}


def workload_nodes(
    instances: Iterable[WorkloadInstance], connected_nodes: set[str]
) -> dict[tuple[str, str], WorkloadNode]:
    nodes: dict[tuple[str, str], WorkloadNode] = {}
    for inst in sorted(instances, key=lambda i: (i.namespace, i.name)):
        key = (inst.namespace, inst.workload)
        node = nodes.get(key)
        if node is None:
            kind = "gateway" if inst.kind is ProxyKind.ROUTER else "workload"
            node = nodes[key] = WorkloadNode(inst.namespace, inst.workload, kind,
                                             dict(inst.labels))
        node.instances.append(inst.name)
        node.connected += inst.node_id in connected_nodes
        node.healthy += inst.healthy
    return nodes


def _traffic_json(t: Traffic | None) -> dict[str, Any]:
    if t is None:
        return {"rps": 0.0, "error_rate": None, "health": "idle"}
    data = t.to_json()
    data["health"] = traffic_health(t)
    return data


def build_graph(
    snapshot: MeshSnapshot | None,
    connected_nodes: set[str],
    traffic: Mapping[EdgeKey, Traffic],
) -> dict[str, Any]:
    """`{"nodes", "groups", "edges"}` for the page (see the module docstring)."""
    instances = list(snapshot.instances.values()) if snapshot else []
    workloads = workload_nodes(instances, connected_nodes)
    services = dict(snapshot.services) if snapshot else {}
    memberships = workload_services(snapshot) if snapshot else {}

    for key in traffic:
        source, source_ns, _service, dest, dest_ns = key
        for name, ns in ((source, source_ns), (dest, dest_ns)):
            if name != UNKNOWN and (ns, name) not in workloads:
                workloads[(ns, name)] = WorkloadNode(ns, name, registered=False)

    inbound: dict[str, list[Traffic]] = {}
    edges = []
    for key, t in sorted(traffic.items()):
        src, dst = edge_ends(key)
        inbound.setdefault(dst, []).append(t)
        if dst != service_id(key[2]):
            inbound.setdefault(service_id(key[2]), []).append(t)
        data = _traffic_json(t)
        data.update(id=f"{src}>{dst}>{key[2]}", source=src, target=dst, service=key[2])
        edges.append(data)

    group_of: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for hostname, service in sorted(services.items()):
        if service.mesh_external and service_id(hostname) not in inbound:
            continue
        groups[service_id(hostname)] = {
            "id": service_id(hostname), "name": service.name, "namespace": service.namespace,
            "hostname": hostname, "external": service.mesh_external, "members": [],
        }
    for edge in edges:
        hostname = edge["service"]
        if service_id(hostname) not in groups:
            short, _, rest = hostname.partition(".")
            groups[service_id(hostname)] = {
                "id": service_id(hostname), "name": short if ".svc." in hostname else hostname,
                "namespace": rest.split(".")[0] if ".svc." in hostname else "",
                "hostname": hostname, "external": ".svc." not in hostname, "members": [],
            }
    for (ns, name), _node in sorted(workloads.items()):
        owned = memberships.get((ns, name)) or []
        if owned and service_id(owned[0].hostname) in groups:
            group_of[workload_id(ns, name)] = service_id(owned[0].hostname)
            groups[service_id(owned[0].hostname)]["members"].append(workload_id(ns, name))

    nodes = []
    for (ns, name), node in sorted(workloads.items()):
        nid = workload_id(ns, name)
        node_in = total(inbound[nid]) if nid in inbound else None
        nodes.append({
            "id": nid, "kind": node.kind, "name": name, "namespace": ns,
            "app": node.labels.get("app", ""), "version": node.labels.get("version", ""),
            "group": group_of.get(nid), "instances": node.instances,
            "connected": node.connected, "healthy": node.healthy,
            "registered": node.registered,
            "services": [s.hostname for s in memberships.get((ns, name)) or ()],
            "inbound": _traffic_json(node_in),
        })
    if any(e["source"] == UNKNOWN_NODE for e in edges):
        nodes.append({"id": UNKNOWN_NODE, "kind": "unknown", "name": "unknown",
                      "namespace": "", "group": None, "instances": [], "connected": 0,
                      "healthy": 0, "registered": False, "services": [],
                      "inbound": _traffic_json(None)})
    for group in groups.values():
        gid = group["id"]
        group["inbound"] = _traffic_json(total(inbound[gid]) if gid in inbound else None)
    return {"nodes": nodes, "groups": list(groups.values()), "edges": edges}
