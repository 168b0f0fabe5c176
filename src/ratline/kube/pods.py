"""Pods as workload instances: the pure mapping the Kubernetes registry applies.

A Pod with an IP (phase neither Succeeded nor Failed, not on the host network) is one
instance: its labels, service account, IP, container ports, and the locality of its Node
(`topology.kubernetes.io/region`/`zone`, `topology.istio.io/subzone`). It is healthy when
the EndpointSlices list it ready (the pod's own Ready condition when no slice lists it)
and it is not terminating.

The proxy kind comes from the pod as Istio's injection marks it: a gateway
(`inject.istio.io/templates: gateway`, a `istio-proxy` container run as `router`, or a
Gateway API deployment's `gateway.networking.k8s.io/gateway-name` label) is a router;
any other pod a sidecar, with the HTTP proxy listener on the mesh's outbound port. A pod
whose injected sidecar says INTERCEPTION_MODE (iptables capture) gets the capture
listeners instead, its sidecar taking every container port's inbound traffic. A gateway
pod the injector filled in (`sidecar.istio.io/status`) runs its Envoy in the pod's own
network namespace: its listeners bind `0.0.0.0`, as Istio's gateways.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.registry.instances import InstancePort, ProxyKind, SidecarPorts, WorkloadInstance

PROXY_CONTAINER = "istio-proxy"
INTERCEPTION_ENV = "ISTIO_META_INTERCEPTION_MODE"
TEMPLATES_ANNOTATION = "inject.istio.io/templates"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
STATUS_ANNOTATION = "sidecar.istio.io/status"
ALL_ADDRESSES = "0.0.0.0"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"


@dataclass(frozen=True)
class PodRecord:
    """What the registry keeps of a Pod (equal when nothing it reads changed)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    service_account: str = "default"
    node_name: str = ""
    ip: str = ""
    phase: str = ""
    ready: bool = False
    terminating: bool = False
    host_network: bool = False
    ports: tuple[tuple[str, int, str], ...] = ()
    """(name, containerPort, protocol) of every container but the proxy's."""
    workload: str = ""
    kind: ProxyKind = ProxyKind.SIDECAR
    interception_mode: str = ""
    """The injected sidecar's ISTIO_META_INTERCEPTION_MODE ("" when not injected)."""
    injected: bool = False
    """The injector filled the pod in (its proxy runs in the pod)."""


def _workload_name(metadata: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """The Deployment (or other owner) a pod belongs to, as Istio names workloads."""
    for owner in metadata.get("ownerReferences") or ():
        if not owner.get("controller"):
            continue
        name = str(owner.get("name") or "")
        template_hash = labels.get("pod-template-hash")
        if (
            owner.get("kind") == "ReplicaSet"
            and template_hash
            and name.endswith(f"-{template_hash}")
        ):
            return name[: -len(template_hash) - 1]
        return name
    return str(metadata.get("name") or "")


def _proxy_kind(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], labels: Mapping[str, str]
) -> ProxyKind:
    templates = str((metadata.get("annotations") or {}).get(TEMPLATES_ANNOTATION) or "")
    if "gateway" in [t.strip() for t in templates.split(",")] or GATEWAY_NAME_LABEL in labels:
        return ProxyKind.ROUTER
    for container in spec.get("containers") or ():
        if container.get("name") == PROXY_CONTAINER and "router" in (container.get("args") or ()):
            return ProxyKind.ROUTER
    return ProxyKind.SIDECAR


def _interception_mode(spec: Mapping[str, Any]) -> str:
    """INTERCEPTION_MODE of the injected proxy (a native sidecar or a container)."""
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        if container.get("name") != PROXY_CONTAINER:
            continue
        for env in container.get("env") or ():
            if env.get("name") == INTERCEPTION_ENV:
                return str(env.get("value") or "")
    return ""


def _ready(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def pod_record(obj: Mapping[str, Any]) -> PodRecord:
    """The registry informer's transform for Pods."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    ports = tuple(
        (str(p.get("name") or ""), int(p["containerPort"]), str(p.get("protocol") or "TCP"))
        for container in spec.get("containers") or ()
        if container.get("name") != PROXY_CONTAINER
        for p in container.get("ports") or ()
        if p.get("containerPort")
    )
    return PodRecord(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        labels=labels,
        service_account=str(spec.get("serviceAccountName") or "default"),
        node_name=str(spec.get("nodeName") or ""),
        ip=str(status.get("podIP") or ""),
        phase=str(status.get("phase") or ""),
        ready=_ready(status),
        terminating=bool(metadata.get("deletionTimestamp")),
        host_network=bool(spec.get("hostNetwork")),
        ports=ports,
        workload=_workload_name(metadata, labels),
        kind=_proxy_kind(metadata, spec, labels),
        interception_mode=_interception_mode(spec),
        injected=STATUS_ANNOTATION in (metadata.get("annotations") or {}),
    )


def node_locality(obj: Mapping[str, Any]) -> str:
    """The registry informer's transform for Nodes: `region/zone/subzone` (or a prefix)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    parts = [str(labels.get(k) or "") for k in (REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL)]
    while parts and not parts[-1]:
        parts.pop()
    return "/".join(parts)


def endpoint_slice_readiness(obj: Mapping[str, Any]) -> tuple[tuple[str, bool], ...]:
    """The registry informer's transform for EndpointSlices: (pod name, ready) per endpoint
    that is a pod of the slice's namespace."""
    found = []
    for endpoint in obj.get("endpoints") or ():
        ref = endpoint.get("targetRef") or {}
        if ref.get("kind") != "Pod" or not ref.get("name"):
            continue
        conditions = endpoint.get("conditions") or {}
        ready = conditions.get("ready")
        found.append((str(ref["name"]), ready is None or bool(ready)))
    return tuple(sorted(found))


def is_instance(pod: PodRecord) -> bool:
    """Whether a pod is in the mesh's registry (it has an IP and may run)."""
    return bool(pod.ip) and pod.phase not in ("Succeeded", "Failed") and not pod.host_network


def pod_instance(
    pod: PodRecord, locality: str, ready: bool, outbound_port: int, admin_port: int
) -> WorkloadInstance:
    """The instance of one pod (`is_instance` must hold); `ready` from the EndpointSlices."""
    sidecar = None
    captured = pod.kind is ProxyKind.SIDECAR and bool(pod.interception_mode)
    if pod.kind is ProxyKind.SIDECAR:
        sidecar = SidecarPorts(
            outbound_port=outbound_port,
            admin_port=admin_port,
            interception_mode=pod.interception_mode,
        )
    return WorkloadInstance(
        name=pod.name,
        namespace=pod.namespace,
        workload=pod.workload or pod.name,
        labels=dict(pod.labels),
        service_account=pod.service_account,
        address=pod.ip,
        ports=tuple(
            # Captured: the sidecar takes the container port's traffic (virtualInbound).
            InstancePort(
                container_port=port,
                app_port=port,
                inbound_port=port if captured else None,
                name=name,
                protocol=protocol,
            )
            for name, port, protocol in pod.ports
        ),
        sidecar=sidecar,
        kind=pod.kind,
        healthy=ready and not pod.terminating,
        locality=locality,
        listen_address=ALL_ADDRESSES if pod.kind is ProxyKind.ROUTER and pod.injected else "",
    )
