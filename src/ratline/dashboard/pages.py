"""The service, workload and proxy pages' data (pure): lists, details, sync state.

A service's endpoints carry the registry's health and, where a caller's Envoy ejected
one (outlier detection), which callers did (`ejections`: endpoint address → caller
instances, read from the callers' Envoys by `ratline.dashboard.outliers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ratline.api.errors import ConfigMessage
from ratline.dashboard import applies
from ratline.dashboard.graph import traffic_health, workload_services
from ratline.dashboard.traffic import Traffic, total
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.observability.edges import EdgeKey
from ratline.registry.instances import ProxyKind, WorkloadInstance

XDS_TYPES = ("CDS", "LDS", "EDS", "RDS")


def _traffic(traffics: Sequence[Traffic]) -> dict[str, Any]:
    if not traffics:
        return {"rps": 0.0, "error_rate": None, "health": "idle"}
    t = total(traffics)
    return {**t.to_json(), "health": traffic_health(t)}


def _instances_of(snapshot: MeshSnapshot, namespace: str, workload: str) -> list[WorkloadInstance]:
    return sorted(
        (i for i in snapshot.instances.values()
         if i.namespace == namespace and i.workload == workload),
        key=lambda i: i.name,
    )


def _service_workloads(snapshot: MeshSnapshot, service: Service) -> list[tuple[str, str]]:
    memberships = workload_services(snapshot)
    return sorted(k for k, services in memberships.items()
                  if any(s.hostname == service.hostname for s in services))


def _finding_count(findings: Sequence[ConfigMessage], keys: set[str]) -> int:
    return sum(1 for m in findings if m.resource is not None and str(m.resource) in keys)


def services_list(
    snapshot: MeshSnapshot, traffic: Mapping[EdgeKey, Traffic]
) -> list[dict[str, Any]]:
    by_service: dict[str, list[Traffic]] = {}
    for key, t in traffic.items():
        by_service.setdefault(key[2], []).append(t)
    return [
        {
            "name": s.name, "namespace": s.namespace, "hostname": s.hostname,
            "origin": s.origin, "external": s.mesh_external,
            "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in s.ports],
            "workloads": [w for _ns, w in _service_workloads(snapshot, s)],
            "inbound": _traffic(by_service.get(s.hostname, [])),
        }
        for s in sorted(snapshot.services.values(), key=lambda s: (s.namespace, s.name))
    ]


def find_service(snapshot: MeshSnapshot, namespace: str, name: str) -> Service | None:
    for service in snapshot.services.values():
        if service.namespace == namespace and service.name == name:
            return service
    return next((s for s in snapshot.services.values() if s.hostname == name), None)


def service_detail(
    snapshot: MeshSnapshot,
    service: Service,
    traffic: Mapping[EdgeKey, Traffic],
    findings: Sequence[ConfigMessage],
    ejections: Mapping[str, list[str]],
) -> dict[str, Any]:
    workloads = _service_workloads(snapshot, service)
    instances = [i for ns, w in workloads for i in _instances_of(snapshot, ns, w)]
    workload_of = {(i.namespace, i.name): i.workload for i in instances}
    endpoints = []
    for port in sorted(service.endpoints):
        for ep in service.endpoints[port]:
            address = f"{ep.address}:{ep.port}"
            endpoints.append({
                "service_port": port, "address": address, "instance": ep.instance,
                "workload": workload_of.get((ep.namespace, ep.instance)),
                "healthy": ep.healthy, "has_sidecar": ep.has_sidecar,
                "labels": dict(ep.labels), "ejected_by": ejections.get(address, []),
            })
    inbound = [t for k, t in traffic.items() if k[2] == service.hostname]
    config = applies.for_service(snapshot, service, _one_per_workload(instances), findings)
    return {
        "service": {
            "name": service.name, "namespace": service.namespace, "hostname": service.hostname,
            "origin": service.origin, "external": service.mesh_external,
            "resolution": service.resolution.value,
            "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol}
                      for p in service.ports],
        },
        "workloads": [{"namespace": ns, "name": w} for ns, w in workloads],
        "endpoints": endpoints,
        "inbound": _traffic(inbound),
        "callers": _peers(traffic, lambda k: k[2] == service.hostname),
        "config": config,
    }


def _one_per_workload(instances: Sequence[WorkloadInstance]) -> list[WorkloadInstance]:
    seen: dict[tuple[str, str], WorkloadInstance] = {}
    for inst in instances:
        seen.setdefault((inst.namespace, inst.workload), inst)
    return list(seen.values())


def _peers(traffic: Mapping[EdgeKey, Traffic], select: Any) -> list[dict[str, Any]]:
    """The edges chosen by `select`, each with both ends and its traffic."""
    rows = []
    for key, t in sorted(traffic.items()):
        if select(key):
            rows.append({"source": {"workload": key[0], "namespace": key[1]},
                         "destination": {"service": key[2], "workload": key[3],
                                         "namespace": key[4]},
                         **t.to_json(), "health": traffic_health(t)})
    return rows


def workloads_list(
    snapshot: MeshSnapshot, traffic: Mapping[EdgeKey, Traffic], proxies: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    connected = {p["node"] for p in proxies if p.get("connected")}
    memberships = workload_services(snapshot)
    grouped: dict[tuple[str, str], list[WorkloadInstance]] = {}
    for inst in snapshot.instances.values():
        grouped.setdefault((inst.namespace, inst.workload), []).append(inst)
    rows = []
    for (ns, name), insts in sorted(grouped.items()):
        inbound = [t for k, t in traffic.items() if (k[4], k[3]) == (ns, name)]
        rows.append({
            "name": name, "namespace": ns,
            "kind": "gateway" if insts[0].kind is ProxyKind.ROUTER else "workload",
            "labels": dict(insts[0].labels),
            "instances": len(insts),
            "connected": sum(i.node_id in connected for i in insts),
            "healthy": sum(i.healthy for i in insts),
            "services": [s.hostname for s in memberships.get((ns, name), [])],
            "inbound": _traffic(inbound),
        })
    return rows


def workload_detail(
    snapshot: MeshSnapshot,
    namespace: str,
    name: str,
    traffic: Mapping[EdgeKey, Traffic],
    findings: Sequence[ConfigMessage],
    proxies: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    instances = _instances_of(snapshot, namespace, name)
    if not instances:
        return None
    by_node = {p["node"]: p for p in proxies}
    rows = []
    for inst in instances:
        status = by_node.get(inst.node_id)
        rows.append({
            "name": inst.name, "node": inst.node_id, "healthy": inst.healthy,
            "app_pid": inst.app_pid, "proxy_pid": inst.proxy_pid,
            "connected": bool(status and status.get("connected")),
            "xds": status.get("xds") if status else None,
            "types": sync_types(status),
        })
    memberships = workload_services(snapshot).get((namespace, name), [])
    return {
        "workload": {
            "name": name, "namespace": namespace, "labels": dict(instances[0].labels),
            "kind": "gateway" if instances[0].kind is ProxyKind.ROUTER else "workload",
            "service_account": instances[0].service_account,
        },
        "services": [{"name": s.name, "namespace": s.namespace, "hostname": s.hostname}
                     for s in memberships],
        "instances": rows,
        "inbound": _traffic([t for k, t in traffic.items() if (k[4], k[3]) == (namespace, name)]),
        "outbound": _traffic([t for k, t in traffic.items() if (k[1], k[0]) == (namespace, name)]),
        "callers": _peers(traffic, lambda k: (k[4], k[3]) == (namespace, name)),
        "calls": _peers(traffic, lambda k: (k[1], k[0]) == (namespace, name)),
        "config": applies.for_workload(snapshot, instances[0], findings),
    }


def sync_types(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """Each xDS type's sync state, NOT SENT where the proxy has no status for it."""
    types = dict((status or {}).get("types") or {})
    for short in XDS_TYPES:
        types.setdefault(short, {"state": "NOT SENT", "sent_version": None,
                                 "acked_version": None, "nack": None})
    return types


def proxies_table(
    snapshot: MeshSnapshot | None, proxies: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every proxy the xDS server knows, and every registered instance whose proxy never
    connected (shown not connected, every type NOT SENT)."""
    rows = [dict(p) for p in proxies]
    seen = {p["node"] for p in proxies}
    for inst in (snapshot.instances.values() if snapshot else ()):
        if inst.node_id not in seen and inst.sidecar is not None:
            rows.append({
                "node": inst.node_id, "instance": inst.name, "namespace": inst.namespace,
                "workload": inst.workload, "registered": True, "connected": False,
                "xds": None, "types": sync_types(None),
            })
    for row in rows:
        row["types"] = sync_types(row)
        states = {t["state"] for t in row["types"].values()}
        row["sync"] = ("NOT CONNECTED" if not row.get("connected")
                       else "NACK" if any(t.get("nack") for t in row["types"].values())
                       else "STALE" if "STALE" in states
                       else "NOT SENT" if states == {"NOT SENT"} else "SYNCED")
    return sorted(rows, key=lambda r: (r.get("namespace") or "", r.get("instance") or ""))
