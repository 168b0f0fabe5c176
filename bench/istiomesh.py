"""The side-by-side mesh: Istio kinds only, in a config directory both control planes read.

`write_mesh` writes N ServiceEntries (most with inline endpoints, the last tenth selecting
WorkloadEntries), DestinationRules with subsets `v1`/`v2` and VirtualServices splitting
traffic 90/10 between them, and a mesh-wide PeerAuthentication `mode: DISABLE` in the
root namespace (a vanilla Envoy has no Istio agent to serve istiod's SDS secrets; see
`../shared/notes/istiod-without-kubernetes.md`). One file per resource, as a user keeps
them, so an edit rewrites one small file.

The timed triggers are edits of those files (`Edit`), written atomically (istiod refuses
a whole directory when one file is half-written). Each edit carries a `marker`: bytes
that appear in the serialized Envoy resource only once the edit is in it, identical for
both control planes since both name clusters as Istio does. A simulated proxy has the
change when a response of the edit's type holds the marker (it ACKs that response at
once); a real Envoy when its config dump holds the change (`envoy_has`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratline.xds.types import length_delimited, varint

NAMESPACE = "default"
ROOT_NAMESPACE = "istio-system"
PORT = 8080
DOMAIN = "bench.local"
WORKLOAD_ENTRY_SHARE = 10
"""Every tenth service (the last tenth of them) selects WorkloadEntries; the rest list
their endpoints inline."""
CHANGED_ENDPOINT_SERVICE_SHARE = 2
"""The endpoint edit changes a service in the middle of the inline ones (not routed)."""


def host(index: int) -> str:
    return f"svc-{index:05d}.{DOMAIN}"


def new_host(index: int) -> str:
    return f"svc-new-{index:05d}.{DOMAIN}"


def cluster_name(hostname: str, subset: str = "") -> str:
    """Istio's (and Ratline's) outbound cluster name."""
    return f"outbound|{PORT}|{subset}|{hostname}"


def endpoint_address(service: int, replica: int) -> str:
    return f"10.{1 + service // 250}.{service % 250}.{replica + 1}"


def version_label(replica: int, replicas: int) -> str:
    """v1 for the first 60 % of a service's endpoints, v2 for the rest."""
    return "v1" if replica < max(1, (replicas * 3) // 5) else "v2"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class MeshShape:
    services: int
    endpoints: int
    virtual_services: int

    @property
    def replicas(self) -> int:
        return max(1, self.endpoints // self.services)

    @property
    def selector_from(self) -> int:
        """Services from this index on select WorkloadEntries."""
        return self.services - self.services // WORKLOAD_ENTRY_SHARE

    @property
    def endpoint_service(self) -> int:
        """The service whose endpoint the endpoint edit changes: inline, not routed."""
        return max(self.virtual_services, self.selector_from // CHANGED_ENDPOINT_SERVICE_SHARE)

    @property
    def routed_service(self) -> int:
        return 1 if self.virtual_services > 1 else 0


def service_entry(index: int, shape: MeshShape, addresses: dict[int, str] | None = None,
                  name_host: str | None = None) -> str:
    hostname = name_host or host(index)
    name = hostname.split(".")[0]
    head = (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        f"metadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
        f"spec:\n  hosts: [{hostname}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
        f"  ports: [{{number: {PORT}, name: http, protocol: HTTP}}]\n"
    )
    if index >= shape.selector_from and name_host is None:
        return head + f"  workloadSelector: {{labels: {{app: {name}}}}}\n"
    lines = ["  endpoints:"]
    for r in range(shape.replicas):
        address = (addresses or {}).get(r, endpoint_address(index, r))
        lines.append(f"  - {{address: {address}, labels: {{version: "
                     f"{version_label(r, shape.replicas)}}}}}")
    return head + "\n".join(lines) + "\n"


def workload_entries(index: int, shape: MeshShape) -> str:
    name = host(index).split(".")[0]
    docs = []
    for r in range(shape.replicas):
        docs.append(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
            f"metadata: {{name: {name}-{r}, namespace: {NAMESPACE}}}\n"
            f"spec:\n  address: {endpoint_address(index, r)}\n"
            f"  labels: {{app: {name}, version: {version_label(r, shape.replicas)}}}\n"
            f"  ports: {{http: {PORT}}}\n"
        )
    return "---\n".join(docs)


def destination_rule(index: int) -> str:
    name = host(index).split(".")[0]
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
        f"spec:\n  host: {host(index)}\n  subsets:\n"
        "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
    )


def virtual_service(index: int, v2_weight: int = 10) -> str:
    name = host(index).split(".")[0]
    h = host(index)
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
        f"spec:\n  hosts: [{h}]\n  http:\n  - route:\n"
        f"    - {{destination: {{host: {h}, subset: v1}}, weight: {100 - v2_weight}}}\n"
        f"    - {{destination: {{host: {h}, subset: v2}}, weight: {v2_weight}}}\n"
    )


PEER_AUTHENTICATION = (
    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
    f"metadata: {{name: default, namespace: {ROOT_NAMESPACE}}}\n"
    "spec:\n  mtls: {mode: DISABLE}\n"
)


def write_mesh(config_dir: Path, shape: MeshShape) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "peer-authentication.yaml").write_text(PEER_AUTHENTICATION)
    for i in range(shape.services):
        (config_dir / f"se-{i:05d}.yaml").write_text(service_entry(i, shape))
        if i >= shape.selector_from:
            (config_dir / f"we-{i:05d}.yaml").write_text(workload_entries(i, shape))
    for i in range(shape.virtual_services):
        (config_dir / f"dr-{i:05d}.yaml").write_text(destination_rule(i))
        (config_dir / f"vs-{i:05d}.yaml").write_text(virtual_service(i))


def _string_field(number: int, value: str) -> bytes:
    return length_delimited(number, value.encode())


@dataclass(frozen=True)
class Edit:
    """One timed trigger: a file to write, the xDS type it shows in, and its marker."""

    kind: str
    """`endpoint`, `virtualservice` or `new_service`."""
    type_short: str
    path: str
    text: str
    marker: bytes
    detail: dict[str, Any]

    def apply(self, config_dir: Path) -> None:
        write_atomic(config_dir / self.path, self.text)


def endpoint_edit(shape: MeshShape, repetition: int) -> Edit:
    """Move the first endpoint of one inline ServiceEntry to a new address."""
    index = shape.endpoint_service
    address = f"10.250.{repetition // 250}.{1 + repetition % 250}"
    return Edit(
        "endpoint", "EDS", f"se-{index:05d}.yaml",
        service_entry(index, shape, {0: address}),
        _string_field(2, address),  # SocketAddress.address
        {"cluster": cluster_name(host(index)), "address": address},
    )


VS_WEIGHTS = (60, 30, 70, 20, 80)


def virtualservice_edit(shape: MeshShape, repetition: int) -> Edit:
    """Change the v1/v2 split of one VirtualService."""
    index = shape.routed_service
    weight = VS_WEIGHTS[repetition % len(VS_WEIGHTS)]
    v2 = cluster_name(host(index), "v2")
    # ClusterWeight: name (1), weight (2) as UInt32Value {value (1)}.
    inner = b"\x08" + varint(weight)
    marker = _string_field(1, v2) + b"\x12" + varint(len(inner)) + inner
    return Edit("virtualservice", "RDS", f"vs-{index:05d}.yaml",
                virtual_service(index, weight), marker, {"cluster": v2, "weight": weight})


def new_service_edit(shape: MeshShape, repetition: int) -> Edit:
    """A new ServiceEntry with inline endpoints."""
    hostname = new_host(repetition)
    text = service_entry(10_000 + repetition, shape, name_host=hostname)
    return Edit("new_service", "CDS", f"se-new-{repetition:05d}.yaml", text,
                _string_field(1, cluster_name(hostname)),  # Cluster.name
                {"cluster": cluster_name(hostname)})


EDITS = {"endpoint": endpoint_edit, "virtualservice": virtualservice_edit,
         "new_service": new_service_edit}


def envoy_has(edit: Edit, dump: dict[str, Any]) -> float | None:
    """When (Unix time, Envoy's `last_updated`) a real Envoy's config dump took the edit
    in, or None if it does not hold it yet. `dump` is the answer to `envoy_dump_query`."""
    for item in dump.get("configs", []):  # with `?resource=`, one item per resource
        stamp = item.get("last_updated")
        if not stamp:
            continue
        if edit.kind == "endpoint":
            cla = item.get("endpoint_config", {})
            if cla.get("cluster_name") == edit.detail["cluster"] and _has_address(
                    cla, edit.detail["address"]):
                return _unix(stamp)
        elif edit.kind == "virtualservice":
            if _has_weight(item.get("route_config", {}), edit.detail["cluster"],
                           edit.detail["weight"]):
                return _unix(stamp)
        elif item.get("cluster", {}).get("name") == edit.detail["cluster"]:
            return _unix(stamp)
    return None


def envoy_dump_query(edit: Edit) -> str:
    """The admin path giving just what `envoy_has` reads (a small dump to poll)."""
    import re
    import urllib.parse

    if edit.kind == "endpoint":
        resource = "dynamic_endpoint_configs&include_eds"
    elif edit.kind == "virtualservice":
        return "/config_dump?resource=dynamic_route_configs"
    else:
        resource = "dynamic_active_clusters"
    regex = urllib.parse.quote("^" + re.escape(edit.detail["cluster"]) + "$")
    return f"/config_dump?resource={resource}&name_regex={regex}"


def _has_address(cla: dict[str, Any], address: str) -> bool:
    for locality in cla.get("endpoints", []):
        for lb in locality.get("lb_endpoints", []):
            sock = lb.get("endpoint", {}).get("address", {}).get("socket_address", {})
            if sock.get("address") == address:
                return True
    return False


def _has_weight(route_config: dict[str, Any], cluster: str, weight: int) -> bool:
    for vhost in route_config.get("virtual_hosts", []):
        for route in vhost.get("routes", []):
            for wc in route.get("route", {}).get("weighted_clusters", {}).get("clusters", []):
                if wc.get("name") == cluster:
                    return int(wc.get("weight", 0)) == weight
    return False


def _unix(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
